"""Snakemake adapter: overall survival by BM status (Kaplan-Meier, log-rank, Cox)."""

import sys

import pandas as pd

from sinet_bm.models import estimates_frame, survival_estimates, write_estimates

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
rows = survival_estimates(endpoints, snakemake.params.confidence_level)
write_estimates(estimates_frame(rows), snakemake.output.estimates)
