"""Snakemake adapter: cohort flow, proportions and Fisher tests."""

import sys

import pandas as pd

from sinet_bm.models import cohort_estimates, estimates_frame, write_estimates

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
rows = cohort_estimates(endpoints, snakemake.params.confidence_level)
write_estimates(estimates_frame(rows), snakemake.output.estimates)
