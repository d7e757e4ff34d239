# Several centres (contract section 6). Each centre is a data root of its own
# (centres/<centre>/) that runs the single-centre steps; its bundle (share/) holds what the
# pooled rows need. The centres' rows together are the union, analysed in out_dir by the
# same steps; the pooled rows come from the bundles alone, whether this run wrote them or
# the centres sent them to a coordinator (bundles:).


# The centres' rows as one cohort: what validation and derivation give a single centre.
rule combine_centres:
    input:
        endpoints=centre_files("endpoints/patients.parquet"),
        summaries=centre_files("validated/summary.json"),
        code=package_code("combine_centres"),
    output:
        endpoints=at_root("endpoints/patients.parquet"),
        summary=at_root("validated/summary.json"),
    log:
        log("combine_centres"),
    benchmark:
        bench("combine_centres")
    wildcard_constraints:
        root=alternatives(UNION_ROOTS),
    conda:
        "../envs/endpoints.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 5.0),
        runtime=minutes(),
    params:
        centres=list(CENTRES),
    script:
        "../scripts/combine_centres.py"


# What may leave the centre, as JSON for pooling and as a page for its data-protection
# officer. Nothing of one centre's study waits for it: it runs when a core is free.
rule share_bundle:
    input:
        endpoints=rules.derive_endpoints.output.endpoints,
        # the parts, not estimates.csv: the bootstrap and the bias check are not shared
        estimates=[
            rules.estimate_cohort.output.estimates,
            rules.estimate_survival.output.estimates,
            rules.estimate_sensitivity.output.estimates,
        ],
        summary=rules.validate_exports.output.summary,
        code=package_code("share_bundle"),
    output:
        bundle=at_root("share/bundle.json"),
        page=at_root("share/bundle.html"),
    log:
        log("share_bundle"),
    benchmark:
        bench("share_bundle")
    wildcard_constraints:
        root=alternatives(DATA_ROOTS),
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300, 1.0),
        runtime=minutes(),
    params:
        centre=lambda wildcards: centre_of(wildcards.root) or config["centre"],
        raw_format=export_setting("raw_format"),
        columns=export_setting("columns"),
        values=export_setting("values"),
        definitions=config["definitions"],
        confidence_level=config["analysis"]["confidence_level"],
        pooling=config["pooling"],
        min_cell_count=config["privacy"]["min_cell_count"],
    script:
        "../scripts/share_bundle.py"


rule pool_centres:
    input:
        bundles=centre_bundles(),
        code=package_code("pool_centres"),
    output:
        estimates=at_root("estimates/pooled.csv"),
        inputs=at_root("tables/pooled_inputs.csv"),
        life_table=at_root("tables/pooled_life_table.csv"),
        centres=at_root("tables/centres.csv"),
        left_out=at_root("tables/pooled_left_out.csv"),
    log:
        log("pool_centres"),
    benchmark:
        bench("pool_centres")
    wildcard_constraints:
        root=alternatives(POOLED_ROOTS),
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
        survival_months=config["pooling"]["survival_months"],
    script:
        "../scripts/pool_centres.py"


rule plot_pooled:
    input:
        estimates=rules.pool_centres.output.estimates,
        inputs=rules.pool_centres.output.inputs,
        life_table=rules.pool_centres.output.life_table,
        code=package_code("plot_pooled"),
    output:
        **pooled_figure_outputs(),
        data=expand(
            at_root("figures/{figure}.csv"), figure=POOLED_FIGURES, allow_missing=True
        ),
    log:
        log("plot_pooled"),
    benchmark:
        bench("plot_pooled")
    wildcard_constraints:
        root=alternatives(POOLED_ROOTS),
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(400),
        runtime=minutes(),
    params:
        confidence_level=config["analysis"]["confidence_level"],
    script:
        "../scripts/plot_pooled.py"


# A coordinator's run: the pooled rows are the whole of estimates.csv.
rule collect_pooled:
    input:
        parts=[rules.pool_centres.output.estimates],
        code=package_code("collect_pooled"),
    output:
        estimates=at_root("estimates.csv"),
    log:
        log("collect_pooled"),
    wildcard_constraints:
        root=alternatives(COORDINATOR_ROOTS),
    conda:
        "../envs/estimate.yaml"
    threads: 1
    resources:
        mem_mb=memory(300),
        runtime=minutes(),
    script:
        "../scripts/collect_pooled.py"


rule report_pooled:
    input:
        **consortium_inputs(),
        estimates=rules.collect_pooled.output.estimates,
        audited=analysis_outputs(),
        code=package_code("report_pooled"),
    output:
        html=at_root("report/report.html"),
        pdf=at_root("report/report.pdf"),
        provenance=at_root("provenance.json"),
    log:
        log("report_pooled"),
    benchmark:
        bench("report_pooled")
    wildcard_constraints:
        root=alternatives(COORDINATOR_ROOTS),
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=minutes(),
    params:
        steps=rule_manifest(),
        config=config,
        min_cell_count=config["privacy"]["min_cell_count"],
        out_dir=lambda wildcards, output: os.path.dirname(output.provenance),
        exports=export_folders(),
    script:
        "../scripts/report_pooled.py"
