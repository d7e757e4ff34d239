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
    wildcard_constraints:
        root=alternatives(DATA_ROOTS),
    conda:
        "../envs/validate.yaml"
    threads: arrow_threads
    resources:
        mem_mb=memory(300, 5.5),
        runtime=minutes(),
    params:
        centre=lambda wildcards: centre_of(wildcards.root),
        raw_dir=export_setting("raw_dir"),
        raw_format=export_setting("raw_format"),
        columns=export_setting("columns"),
        values=export_setting("values"),
        ignore_columns=export_setting("ignore_columns"),
        definitions=config["definitions"],
        strict=config["strict"],
    script:
        "../scripts/validate_exports.py"
