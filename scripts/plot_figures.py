"""Snakemake adapter: every figure of the report, as SVG with the CSV of what it draws."""

import json
import sys
from pathlib import Path

import pandas as pd

from sinet_bm.figures import COLUMNS, plot_figures
from sinet_bm.results import read_endpoints

sys.stderr = open(snakemake.log[0], "w")

plot_figures(
    endpoints=read_endpoints(snakemake.input.endpoints, COLUMNS),
    estimates=pd.read_csv(snakemake.input.estimates, float_precision="round_trip"),
    flow=pd.read_csv(snakemake.input.flow),
    model=json.loads(Path(snakemake.input.model).read_text()),
    level=snakemake.params.confidence_level,
    days_per_month=snakemake.params.days_per_month,
    folder=Path(snakemake.output.km_os_bm).parent,
)
