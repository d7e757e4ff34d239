"""Snakemake adapter: the one estimates.csv that every number of the report comes from, with
the bootstrap's percentile CIs gathered from its shards; the bias check's table."""

import sys

import pandas as pd

from sinet_bm.replicates import BootstrapSettings, bias_check_summary, percentile_rows
from sinet_bm.results import estimates_frame, read_estimates, read_result, write_estimates

sys.stderr = open(snakemake.log[0], "w")

estimates = read_estimates(snakemake.input.parts)
draws = pd.concat(map(read_result, snakemake.input.bootstrap), ignore_index=True)
draws = draws.sort_values("replicate", kind="stable").reset_index(drop=True)
stage_iv = int(estimates.set_index("estimate").at["n_stage_iv", "value"])
settings = BootstrapSettings(**snakemake.params.bootstrap)
rows = percentile_rows(draws, settings, snakemake.params.confidence_level, stage_iv)
write_estimates(pd.concat([estimates, estimates_frame(rows)]), snakemake.output.estimates)
resamples = draws[draws["replicate"] > 0]
resamples.to_csv(snakemake.output.draws, index=False, lineterminator="\n")
bias = pd.concat(map(read_result, snakemake.input.bias_check), ignore_index=True)
bias_check_summary(bias).to_csv(snakemake.output.bias, index=False, lineterminator="\n")
