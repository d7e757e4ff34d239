"""Snakemake adapter: validate the raw exports; findings always written, errors stop the run."""

import sys
from pathlib import Path

from sinet_bm import ingest

sys.stderr = open(snakemake.log.log, "w")

params = snakemake.params
raw_dir = Path(params.raw_dir)
fmt = ingest.format_from_config(
    {
        "raw_format": params.raw_format,
        "columns": params.columns,
        "values": params.values,
        "ignore_columns": params.ignore_columns,
    }
)
rules = ingest.definitions_from_config(params.definitions)
result = ingest.validate_folder(raw_dir, Path(params.schema_dir), fmt, rules, strict=params.strict)
ingest.write_issues(result.findings, Path(snakemake.log.issues))
print(ingest.terminal_summary(result, snakemake.log.issues), file=sys.__stderr__)
if result.has_errors:
    sys.exit(1)
ingest.write_tables(result.tables, snakemake.output)
ingest.write_summary(result, raw_dir, Path(snakemake.output.summary))
