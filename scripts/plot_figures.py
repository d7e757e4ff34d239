"""Snakemake adapter: every figure of the report, as SVG with the CSV of what it draws."""

import sys
from pathlib import Path

import pandas as pd

from sinet_bm.figures import plot_figures

sys.stderr = open(snakemake.log[0], "w")

plot_figures(
    endpoints=pd.read_parquet(snakemake.input.endpoints),
    estimates=pd.read_csv(snakemake.input.estimates, float_precision="round_trip"),
    flow=pd.read_csv(snakemake.input.flow),
    level=snakemake.params.confidence_level,
    days_per_month=snakemake.params.days_per_month,
    folder=Path(snakemake.output.km_os_bm).parent,
)
