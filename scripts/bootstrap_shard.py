"""Snakemake adapter: one shard of bootstrap resamples of the stage IV patients."""

import sys

from sinet_bm.endpoints import stage_iv_of
from sinet_bm.replicates import BootstrapSettings, shard_replicates
from sinet_bm.results import read_endpoints
from sinet_bm.sensitivity import BOOTSTRAP_COLUMNS, bootstrap_replicates

sys.stderr = open(snakemake.log[0], "w")

settings = BootstrapSettings(**snakemake.params.bootstrap)
draws = bootstrap_replicates(
    stage_iv_of(read_endpoints(snakemake.input.endpoints, BOOTSTRAP_COLUMNS)),
    shard_replicates(int(snakemake.wildcards.shard), snakemake.params.shards, settings.replicates),
    settings,
)
draws.to_csv(snakemake.output.draws, index=False, lineterminator="\n")
