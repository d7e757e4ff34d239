"""Time the pipeline's steps on a registry-scale canonical export (default 10^6 patients).

Not part of the test suite (it takes about two minutes and 3 GB of memory):

    .venv/bin/python tests/scale/measure.py [n_patients] [workdir]

Writes the export with the synthetic simulator, then times validation, endpoints and the
section 3 estimates as the Snakemake rules run them, and prints one line per step.
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sinet_bm import checks, ingest
from sinet_bm.endpoints import derive_endpoints, rules_from_config
from sinet_bm.models import cohort_estimates, survival_estimates
from sinet_bm.sensitivity import SensitivitySettings, sensitivity_estimates
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

REPO = Path(__file__).resolve().parents[2]


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<28} {time.perf_counter() - start:7.1f} s   peak RSS so far {peak:6.0f} MB")
    return result


def main(n_patients: int, workdir: Path) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    raw = workdir / "raw"
    tables = timed("simulate", simulate_cohort, scaled(SyntheticDesign(), n_patients), seed=1)
    timed("write CSV exports", write_exports, tables, raw)
    del tables
    sizes = {p.name: p.stat().st_size for p in raw.glob("*.csv")}
    print(f"export: {sum(sizes.values()) / 1e6:.0f} MB in {len(sizes)} files")
    rules = checks.definitions_from_config(config["definitions"])
    result = timed(
        "validate (all rules)", ingest.validate_folder, raw, REPO / "schemas",
        ingest.format_from_config(config), rules, strict=False,
    )  # fmt: skip
    print(f"rows: {result.rows}; findings: {len(result.findings)}")
    endpoints = timed(
        "derive endpoints", derive_endpoints, result.tables,
        rules_from_config(config["definitions"]),
    )  # fmt: skip
    level = config["analysis"]["confidence_level"]
    timed("cohort estimates", cohort_estimates, endpoints, level)
    timed("survival estimates", survival_estimates, endpoints, level)
    settings = config["sensitivity"]
    timed(
        "sensitivity estimates",
        sensitivity_estimates,
        endpoints,
        SensitivitySettings(
            tuple(settings["landmarks_months"]),
            settings["rmst_horizon_months"],
            tuple(settings["cif_months"]),
            config["definitions"]["days_per_month"],
        ),
        level,
    )


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if len(sys.argv) > 2:
        main(size, Path(sys.argv[2]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(size, Path(folder))
