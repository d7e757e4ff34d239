"""Snakemake adapter: the study report as one self-contained HTML page."""

import os
import sys
from pathlib import Path

from sinet_bm.report import render_report, run_date

sys.stderr = open(snakemake.log[0], "w")

figures = {Path(path).stem: Path(path) for path in snakemake.input.figures}
html = render_report(
    estimates=Path(snakemake.input.estimates),
    table1=Path(snakemake.input.table1),
    flow=Path(snakemake.input.flow),
    bias=Path(snakemake.input.bias),
    ph_tests=Path(snakemake.input.ph_tests),
    figures=figures,
    validation=Path(snakemake.input.validation),
    provenance=Path(snakemake.input.provenance),
    changelog=Path(snakemake.input.changelog),
    published=Path(snakemake.input.published),
    config=snakemake.params.config,
    min_cell_count=snakemake.params.min_cell_count,
    run_date=run_date(os.environ.get("SOURCE_DATE_EPOCH")),
)
Path(snakemake.output.html).write_text(html, encoding="utf-8")
