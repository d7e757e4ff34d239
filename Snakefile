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
