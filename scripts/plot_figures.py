"""Snakemake adapter: every figure of the report, as SVG with the CSV of what it draws."""

import json
import sys
from pathlib import Path

import pandas as pd

from sinet_bm.figures import COLUMNS, plot_figures
from sinet_bm.results import read_endpoints, read_estimates

sys.stderr = open(snakemake.log[0], "w")

plot_figures(
    endpoints=read_endpoints(snakemake.input.endpoints, COLUMNS),
    estimates=read_estimates(snakemake.input.estimates),
    flow=pd.read_csv(snakemake.input.flow),
    model=json.loads(Path(snakemake.input.model).read_text()),
    level=snakemake.params.confidence_level,
    days_per_month=snakemake.params.days_per_month,
    folder=Path(snakemake.output.km_os_bm).parent,
)
