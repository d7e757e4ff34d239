"""Snakemake adapter: overall survival by BM status (Kaplan-Meier, log-rank, Cox), also
within functioning and non-functioning tumours; the proportional-hazards tests and the
adjusted model, for the residual figure."""

import json
import sys
from pathlib import Path

from sinet_bm.results import estimates_frame, read_endpoints, write_estimates
from sinet_bm.survival import COLUMNS, model_record, survival_results

sys.stderr = open(snakemake.log[0], "w")

stratified = snakemake.params.stratified
endpoints = read_endpoints(snakemake.input.endpoints, [*COLUMNS, *(["centre"] * stratified)])
results = survival_results(endpoints, snakemake.params.confidence_level, stratified)
write_estimates(estimates_frame(results.rows), snakemake.output.estimates)
results.ph_tests.to_csv(snakemake.output.ph_tests, index=False, lineterminator="\n")
Path(snakemake.output.model).write_text(json.dumps(model_record(results.adjusted), indent=1))
