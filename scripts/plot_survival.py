"""Snakemake adapter: Kaplan-Meier plot of overall survival by BM status, and its data."""

import sys

import pandas as pd

from sinet_bm.figures import plot_os_by_bm

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
plot_os_by_bm(
    endpoints,
    snakemake.params.confidence_level,
    snakemake.output.figure,
    snakemake.output.data,
)
