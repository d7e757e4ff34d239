"""Shared fixtures: the config, the tiny hand-made export, and real Snakemake runs.

The finished runs are made once per test session, whichever test worker asks first (a file
lock in the session's temporary folder), and only read by the tests: a test that runs
Snakemake again copies the run's folder first.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from sinet_bm import ingest
from sinet_bm.contract import Definitions
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "data" / "tiny"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
WORKFLOW_FILES = [
    "Snakefile",
    "config.yaml",
    "rules",
    "scripts",
    "schemas",
    "envs",
    "report",
    "resources/published.csv",
    "sinet_bm",
    "profiles",
]
SOURCE_DATE_EPOCH = "1719705600"  # 2024-06-30: reports of test runs are reproducible


@pytest.fixture(scope="session")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="session")
def tiny(config) -> ingest.Validation:
    return ingest.validate_folder(
        TINY,
        ingest.format_from_config(config),
        Definitions.from_config(config["definitions"]),
        strict=False,
    )


def copy_workflow(target: Path) -> Path:
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def snakemake(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SNAKEMAKE), "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **env},
    )


def break_export(raw: Path, broken: Path) -> None:
    """A copy of the exports with one invalid cell: line 4 of patients.csv, column sex."""
    shutil.copytree(raw, broken)
    patients = (broken / "patients.csv").read_text().splitlines()
    header = patients[0].split(",")
    cells = patients[3].split(",")
    cells[header.index("sex")] = "unknown"
    patients[3] = ",".join(cells)
    (broken / "patients.csv").write_text("\n".join(patients) + "\n")


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@contextmanager
def exclusive(lock: Path):
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# The test files with the longest chains of Snakemake runs, longest first. pytest-xdist
# (--dist loadfile) hands out whole files in collection order, so a long file collected
# late would keep one worker busy after the others have finished.
LONGEST_FIRST = (
    "test_reruns.py",
    "test_centres.py",
    "test_slurm.py",
    "test_interrupted.py",
    "test_dialects.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


def shared_folder(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder built once for the whole session, by the first test worker that needs it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers
    folder = root / name
    with exclusive(root / f"{name}.lock"):
        if not (folder / ".finished").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".finished").touch()
    return folder


# What differs between the audit crates of two runs by definition: the jobs' times, and the
# hash of provenance.json, which records times and places.
CRATE_TIMES = {"startTime", "endTime"}


def crate_without_times(metadata: bytes) -> list[dict]:
    """The @graph of a crate's ro-crate-metadata.json without CRATE_TIMES."""
    graph = json.loads(metadata)["@graph"]
    for entity in graph:
        for key in CRATE_TIMES & set(entity):
            del entity[key]
        if entity["@id"] == "#results/provenance.json":
            del entity["sha256"]
    return graph


def zip_entries(archive: Path) -> list[tuple[str, tuple, bytes]]:
    """Each entry of audit.zip: name, time and content (the metadata's without content)."""
    with zipfile.ZipFile(archive) as zipped:
        return [
            (entry.filename, entry.date_time, b"" if timed(entry) else zipped.read(entry))
            for entry in zipped.infolist()
        ]


def timed(entry: zipfile.ZipInfo) -> bool:
    return entry.filename == "ro-crate-metadata.json"


def copy_run(run: Path, target: Path) -> Path:
    """A private copy of a finished run's workflow folder (results and Snakemake's records
    included), for a test that runs Snakemake in it."""
    shutil.copytree(run, target, symlinks=True)
    return target


SMALL_EXPORT_PATIENTS = 120


def small_tables():
    return simulate_cohort(scaled(SyntheticDesign(), SMALL_EXPORT_PATIENTS), seed=5)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A 120-patient simulated export run as a centre would run its own data: the workflow
    folder (results in out/), the export folder, its digest before the run, its tables."""

    def build(root: Path) -> None:
        workdir = copy_workflow(root / "repo")
        write_exports(small_tables(), root / "exports")
        (root / "exports.json").write_text(json.dumps(digest(root / "exports")))
        result = snakemake(workdir, "--config", f"raw_dir={root / 'exports'}", "out_dir=out")
        assert result.returncode == 0, result.stderr[-3000:]

    root = shared_folder(tmp_path_factory, "small_run", build)
    before = json.loads((root / "exports.json").read_text())
    return root / "repo", root / "exports", before, small_tables()


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """The whole study on the built-in synthetic cohort, exactly as `make run` runs it."""

    def build(root: Path) -> None:
        workdir = copy_workflow(root / "repo")
        result = snakemake(workdir)
        assert result.returncode == 0, result.stderr[-3000:]

    return shared_folder(tmp_path_factory, "default_run", build) / "repo"
