# Replicate work, split into shards by the {shard} wildcard and gathered: on a cluster each
# shard is a job of its own. Replicate k draws from child stream k of the configured seed,
# so the results do not depend on the number of shards.


wildcard_constraints:
    shard=r"\d+",


rule bootstrap_shard:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package("models", "sensitivity", "replicates"),
    output:
        draws=out("bootstrap/shard_{shard}.csv"),
    log:
        log("bootstrap_shard_{shard}"),
    benchmark:
        bench("bootstrap_shard_{shard}")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 3.0),
        runtime=bootstrap_minutes,
    params:
        bootstrap=bootstrap_settings(),
        shards=config["bootstrap"]["shards"],
    script:
        "../scripts/bootstrap_shard.py"


rule bootstrap_ci:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        shards=expand(
            rules.bootstrap_shard.output.draws, shard=shards("bootstrap_shard")
        ),
        code=package("models", "sensitivity", "replicates"),
    output:
        estimates=out("estimates/bootstrap.csv"),
        draws=out("bootstrap/replicates.csv"),
    log:
        log("bootstrap_ci"),
    benchmark:
        bench("bootstrap_ci")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 2.6),
        runtime=minutes(),
    params:
        bootstrap=bootstrap_settings(),
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/bootstrap_ci.py"


rule bias_check_shard:
    input:
        code=package("simulate", "endpoints", "models", "sensitivity", "replicates"),
    output:
        replicates=out("bias_check/shard_{shard}.csv"),
    log:
        log("bias_check_shard_{shard}"),
    benchmark:
        bench("bias_check_shard_{shard}")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=bias_check_minutes,
    params:
        check=config["sensitivity"]["bias_check"],
        definitions=config["definitions"],
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/bias_check_shard.py"


rule check_immortal_time_bias:
    input:
        shards=expand(
            rules.bias_check_shard.output.replicates, shard=shards("bias_check_shard")
        ),
        code=package("replicates"),
    output:
        table=out("tables/immortal_time_bias.csv"),
    log:
        log("check_immortal_time_bias"),
    benchmark:
        bench("check_immortal_time_bias")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    script:
        "../scripts/check_immortal_time_bias.py"
