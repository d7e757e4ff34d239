rule simulate:
    input:
        code=package_code("simulate"),
    output:
        patients=str(SYNTHETIC_DIR / "patients.csv"),
        imaging=str(SYNTHETIC_DIR / "imaging.csv"),
        therapies=str(SYNTHETIC_DIR / "therapies.csv"),
        skeletal_events=str(SYNTHETIC_DIR / "skeletal_events.csv"),
        marker=str(SYNTHETIC_DIR / "SYNTHETIC.txt"),
    log:
        out("logs/simulate.log"),
    benchmark:
        out("benchmarks/simulate.tsv")
    conda:
        "../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=minutes(),
    params:
        design=synthetic_design(),
        definitions=config["definitions"],
        seed=config["synthetic"]["seed"],
    script:
        "../scripts/simulate.py"
