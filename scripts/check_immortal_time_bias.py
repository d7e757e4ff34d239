"""Snakemake adapter: gathers the shards of the immortal-time bias check, with their
geometric mean."""

import sys

import pandas as pd

from sinet_bm.replicates import bias_check_summary

sys.stderr = open(snakemake.log[0], "w")

table = bias_check_summary(pd.concat(map(pd.read_csv, snakemake.input.shards), ignore_index=True))
table.to_csv(snakemake.output.table, index=False, lineterminator="\n")
