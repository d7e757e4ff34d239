rule derive_endpoints:
    input:
        **{table: rules.validate_exports.output[table] for table in TABLES},
        code=package_code("derive_endpoints"),
    output:
        endpoints=at_root("endpoints/patients.parquet"),
    log:
        log("derive_endpoints"),
    benchmark:
        bench("derive_endpoints")
    wildcard_constraints:
        root=alternatives(DATA_ROOTS),
    conda:
        "../envs/endpoints.yaml"
    threads: arrow_threads
    resources:
        mem_mb=memory(300, 5.0),
        runtime=minutes(),
    params:
        definitions=config["definitions"],
    script:
        "../scripts/derive_endpoints.py"
