"""Snakemake adapter: the cohort's counts, proportions and Fisher tests; Table 1 and the
cohort flow."""

import sys

from sinet_bm.cohort import COLUMNS, baseline_table, cohort_estimates, cohort_flow
from sinet_bm.results import estimates_frame, read_endpoints, write_estimates

sys.stderr = open(snakemake.log[0], "w")

endpoints = read_endpoints(snakemake.input.endpoints, COLUMNS)
rows = cohort_estimates(endpoints, snakemake.params.confidence_level)
write_estimates(estimates_frame(rows), snakemake.output.estimates)
baseline_table(endpoints).to_csv(snakemake.output.table1, index=False, lineterminator="\n")
cohort_flow(endpoints).to_csv(snakemake.output.flow, index=False, lineterminator="\n")
