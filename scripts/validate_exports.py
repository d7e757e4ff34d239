"""Snakemake adapter: validate the raw exports; findings always written, errors stop the run."""

import contextlib
import sys
from pathlib import Path

import pyarrow

from sinet_bm import ingest
from sinet_bm.contract import Definitions
from sinet_bm.findings import render_validation_page, sort_findings, write_issues

# Arrow's jemalloc pool reuses freed memory: at 10^6 patients fresh pages (zeroed by the
# kernel) cost more than a step's own work. Not every platform's pyarrow has it.
with contextlib.suppress(NotImplementedError):
    pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())

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
definitions = Definitions.from_config(params.definitions)
result = ingest.validate_folder(raw_dir, fmt, definitions, strict=params.strict)
write_issues(result.findings, Path(snakemake.log.issues))
# With several centres, the page and the message on screen say which centre's exports.
centre = f"centre {params.centre}: " if params.centre else ""
page = render_validation_page(
    sort_findings(result.findings),
    result.checks,
    result.rows,
    ", ".join(sorted(path.name for path in result.paths.values())) or "no export files",
    (raw_dir / ingest.SYNTHETIC_MARKER).is_file(),
    params.centre,
)
Path(snakemake.log.page).write_text(page, encoding="utf-8")
summary = centre + ingest.terminal_summary(result, snakemake.log.issues, snakemake.log.page)
print(summary, file=sys.__stderr__)  # on screen in a local run
print(summary, file=sys.stderr)  # in the rule's log, which a cluster run shows on failure
if result.has_errors:
    sys.exit(1)
ingest.write_tables(result.tables, snakemake.output)
ingest.write_summary(result, raw_dir, Path(snakemake.output.summary))
