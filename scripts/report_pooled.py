"""Snakemake adapter: a coordinator's provenance.json and report (HTML and PDF) of the
pooled rows of the centres' bundles."""

import os
import sys
from pathlib import Path

from sinet_bm.provenance import Places, build_provenance, write_provenance
from sinet_bm.report import CONSORTIUM_INPUTS, render_pdf, render_pooled_report, run_date

sys.stderr = open(snakemake.log[0], "w")

inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params
places = Places.of(params.out_dir, params.exports)
write_provenance(build_provenance(params.steps, params.config, places), outputs.provenance)
html = render_pooled_report(
    estimates=Path(inputs.estimates),
    consortium={name: inputs[name] for name in CONSORTIUM_INPUTS},
    provenance=Path(outputs.provenance),
    config=params.config,
    min_cell_count=params.min_cell_count,
    run_date=run_date(os.environ.get("SOURCE_DATE_EPOCH")),
)
Path(outputs.html).write_text(html, encoding="utf-8")
render_pdf(Path(outputs.html), Path(outputs.pdf))
