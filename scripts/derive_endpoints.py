"""Snakemake adapter: one row per patient with every derived endpoint."""

import sys

import pandas as pd

from sinet_bm.contract import TABLES, Definitions
from sinet_bm.endpoints import derive_endpoints

sys.stderr = open(snakemake.log[0], "w")

tables = {table: pd.read_parquet(snakemake.input[table]) for table in TABLES}
endpoints = derive_endpoints(tables, Definitions.from_config(snakemake.params.definitions))
endpoints.to_parquet(snakemake.output.endpoints, index=False)
