"""Snakemake adapter: provenance.json, the audit record of every rule that ran."""

import sys

from sinet_bm.provenance import build_provenance, write_provenance

sys.stderr = open(snakemake.log[0], "w")

record = build_provenance(snakemake.params.steps, snakemake.params.config)
write_provenance(record, snakemake.output.provenance)
