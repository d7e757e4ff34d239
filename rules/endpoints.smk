rule derive_endpoints:
    input:
        patients=rules.validate_exports.output.patients,
        imaging=rules.validate_exports.output.imaging,
        therapies=rules.validate_exports.output.therapies,
        skeletal_events=rules.validate_exports.output.skeletal_events,
        code=package("endpoints", "ingest"),
    output:
        endpoints=out("endpoints/patients.parquet"),
    log:
        log("derive_endpoints"),
    benchmark:
        bench("derive_endpoints")
    conda:
        "../envs/endpoints.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 5.0),
        runtime=minutes(),
    params:
        definitions=config["definitions"],
    script:
        "../scripts/derive_endpoints.py"
