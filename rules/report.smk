rule plot_figures:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        estimates=rules.collect_estimates.output.estimates,
        flow=rules.describe_cohort.output.flow,
        code=package("models", "figures", "sensitivity"),
    output:
        cohort_flow=report(
            out("figures/cohort_flow.svg"),
            caption="../report/cohort_flow.rst",
            category="Cohort",
        ),
        km_os_bm=report(
            out("figures/km_os_bm.svg"),
            caption="../report/km_os_bm.rst",
            category="Overall survival",
        ),
        morphologic_visibility=report(
            out("figures/morphologic_visibility.svg"),
            caption="../report/morphologic_visibility.rst",
            category="Bone metastases",
        ),
        bm_types=report(
            out("figures/bm_types.svg"),
            caption="../report/bm_types.rst",
            category="Bone metastases",
        ),
        sre=report(
            out("figures/sre.svg"),
            caption="../report/sre.rst",
            category="Skeletal-related events",
        ),
        cox_forest=report(
            out("figures/cox_forest.svg"),
            caption="../report/cox_forest.rst",
            category="Overall survival",
        ),
        bm_hazard_ratios=report(
            out("figures/bm_hazard_ratios.svg"),
            caption="../report/bm_hazard_ratios.rst",
            category="Sensitivity analyses",
        ),
        cif_sre=report(
            out("figures/cif_sre.svg"),
            caption="../report/cif_sre.rst",
            category="Sensitivity analyses",
        ),
        schoenfeld=report(
            out("figures/schoenfeld.svg"),
            caption="../report/schoenfeld.rst",
            category="Overall survival",
        ),
        data=expand(out("figures/{figure}.csv"), figure=FIGURES),
    log:
        log("plot_figures"),
    benchmark:
        bench("plot_figures")
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


rule refresh_changelog:
    input:
        summary=rules.validate_exports.output.summary,
        endpoints=rules.derive_endpoints.output.endpoints,
        estimates=rules.collect_estimates.output.estimates,
        code=package("refresh"),
    output:
        snapshot=out("refresh/snapshot.json"),
        changelog=out("refresh/changelog.json"),
    log:
        log("refresh_changelog"),
    benchmark:
        bench("refresh_changelog")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.4),
        runtime=minutes(),
    params:
        history=out("refresh/history"),
    script:
        "../scripts/refresh_changelog.py"


rule provenance:
    input:
        analysis_outputs(),
    output:
        provenance=out("provenance.json"),
    log:
        log("provenance"),
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    params:
        steps=rule_manifest(),
        config=config,
    script:
        "../scripts/provenance.py"


rule report:
    input:
        estimates=rules.collect_estimates.output.estimates,
        table1=rules.describe_cohort.output.table1,
        flow=rules.describe_cohort.output.flow,
        ph_tests=rules.estimate_survival.output.ph_tests,
        bias=rules.check_immortal_time_bias.output.table,
        figures=[rules.plot_figures.output[name] for name in FIGURES],
        validation=rules.validate_exports.output.summary,
        provenance=rules.provenance.output.provenance,
        changelog=rules.refresh_changelog.output.changelog,
        published="resources/published.csv",
        templates=["sinet_bm/templates/report.html", "sinet_bm/templates/report.css"],
        code=package("report"),
    output:
        html=report(
            out("report/report.html"),
            caption="../report/report.rst",
            category="Study report",
        ),
    log:
        log("report"),
    benchmark:
        bench("report")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=minutes(),
    params:
        config=config,
        min_cell_count=config["privacy"]["min_cell_count"],
    script:
        "../scripts/report.py"


rule report_pdf:
    input:
        html=rules.report.output.html,
    output:
        pdf=report(
            out("report/report.pdf"),
            caption="../report/report.rst",
            category="Study report",
        ),
    log:
        log("report_pdf"),
    benchmark:
        bench("report_pdf")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=minutes(),
    script:
        "../scripts/report_pdf.py"
