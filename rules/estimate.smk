rule estimate_cohort:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models"),
    output:
        estimates=out("estimates/cohort.csv"),
    log:
        log("estimate_cohort"),
    benchmark:
        bench("estimate_cohort")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.4),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/estimate_cohort.py"


rule estimate_survival:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models"),
    output:
        estimates=out("estimates/survival.csv"),
        ph_tests=out("tables/ph_tests.csv"),
    log:
        log("estimate_survival"),
    benchmark:
        bench("estimate_survival")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.4),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/estimate_survival.py"


rule estimate_sensitivity:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models", "sensitivity"),
    output:
        estimates=out("estimates/sensitivity.csv"),
    log:
        log("estimate_sensitivity"),
    benchmark:
        bench("estimate_sensitivity")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 4.0),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
        sensitivity=sensitivity_settings(),
        days_per_month=config["definitions"]["days_per_month"],
    script:
        "../scripts/estimate_sensitivity.py"


rule collect_estimates:
    input:
        parts=[
            rules.estimate_cohort.output.estimates,
            rules.estimate_survival.output.estimates,
            rules.estimate_sensitivity.output.estimates,
            rules.bootstrap_ci.output.estimates,
        ],
    output:
        estimates=out("estimates.csv"),
    log:
        log("collect_estimates"),
    benchmark:
        bench("collect_estimates")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    script:
        "../scripts/collect_estimates.py"


rule describe_cohort:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models"),
    output:
        table1=out("tables/table1.csv"),
        flow=out("tables/flow.csv"),
    log:
        log("describe_cohort"),
    benchmark:
        bench("describe_cohort")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.4),
        runtime=minutes(),
    script:
        "../scripts/describe_cohort.py"
