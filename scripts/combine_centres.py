"""Snakemake adapter: the centres' endpoints and validation summaries as one cohort's."""

import json
import sys
from pathlib import Path

import pandas as pd

from sinet_bm.consortium import union_endpoints, union_summary

sys.stderr = open(snakemake.log[0], "w")

inputs, centres = snakemake.input, snakemake.params.centres
frames = {c: pd.read_parquet(path) for c, path in zip(centres, inputs.endpoints, strict=True)}
endpoints = union_endpoints(frames)
endpoints.to_parquet(snakemake.output.endpoints, index=False, write_statistics=False)
summaries = {
    c: json.loads(Path(path).read_text()) for c, path in zip(centres, inputs.summaries, strict=True)
}
summary = json.dumps(union_summary(summaries), indent=1, sort_keys=True)
Path(snakemake.output.summary).write_text(summary)
