"""Snakemake adapter: naive vs time-dependent BM hazard ratios on simulated cohorts in which
BM do not change the hazard (the size of immortal-time bias)."""

import sys

from sinet_bm.endpoints import derive_endpoints, rules_from_config
from sinet_bm.sensitivity import BiasCheck, immortal_time_bias
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort

sys.stderr = open(snakemake.log[0], "w")

check = BiasCheck(**snakemake.params.check)
design = scaled(SyntheticDesign(), check.n_eligible)
rules = rules_from_config(snakemake.params.definitions)
table = immortal_time_bias(
    lambda seed: derive_endpoints(simulate_cohort(design, seed), rules),
    check,
    snakemake.params.confidence_level,
)
table.to_csv(snakemake.output.table, index=False, lineterminator="\n")
