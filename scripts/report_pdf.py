"""Snakemake adapter: the PDF of the study report, printed from the same HTML."""

import sys
from pathlib import Path

from sinet_bm.report import render_pdf

sys.stderr = open(snakemake.log[0], "w")

render_pdf(Path(snakemake.input.html), Path(snakemake.output.pdf))
