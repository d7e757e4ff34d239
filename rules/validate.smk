rule validate_exports:
    input:
        unpack(raw_exports),
        code=package_code("validate_exports"),
    output:
        patients=at_root("validated/patients.parquet"),
        imaging=at_root("validated/imaging.parquet"),
        therapies=at_root("validated/therapies.parquet"),
        skeletal_events=at_root("validated/skeletal_events.parquet"),
        summary=at_root("validated/summary.json"),
    log:
        # The findings are a log so that they survive a failed validation.
        issues=at_root("validation/issues.csv"),
        page=at_root("validation/report.html"),
        log=log("validate_exports"),
    benchmark:
        bench("validate_exports")
    conda:
        "../envs/validate.yaml"
    threads: arrow_threads
    resources:
        mem_mb=memory(300, 5.5),
        runtime=minutes(),
    params:
        raw_dir=str(raw_dir()),
        raw_format=config["raw_format"],
        columns=config["columns"],
        values=config["values"],
        ignore_columns=config["ignore_columns"],
        definitions=config["definitions"],
        strict=config["strict"],
    script:
        "../scripts/validate_exports.py"
