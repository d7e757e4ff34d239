# siNET-BM: bone metastases in small intestinal neuroendocrine tumours, a reproducible study.
# Wiring only: stages live in rules/, helpers in rules/common.smk, logic in sinet_bm/.


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/validate.smk"
include: "rules/endpoints.smk"
include: "rules/replicates.smk"
include: "rules/estimate.smk"
include: "rules/report.smk"
include: "rules/consortium.smk"


# Priorities (`priority:` in the rules): the estimates and figures first (2), then the
# bootstrap shards (1), then the rest (0): the bias check, which reads no data and so can
# start at once unless validation needs both cores, and share_bundle, which nothing of the
# study waits for. Snakemake's ILP scheduler weighs a negative priority as a loss, so none
# is below 0.


# Steps too small to be worth a cluster job (a second or two at 10^6 patients): on SLURM
# they run in the main Snakemake process.
localrules:
    all,
    collect_estimates,
    report,
    audit_crate,
    pool_centres,
    collect_pooled,
    report_pooled,


rule all:
    default_target: True
    input:
        final_outputs(),


onstart:
    print(start_message())


onsuccess:
    file_refresh_snapshot()
    cancel_rescheduling()


onerror:
    remove_stale_results()
    cancel_rescheduling()
