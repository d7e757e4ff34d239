rule simulate:
    input:
        code=package("simulate"),
    output:
        patients=str(SYNTHETIC_DIR / "patients.csv"),
        imaging=str(SYNTHETIC_DIR / "imaging.csv"),
        therapies=str(SYNTHETIC_DIR / "therapies.csv"),
        skeletal_events=str(SYNTHETIC_DIR / "skeletal_events.csv"),
        marker=str(SYNTHETIC_DIR / "SYNTHETIC.txt"),
    log:
        log("simulate"),
    benchmark:
        bench("simulate")
    conda:
        "../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=minutes(),
    params:
        design=synthetic_design(),
        seed=config["synthetic"]["seed"],
    script:
        "../scripts/simulate.py"
