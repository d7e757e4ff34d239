"""Snakemake adapter: overall survival by BM status (Kaplan-Meier, log-rank, Cox)."""

import sys

import pandas as pd

from sinet_bm.models import (
    adjusted_cox,
    estimates_frame,
    ph_tests_table,
    survival_estimates,
    write_estimates,
)

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
rows = survival_estimates(endpoints, snakemake.params.confidence_level)
write_estimates(estimates_frame(rows), snakemake.output.estimates)
level = snakemake.params.confidence_level
ph_tests_table(adjusted_cox(endpoints, level)).to_csv(
    snakemake.output.ph_tests, index=False, lineterminator="\n"
)
