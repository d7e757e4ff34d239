"""Snakemake adapter: the one estimates.csv that every number of the report comes from."""

import sys

from sinet_bm.models import read_estimates, write_estimates

sys.stderr = open(snakemake.log[0], "w")

write_estimates(read_estimates(snakemake.input.parts), snakemake.output.estimates)
