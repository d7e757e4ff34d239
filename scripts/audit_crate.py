"""Snakemake adapter: the audit crate (out_dir/audit/) and audit.zip beside it."""

import json
import os
import sys
from pathlib import Path

from sinet_bm.audit import Shipped, build_crate, write_crate
from sinet_bm.provenance import Places, step_record

sys.stderr = open(snakemake.log[0], "w")

inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params
places = Places.of(params.out_dir, params.exports)
provenance = json.loads(Path(inputs.provenance).read_text())
# provenance.json cannot record the job that writes it: the report's record is added here.
report = [step_record(name, step, places) for name, step in params.report_step.items()]
provenance["steps"] += report
results = [Shipped(Path(path), places.locate(path)[1]) for path in sorted(set(inputs.shareable))]
crate = build_crate(provenance, results, places.workflow, os.environ.get("SOURCE_DATE_EPOCH"))
write_crate(crate, Path(outputs.crate), Path(outputs.zip))
print(f"crate: {len(crate.data_entities)} files", file=sys.stderr)
