rule plot_survival:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models", "figures"),
    output:
        figure=out("figures/km_os_bm.svg"),
        data=out("figures/km_os_bm.csv"),
    log:
        log("plot_survival"),
    benchmark:
        bench("plot_survival")
    conda:
        "../envs/report.yaml"
    params:
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/plot_survival.py"


rule report:
    input:
        estimates=rules.collect_estimates.output.estimates,
        table1=rules.describe_cohort.output.table1,
        flow=rules.describe_cohort.output.flow,
        km_figure=rules.plot_survival.output.figure,
        validation=rules.validate_exports.output.summary,
        published="resources/published.csv",
        template="sinet_bm/templates/report.html",
        code=package("report"),
    output:
        html=out("report/report.html"),
    log:
        log("report"),
    benchmark:
        bench("report")
    conda:
        "../envs/report.yaml"
    params:
        config=config,
    script:
        "../scripts/report.py"
