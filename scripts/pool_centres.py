"""Snakemake adapter: section 6's pooled rows from the centres' bundles, each centre's part
in every pooling, the pooled life table and the table of centres."""

import sys

from sinet_bm.bundle import BundleError, read_bundles
from sinet_bm.consortium import pooled_results
from sinet_bm.results import estimates_frame, write_estimates

sys.stderr = open(snakemake.log[0], "w")

try:
    bundles = read_bundles(snakemake.input.bundles)
except BundleError as error:
    message = f"siNET-BM: rule pool_centres: {error}"
    print(message, file=sys.__stderr__)  # on screen in a local run
    print(message, file=sys.stderr)  # in the rule's log, which a cluster run shows
    sys.exit(1)
results = pooled_results(
    bundles, snakemake.params.confidence_level, snakemake.params.survival_months
)
write_estimates(estimates_frame(results.rows), snakemake.output.estimates)
for name in ("inputs", "life_table", "centres", "left_out"):
    getattr(results, name).to_csv(snakemake.output[name], index=False, lineterminator="\n")
