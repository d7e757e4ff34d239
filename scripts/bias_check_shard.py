"""Snakemake adapter: one shard of the simulated cohorts in which BM do not change the hazard
(the size of immortal-time bias), simulated with the configured study's design."""

import sys

from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints
from sinet_bm.replicates import BiasCheck, shard_replicates
from sinet_bm.sensitivity import bias_check_replicates
from sinet_bm.simulate import design_from_config, scaled, simulate_cohort

sys.stderr = open(snakemake.log[0], "w")

params = snakemake.params
check = BiasCheck(**params.check)
design = scaled(design_from_config(params.design, params.definitions), check.n_eligible)
definitions = Definitions.from_config(params.definitions)
table = bias_check_replicates(
    lambda seed: derive_endpoints(simulate_cohort(design, seed), definitions),
    shard_replicates(int(snakemake.wildcards.shard), check.shards, check.replicates),
    check,
    params.confidence_level,
)
table.to_csv(snakemake.output.replicates, index=False, lineterminator="\n")
