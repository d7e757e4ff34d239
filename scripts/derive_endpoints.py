"""Snakemake adapter: one row per patient with every derived endpoint."""

import contextlib
import sys

import pyarrow

from sinet_bm.contract import TABLES, Definitions
from sinet_bm.endpoints import endpoint_table, read_tables, write_endpoints

# Arrow's jemalloc pool reuses freed memory: at 10^6 patients fresh pages (zeroed by the
# kernel) cost more than a step's own work. Not every platform's pyarrow has it.
with contextlib.suppress(NotImplementedError):
    pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())

sys.stderr = open(snakemake.log[0], "w")

tables = read_tables({table: snakemake.input[table] for table in TABLES})
endpoints = endpoint_table(tables, Definitions.from_config(snakemake.params.definitions))
write_endpoints(endpoints, snakemake.output.endpoints)
