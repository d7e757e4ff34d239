"""Snakemake adapter: gathers the bootstrap shards into percentile CIs."""

import sys

import pandas as pd

from sinet_bm.models import estimates_frame, stage_iv_of, write_estimates
from sinet_bm.replicates import BootstrapSettings, percentile_rows

sys.stderr = open(snakemake.log[0], "w")

settings = BootstrapSettings(**snakemake.params.bootstrap)
draws = pd.concat(map(pd.read_csv, snakemake.input.shards), ignore_index=True)
draws = draws.sort_values("replicate", kind="stable").reset_index(drop=True)
stage_iv = stage_iv_of(pd.read_parquet(snakemake.input.endpoints))
rows = percentile_rows(stage_iv, draws, settings, snakemake.params.confidence_level)
draws.to_csv(snakemake.output.draws, index=False, lineterminator="\n")
write_estimates(estimates_frame(rows), snakemake.output.estimates)
