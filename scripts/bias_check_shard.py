"""Snakemake adapter: one shard of the simulated cohorts in which BM do not change the hazard
(the size of immortal-time bias)."""

import sys

from sinet_bm.endpoints import derive_endpoints, rules_from_config
from sinet_bm.replicates import BiasCheck, bias_check_replicates, shard_replicates
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort

sys.stderr = open(snakemake.log[0], "w")

check = BiasCheck(**snakemake.params.check)
design = scaled(SyntheticDesign(), check.n_eligible)
rules = rules_from_config(snakemake.params.definitions)
table = bias_check_replicates(
    lambda seed: derive_endpoints(simulate_cohort(design, seed), rules),
    shard_replicates(int(snakemake.wildcards.shard), check.shards, check.replicates),
    check,
    snakemake.params.confidence_level,
)
table.to_csv(snakemake.output.replicates, index=False, lineterminator="\n")
