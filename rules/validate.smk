rule validate_exports:
    input:
        unpack(raw_exports),
        schemas=expand("schemas/{table}.yaml", table=TABLES),
        code=package("ingest", "checks", "report"),
        template="sinet_bm/templates/validation.html",
    output:
        patients=out("validated/patients.parquet"),
        imaging=out("validated/imaging.parquet"),
        therapies=out("validated/therapies.parquet"),
        skeletal_events=out("validated/skeletal_events.parquet"),
        summary=out("validated/summary.json"),
    log:
        # The findings are a log so that they survive a failed validation.
        issues=out("validation/issues.csv"),
        page=out("validation/report.html"),
        log=log("validate_exports"),
    benchmark:
        bench("validate_exports")
    conda:
        "../envs/validate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 5.5),
        runtime=minutes(),
    params:
        raw_dir=str(raw_dir()),
        schema_dir=schema_dir,
        raw_format=config["raw_format"],
        columns=config["columns"],
        values=config["values"],
        ignore_columns=config["ignore_columns"],
        definitions=config["definitions"],
        strict=config["strict"],
    script:
        "../scripts/validate_exports.py"
