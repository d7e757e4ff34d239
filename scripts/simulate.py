"""Snakemake adapter: simulate the synthetic cohort into the canonical export format."""

import sys
from pathlib import Path

from sinet_bm.simulate import design_from_config, simulate_cohort, write_exports

sys.stderr = open(snakemake.log[0], "w")

design = design_from_config(snakemake.params.design, snakemake.params.definitions)
tables = simulate_cohort(design, seed=snakemake.params.seed)
write_exports(tables, Path(snakemake.output.patients).parent)
