"""The same cohort exported as canonical CSV, as a German CSV and as .xlsx gives the same study."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, snakemake

from sinet_bm import ingest
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints
from sinet_bm.simulate import (
    SyntheticDesign,
    scaled,
    simulate_cohort,
    write_dialect_exports,
    write_exports,
    write_xlsx_exports,
)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
GERMAN = yaml.safe_load((DATA / "german_export.yaml").read_text())


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dialects")
    tables = simulate_cohort(scaled(SyntheticDesign(), 150), seed=9)
    write_exports(tables, root / "canonical")
    write_dialect_exports(tables, root / "german", GERMAN)
    write_xlsx_exports(tables, root / "xlsx", {"raw_format": {"sheet": "Export"}})
    return {"canonical": root / "canonical", "german": root / "german", "xlsx": root / "xlsx"}


def endpoints_of(folder: Path, config: dict, overrides: dict) -> pd.DataFrame:
    fmt = ingest.format_from_config({**config, **overrides})
    definitions = Definitions.from_config(config["definitions"])
    result = ingest.validate_folder(folder, fmt, definitions, strict=False)
    assert result.findings.empty, result.findings.head()
    return derive_endpoints(result.tables, Definitions.from_config(config["definitions"]))


def test_german_export_gives_the_same_endpoints(exports, config):
    canonical = endpoints_of(exports["canonical"], config, {})
    german = endpoints_of(exports["german"], config, GERMAN)
    pd.testing.assert_frame_equal(german, canonical)


def test_xlsx_export_gives_the_same_endpoints(exports, config):
    canonical = endpoints_of(exports["canonical"], config, {})
    workbook = endpoints_of(exports["xlsx"], config, {"raw_format": {"sheet": "Export"}})
    pd.testing.assert_frame_equal(workbook, canonical)


def test_a_missing_sheet_is_named(exports, config):
    fmt = ingest.format_from_config({**config, "raw_format": {"sheet": "Tabelle1"}})
    result = ingest.validate_folder(
        exports["xlsx"],
        fmt,
        Definitions.from_config(config["definitions"]),
        strict=False,
    )
    assert set(result.findings["check"]) == {"sheet"}
    assert "Export" in result.findings["message"].iloc[0]


@pytest.mark.slow
def test_all_three_dialects_give_an_identical_estimates_csv(exports, tmp_path):
    workdir = copy_workflow(tmp_path / "repo")
    (tmp_path / "german.yaml").write_text(yaml.safe_dump(GERMAN, allow_unicode=True))
    (tmp_path / "xlsx.yaml").write_text(yaml.safe_dump({"raw_format": {"sheet": "Export"}}))
    runs = {
        "canonical": [],
        "german": ["--configfile", str(tmp_path / "german.yaml")],
        "xlsx": ["--configfile", str(tmp_path / "xlsx.yaml")],
    }
    for name, extra in runs.items():
        result = snakemake(
            workdir,
            *extra,
            "--config",
            f"raw_dir={exports[name]}",
            f"out_dir=out_{name}",
            "--",
            f"out_{name}/estimates.csv",
        )
        assert result.returncode == 0, result.stderr[-3000:]
    canonical = (workdir / "out_canonical" / "estimates.csv").read_bytes()
    for name in ("german", "xlsx"):
        assert (workdir / f"out_{name}" / "estimates.csv").read_bytes() == canonical, name
