# Drawn from the estimate parts that estimates.csv gathers unchanged (no figure shows a
# bootstrap row), so that the figures need not wait for the resamples.
rule plot_figures:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        estimates=estimate_parts,
        flow=rules.estimate_cohort.output.flow,
        model=rules.estimate_survival.output.model,
        code=package_code("plot_figures"),
    output:
        **figure_outputs(),
        data=expand(at_root("figures/{figure}.csv"), figure=FIGURES, allow_missing=True),
    log:
        log("plot_figures"),
    benchmark:
        bench("plot_figures")
    priority: 2
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(400, 2.4),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
        days_per_month=config["definitions"]["days_per_month"],
    script:
        "../scripts/plot_figures.py"


# The audit record of every step, what changed since the previous export, and the report
# (HTML and its PDF) that shows both. On a cluster it runs on the login node.
rule report:
    input:
        **consortium_inputs(),
        estimates=rules.collect_estimates.output.estimates,
        table1=rules.estimate_cohort.output.table1,
        flow=rules.estimate_cohort.output.flow,
        ph_tests=rules.estimate_survival.output.ph_tests,
        bias=rules.collect_estimates.output.bias,
        figures=[rules.plot_figures.output[name] for name in FIGURES],
        validation=rules.validate_exports.output.summary,
        endpoints=rules.derive_endpoints.output.endpoints,
        audited=analysis_outputs(),
        published="resources/published.csv",
        code=package_code("report"),
    output:
        html=report(
            at_root("report/report.html"),
            caption="../report/report.rst",
            category="Study report",
        ),
        pdf=report(
            at_root("report/report.pdf"),
            caption="../report/report.rst",
            category="Study report",
        ),
        provenance=at_root("provenance.json"),
        snapshot=at_root("refresh/snapshot.json"),
        changelog=at_root("refresh/changelog.json"),
    log:
        log("report"),
    benchmark:
        bench("report")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(1000, 2.4),
        runtime=minutes(),
    params:
        steps=rule_manifest(),
        config=config,
        history=out("refresh/history"),
        min_cell_count=config["privacy"]["min_cell_count"],
        # The results folder, the one the record is written in (not a typed path).
        out_dir=lambda wildcards, output: os.path.dirname(output.provenance),
        exports=export_folders(),
    script:
        "../scripts/report.py"


# The reviewers' copy: a Workflow Run RO-Crate of this run (the workflow, every job's record,
# the shareable results; no row-level data) and the same as one zip for sending.
rule audit_crate:
    input:
        provenance=rules.report.output.provenance,
        shareable=[
            rules.report.output.html,
            rules.report.output.pdf,
            rules.collect_estimates.output.estimates,
            rules.estimate_cohort.output.table1,
            rules.estimate_cohort.output.flow,
            rules.estimate_survival.output.ph_tests,
            rules.collect_estimates.output.bias,
            *rules.plot_figures.output,
            rules.validate_exports.output.summary,
        ],
        workflow=workflow_files(),
        code=package_code("audit_crate"),
    output:
        crate=directory(at_root("audit")),
        zip=at_root("audit.zip"),
    log:
        log("audit_crate"),
    benchmark:
        bench("audit_crate")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    params:
        report_step=report_manifest(),
        out_dir=lambda wildcards, output: os.path.dirname(output.zip),
        exports=export_folders(),
    script:
        "../scripts/audit_crate.py"
