"""Snakemake adapter: the centre's bundle of aggregates (share/bundle.json) and the page its
data-protection officer reads before it is sent (share/bundle.html)."""

import json
import sys
from importlib.metadata import version
from pathlib import Path

from sinet_bm.bundle import build_bundle, export_source, render_bundle_page, withhold, write_bundle
from sinet_bm.provenance import pipeline_version
from sinet_bm.results import read_endpoints, read_estimates

sys.stderr = open(snakemake.log[0], "w")

inputs, params = snakemake.input, snakemake.params
summary = json.loads(Path(inputs.summary).read_text())
files = [record["name"] for record in summary["files"].values()]
bundle = build_bundle(
    read_endpoints(
        inputs.endpoints,
        [
            "eligible",
            "stage_iv",
            "bm",
            "os_months",
            "dead",
            "sstr_only",
            "sre",
            "functioning",
            "antiresorptive",
        ],
    ),
    read_estimates(inputs.estimates),
    summary,
    centre=params.centre or "unnamed",
    source=export_source(files, params.raw_format, params.columns, params.values),
    definitions=params.definitions,
    level=params.confidence_level,
    life_table_months=params.pooling["life_table_months"],
    horizon_months=max(params.pooling["survival_months"]),
    pipeline=pipeline_version() | {"version": version("sinet-bm")},
)
shared = withhold(bundle, params.min_cell_count)
write_bundle(shared, snakemake.output.bundle)
Path(snakemake.output.page).write_text(render_bundle_page(shared), encoding="utf-8")
print(f"bundle: {len(shared['withheld'])} quantities withheld", file=sys.stderr)
