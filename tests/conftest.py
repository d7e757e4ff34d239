"""Shared fixtures: the config, the tiny hand-made export, and real Snakemake runs."""

import hashlib
import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A 120-patient simulated export run as a centre would run its own data."""
    root = tmp_path_factory.mktemp("workflow")
    workdir = copy_workflow(root / "repo")
    raw = root / "exports"
    tables = simulate_cohort(scaled(SyntheticDesign(), 120), seed=5)
    write_exports(tables, raw)
    before = digest(raw)
    result = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, raw, before, tables
