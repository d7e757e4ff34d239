# Replicate work, split into shards by the {shard} wildcard and gathered by collect_estimates:
# on a cluster each shard is a job of its own. Replicate k draws from child stream k of the
# configured seed, so the results do not depend on the number of shards.


rule bootstrap_shard:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        code=package_code("bootstrap_shard"),
    output:
        draws=at_root("bootstrap/shard_{shard}.csv"),
    log:
        log("bootstrap_shard_{shard}"),
    benchmark:
        bench("bootstrap_shard_{shard}")
    priority: 1
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


# Simulated cohorts, not the data: one check per run, in out_dir.
rule bias_check_shard:
    input:
        code=package_code("bias_check_shard"),
    output:
        replicates=out("bias_check/shard_{shard}.csv"),
    log:
        out("logs/bias_check_shard_{shard}.log"),
    benchmark:
        out("benchmarks/bias_check_shard_{shard}.tsv")
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=bias_check_minutes,
    params:
        check=config["sensitivity"]["bias_check"],
        design=synthetic_design(),
        definitions=config["definitions"],
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/bias_check_shard.py"
