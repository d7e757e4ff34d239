"""Which inputs, code, parameters and software produced each result file.

One record per rule that ran: its inputs and outputs with SHA-256, its script with the git
blob hash (what `git hash-object` prints, so a reviewer can find the exact version in the
repository's history), its params, its conda environment and its measured wall time and
peak memory. The report shows everything but the timings, which differ from run to run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = (
    "snakemake",
    "pandas",
    "numpy",
    "pandera",
    "pyarrow",
    "openpyxl",
    "scipy",
    "lifelines",
    "matplotlib",
    "seaborn",
    "jinja2",
    "weasyprint",
)
TIMING_KEYS = ("wall_seconds", "max_rss_mb")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_hash(path: str | Path) -> str:
    """The id git gives the file's content: sha1 of 'blob <size>\\0' + content."""
    content = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    versions |= {name: importlib.metadata.version(name) for name in PACKAGES}
    return versions


def pipeline_version(folder: str | Path = ".") -> dict[str, Any]:
    """The commit the workflow ran from, and whether tracked files differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown (not a git checkout)", "modified": None}
    return {"commit": commit, "modified": bool(changes.strip())}


def config_digest(config: Mapping[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def benchmark(path: str | None) -> dict[str, float | None]:
    if not path or not Path(path).is_file():
        return dict.fromkeys(TIMING_KEYS)
    row = pd.read_csv(path, sep="\t").iloc[-1]
    return {"wall_seconds": float(row["s"]), "max_rss_mb": float(row["max_rss"])}


def file_records(paths: list[str]) -> list[dict[str, str]]:
    return [
        {"path": path, "sha256": sha256(path) if Path(path).is_file() else "(missing)"}
        for path in paths
    ]


def build_provenance(steps: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> dict:
    return {
        "pipeline": pipeline_version(),
        "config_sha256": config_digest(config),
        "software": software_versions(),
        "steps": [
            {
                "rule": name,
                "script": step["script"],
                "script_git_blob": git_blob_hash(step["script"]),
                "conda_env": step["conda_env"],
                "params": step["params"],
                "inputs": file_records(step["inputs"]),
                "outputs": file_records(step["outputs"]),
                **benchmark(step["benchmark"]),
            }
            for name, step in steps.items()
        ],
    }


def without_timings(provenance: Mapping[str, Any]) -> dict:
    """What the report may show: the same record without run-to-run timings."""
    steps = [
        {k: v for k, v in step.items() if k not in TIMING_KEYS} for step in provenance["steps"]
    ]
    return {**provenance, "steps": steps}


def write_provenance(record: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
