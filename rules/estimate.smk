rule estimate_cohort:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package_code("estimate_cohort"),
    output:
        estimates=at_root("estimates/cohort.csv"),
        table1=at_root("tables/table1.csv"),
        flow=at_root("tables/flow.csv"),
    log:
        log("estimate_cohort"),
    benchmark:
        bench("estimate_cohort")
    priority: 2
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
        code=package_code("estimate_survival"),
    output:
        estimates=at_root("estimates/survival.csv"),
        ph_tests=at_root("tables/ph_tests.csv"),
        model=at_root("tables/cox_adjusted.json"),
    log:
        log("estimate_survival"),
    benchmark:
        bench("estimate_survival")
    priority: 2
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.4),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
        # The union of several centres' rows: also the Cox models stratified by centre.
        stratified=lambda wildcards: wildcards.root in UNION_ROOTS,
    script:
        "../scripts/estimate_survival.py"


rule estimate_sensitivity:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package_code("estimate_sensitivity"),
    output:
        estimates=at_root("estimates/sensitivity.csv"),
    log:
        log("estimate_sensitivity"),
    benchmark:
        bench("estimate_sensitivity")
    priority: 2
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


# Gathers the estimates of the sections and the sharded replicate work (the bootstrap's
# percentile CIs, the bias check's table).
rule collect_estimates:
    input:
        parts=estimate_parts,
        bootstrap=expand(
            rules.bootstrap_shard.output.draws,
            shard=shards("bootstrap_shard"),
            allow_missing=True,
        ),
        bias_check=expand(
            rules.bias_check_shard.output.replicates, shard=shards("bias_check_shard")
        ),
        code=package_code("collect_estimates"),
    output:
        estimates=at_root("estimates.csv"),
        draws=at_root("bootstrap/replicates.csv"),
        bias=at_root("tables/immortal_time_bias.csv"),
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
    params:
        bootstrap=bootstrap_settings(),
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/collect_estimates.py"
