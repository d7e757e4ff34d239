"""Snakemake adapter: overall survival by BM status (Kaplan-Meier, log-rank, Cox), also
within functioning and non-functioning tumours; the proportional-hazards tests."""

import sys

import pandas as pd

from sinet_bm.results import estimates_frame, write_estimates
from sinet_bm.survival import adjusted_cox, ph_tests_table, survival_estimates

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
level = snakemake.params.confidence_level
write_estimates(estimates_frame(survival_estimates(endpoints, level)), snakemake.output.estimates)
ph_tests_table(adjusted_cox(endpoints, level)).to_csv(
    snakemake.output.ph_tests, index=False, lineterminator="\n"
)
