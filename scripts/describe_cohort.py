"""Snakemake adapter: Table 1 (baseline characteristics) and the cohort flow counts."""

import sys

import pandas as pd

from sinet_bm.models import baseline_table, cohort_flow

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
baseline_table(endpoints).to_csv(snakemake.output.table1, index=False, lineterminator="\n")
cohort_flow(endpoints).to_csv(snakemake.output.flow, index=False, lineterminator="\n")
