"""Snakemake adapter: Table 1, baseline characteristics."""

import sys

import pandas as pd

from sinet_bm.models import baseline_table

sys.stderr = open(snakemake.log[0], "w")

endpoints = pd.read_parquet(snakemake.input.endpoints)
baseline_table(endpoints).to_csv(snakemake.output.table, index=False, lineterminator="\n")
