"""Snakemake adapter: the sensitivity analyses of section 4 (time-dependent BM, landmarks,
RMST, competing risks of SRE, time-dependent antiresorptive therapy)."""

import sys

from sinet_bm.results import estimates_frame, read_endpoints, write_estimates
from sinet_bm.sensitivity import COLUMNS, SensitivitySettings, sensitivity_estimates

sys.stderr = open(snakemake.log[0], "w")

settings = snakemake.params.sensitivity
rows = sensitivity_estimates(
    read_endpoints(snakemake.input.endpoints, COLUMNS),
    SensitivitySettings(
        landmarks_months=tuple(settings["landmarks_months"]),
        rmst_horizon_months=settings["rmst_horizon_months"],
        cif_months=tuple(settings["cif_months"]),
        days_per_month=snakemake.params.days_per_month,
    ),
    snakemake.params.confidence_level,
)
write_estimates(estimates_frame(rows), snakemake.output.estimates)
