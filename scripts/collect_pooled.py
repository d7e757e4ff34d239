"""Snakemake adapter: a coordinator's estimates.csv, the pooled rows."""

import sys

from sinet_bm.results import read_estimates, write_estimates

sys.stderr = open(snakemake.log[0], "w")

write_estimates(read_estimates(snakemake.input.parts), snakemake.output.estimates)
