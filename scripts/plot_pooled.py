"""Snakemake adapter: forest plots of the pooled quantities and the pooled life table."""

import sys
from pathlib import Path

from sinet_bm.consortium import QUANTITIES
from sinet_bm.figures import plot_pooled
from sinet_bm.results import read_result

sys.stderr = open(snakemake.log[0], "w")

plot_pooled(
    inputs=read_result(snakemake.input.inputs),
    pooled=read_result(snakemake.input.estimates),
    life_table=read_result(snakemake.input.life_table),
    labels=QUANTITIES,
    level=snakemake.params.confidence_level,
    folder=Path(snakemake.output.pooled_life_table).parent,
)
