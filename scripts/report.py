"""Snakemake adapter: the study report as one self-contained HTML page."""

import sys
from pathlib import Path

from sinet_bm.report import render_report

sys.stderr = open(snakemake.log[0], "w")

html = render_report(
    estimates=Path(snakemake.input.estimates),
    table1=Path(snakemake.input.table1),
    flow=Path(snakemake.input.flow),
    km_figure=Path(snakemake.input.km_figure),
    validation=Path(snakemake.input.validation),
    published=Path(snakemake.input.published),
    template=Path(snakemake.input.template),
    config=snakemake.params.config,
)
Path(snakemake.output.html).write_text(html, encoding="utf-8")
