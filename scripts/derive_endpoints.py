"""Snakemake adapter: one row per patient with every derived endpoint."""

import sys

from sinet_bm.contract import TABLES, Definitions
from sinet_bm.endpoints import derive_endpoints, read_tables

sys.stderr = open(snakemake.log[0], "w")

tables = read_tables({table: snakemake.input[table] for table in TABLES})
endpoints = derive_endpoints(tables, Definitions.from_config(snakemake.params.definitions))
# No column statistics: nothing filters on them, and they cost a tenth of the writing.
endpoints.to_parquet(snakemake.output.endpoints, index=False, write_statistics=False)
