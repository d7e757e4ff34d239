"""Snakemake adapter: provenance.json, the refresh snapshot and changelog, and the study
report as one self-contained HTML page and its PDF."""

import json
import os
import sys
from pathlib import Path

import pandas as pd

from sinet_bm.provenance import Places, build_provenance, write_provenance
from sinet_bm.refresh import COLUMNS, changelog, previous_snapshot, snapshot, write_json
from sinet_bm.report import CONSORTIUM_INPUTS, render_pdf, render_report, run_date
from sinet_bm.results import read_estimates

sys.stderr = open(snakemake.log[0], "w")

inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params
places = Places.of(params.out_dir, params.exports)
write_provenance(build_provenance(params.steps, params.config, places), outputs.provenance)
current = snapshot(
    json.loads(Path(inputs.validation).read_text()),
    pd.read_parquet(inputs.endpoints, columns=list(COLUMNS)),
    read_estimates([inputs.estimates]),
)
previous = previous_snapshot(current, Path(params.history))
print(f"compared with: {previous and previous['export_digest']}", file=sys.stderr)
write_json(current, outputs.snapshot)
write_json(changelog(current, previous), outputs.changelog)
html = render_report(
    estimates=Path(inputs.estimates),
    table1=Path(inputs.table1),
    flow=Path(inputs.flow),
    bias=Path(inputs.bias),
    ph_tests=Path(inputs.ph_tests),
    figures={Path(path).stem: Path(path) for path in inputs.figures},
    validation=Path(inputs.validation),
    provenance=Path(outputs.provenance),
    changelog=Path(outputs.changelog),
    published=Path(inputs.published),
    config=params.config,
    min_cell_count=params.min_cell_count,
    run_date=run_date(os.environ.get("SOURCE_DATE_EPOCH")),
    consortium=(
        {name: inputs[name] for name in CONSORTIUM_INPUTS} if hasattr(inputs, "pooled") else None
    ),
)
Path(outputs.html).write_text(html, encoding="utf-8")
render_pdf(Path(outputs.html), Path(outputs.pdf))
