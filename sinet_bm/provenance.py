"""Which inputs, code, parameters and software produced each result file.

One record per rule that ran: its inputs and outputs with SHA-256, its script with the git
blob hash (what `git hash-object` prints, so a reviewer can find the exact version in the
repository's history), its params, its conda environment and its measured wall time and
peak memory. Files are named relative to the folder they are in (the results folder, the
export folder, the workflow), so that the record of a rerun elsewhere is the same record:
where the folders were, and the timings, are kept apart, and the report shows neither.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
TIMING_KEYS = ("wall_seconds", "max_rss_mb", "ended")
# Config keys and step params that say where a run read and wrote, not what it computed.
PLACE_KEYS = ("raw_dir", "out_dir")
PLACE_PARAMS = ("raw_dir", "history")


@dataclass(frozen=True)
class Places:
    """The folders of a run: its results (out_dir), its exports (raw_dir, or each centre's,
    or the folders of the bundles pooled), the workflow. `exports` maps the name a file's
    folder is given in the record ("exports", "exports/<centre>", ...) to the folder."""

    results: Path
    exports: Mapping[str, Path]
    workflow: Path

    @classmethod
    def of(cls, out_dir: str | Path, exports: Mapping[str, str | Path]) -> Places:
        folders = {name: Path(folder).resolve() for name, folder in exports.items()}
        return cls(Path(out_dir).resolve(), folders, Path.cwd().resolve())

    def locate(self, path: str | Path) -> tuple[str, str]:
        """(folder, path within it) of a file, the results folder first."""
        absolute = Path(path).resolve()
        folders = {"results": self.results, **self.exports, "workflow": self.workflow}
        for folder, root in folders.items():
            if absolute.is_relative_to(root):
                return folder, absolute.relative_to(root).as_posix()
        return "elsewhere", absolute.as_posix()


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


def analysis_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the folders: what decides the results. Of several centres, their
    names and dialects; of a coordinator's bundles, their file names (each is an input,
    with its hash)."""
    analysis = {key: value for key, value in config.items() if key not in PLACE_KEYS}
    if "centres" in analysis:
        analysis["centres"] = {
            name: {key: value for key, value in settings.items() if key != "raw_dir"}
            for name, settings in analysis["centres"].items()
        }
    if "bundles" in analysis:
        analysis["bundles"] = [Path(path).name for path in analysis["bundles"]]
    return analysis


def config_digest(config: Mapping[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def timings(benchmark: str | None, outputs: list[str]) -> dict[str, Any]:
    """Wall time and peak memory (Snakemake's benchmark file), and when the step ended (its
    newest output, UTC)."""
    import pandas as pd  # here: `sinet-bm verify` hashes files and should start fast

    times: dict[str, Any] = dict.fromkeys(TIMING_KEYS)
    if benchmark and Path(benchmark).is_file():
        row = pd.read_csv(benchmark, sep="\t").iloc[-1]
        times |= {"wall_seconds": float(row["s"]), "max_rss_mb": float(row["max_rss"])}
    written = [Path(path).stat().st_mtime for path in outputs if Path(path).is_file()]
    if written:
        times["ended"] = datetime.fromtimestamp(max(written), tz=UTC).isoformat()
    return times


def file_records(paths: list[str], places: Places) -> list[dict[str, str]]:
    records = []
    for path in paths:
        folder, name = places.locate(path)
        digest = sha256(path) if Path(path).is_file() else "(missing)"
        records.append({"folder": folder, "path": name, "sha256": digest})
    return records


def build_provenance(
    steps: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any], places: Places
) -> dict:
    analysis = analysis_config(config)
    return {
        "pipeline": pipeline_version(),
        "config": analysis,
        "config_sha256": config_digest(analysis),
        "software": software_versions(),
        "place": {
            "out_dir": str(places.results),
            "exports": {name: str(folder) for name, folder in places.exports.items()},
        },
        "steps": [step_record(name, step, places) for name, step in steps.items()],
    }


def step_record(name: str, step: Mapping[str, Any], places: Places) -> dict[str, Any]:
    """One job as the record shows it: also used for the report, which writes the record."""
    return {
        "rule": name,
        "script": step["script"],
        "script_git_blob": git_blob_hash(step["script"]),
        "conda_env": step["conda_env"],
        "params": {k: v for k, v in step["params"].items() if k not in PLACE_PARAMS},
        "inputs": file_records(step["inputs"], places),
        "outputs": file_records(step["outputs"], places),
        **timings(step["benchmark"], step["outputs"]),
    }


def without_timings(provenance: Mapping[str, Any]) -> dict:
    """What the report may show: the same record without run-to-run timings and places."""
    steps = [
        {k: v for k, v in step.items() if k not in TIMING_KEYS} for step in provenance["steps"]
    ]
    return {key: value for key, value in provenance.items() if key != "place"} | {"steps": steps}


def write_provenance(record: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
