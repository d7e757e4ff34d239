"""Snakemake adapter: this export's snapshot, and what changed since the previous export
analysed in the same out_dir (read from the snapshots filed there after earlier runs)."""

import json
import sys
from pathlib import Path

import pandas as pd

from sinet_bm.models import read_estimates
from sinet_bm.refresh import changelog, previous_snapshot, snapshot, write_json

sys.stderr = open(snakemake.log[0], "w")

current = snapshot(
    json.loads(Path(snakemake.input.summary).read_text()),
    pd.read_parquet(snakemake.input.endpoints),
    read_estimates([snakemake.input.estimates]),
)
previous = previous_snapshot(current, Path(snakemake.params.history))
print(f"compared with: {previous and previous['export_digest']}", file=sys.stderr)
write_json(current, snakemake.output.snapshot)
write_json(changelog(current, previous), snakemake.output.changelog)
