"""The example consortium of `make run-multicentre`: four synthetic centres, each in the dialect
resources/multicentre.yaml declares, that the pipeline reads without a finding and whose BM
effects differ enough for the pooled rows to show heterogeneity."""

from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from sinet_bm import ingest
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints, stage_iv_of
from sinet_bm.estimators import fit_cox
from sinet_bm.pooling import MetaAnalysis
from sinet_bm.simulate import CONSORTIUM, CONSORTIUM_SEED, centre_design, main, write_consortium

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = yaml.safe_load((REPO / "resources" / "multicentre.yaml").read_text(encoding="utf-8"))
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
DIALECT_KEYS = ("raw_format", "columns", "values", "ignore_columns")


def relocated(centres: dict, root: Path) -> dict:
    """The example's centres with their raw_dir below root (keeping the centre folder)."""
    return {
        name: {**entry, "raw_dir": str(root / Path(entry["raw_dir"]).name)}
        for name, entry in centres.items()
    }


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def centres(tmp_path_factory) -> dict:
    """The example written as `make run-multicentre` does, through the command line."""
    root = tmp_path_factory.mktemp("consortium")
    config = {**EXAMPLE, "centres": relocated(EXAMPLE["centres"], root / "exports")}
    (root / "multicentre.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    main(["consortium", str(root / "multicentre.yaml")])
    return config["centres"]


@pytest.fixture(scope="module")
def validated(centres, config) -> dict[str, ingest.Validation]:
    definitions = Definitions.from_config(config["definitions"])
    return {
        name: ingest.validate_folder(
            Path(entry["raw_dir"]), ingest.format_from_config(entry), definitions, strict=False
        )
        for name, entry in centres.items()
    }


@pytest.fixture(scope="module")
def endpoints(validated, config) -> dict[str, pd.DataFrame]:
    definitions = Definitions.from_config(config["definitions"])
    return {name: derive_endpoints(v.tables, definitions) for name, v in validated.items()}


def test_the_config_lists_the_simulated_centres_with_out_dir_of_its_own():
    assert list(EXAMPLE["centres"]) == [centre.name for centre in CONSORTIUM]
    assert EXAMPLE["out_dir"] == "results/multicentre"
    for name, entry in EXAMPLE["centres"].items():
        assert entry["raw_dir"] == f"resources/multicentre/{name}"


def test_each_centres_dialect_has_the_shape_of_the_top_level_keys():
    for entry in EXAMPLE["centres"].values():
        assert set(entry) <= {"raw_dir", *DIALECT_KEYS}
        for key in DIALECT_KEYS:
            if key in entry:
                jsonschema.validate(entry[key], SCHEMA["properties"][key])


def test_the_german_centre_is_declared_as_the_documented_german_export():
    german = yaml.safe_load((REPO / "tests" / "data" / "german_export.yaml").read_text())
    leipzig = EXAMPLE["centres"]["leipzig"]
    assert {key: leipzig[key] for key in DIALECT_KEYS} == german


def test_the_same_seed_writes_identical_bytes(centres, tmp_path):
    again = relocated(EXAMPLE["centres"], tmp_path)
    write_consortium(again, CONSORTIUM_SEED)
    first = folder_bytes(Path(next(iter(centres.values()))["raw_dir"]).parent)
    assert folder_bytes(tmp_path) == first
    assert any(name.endswith(".xlsx") for name in first)


def test_another_seed_writes_other_patients(centres, tmp_path):
    other = relocated(EXAMPLE["centres"], tmp_path)
    write_consortium(other, CONSORTIUM_SEED + 1)
    essen = Path(centres["essen"]["raw_dir"])
    assert (tmp_path / "essen" / "patients.csv").read_bytes() != (
        essen / "patients.csv"
    ).read_bytes()


def test_every_centre_reads_back_without_a_finding_and_is_marked_synthetic(centres, validated):
    for name, result in validated.items():
        assert result.findings.empty, (name, result.findings.head())
        raw_dir = Path(centres[name]["raw_dir"])
        assert ingest.summary(result, raw_dir)["synthetic"], name


def test_the_dialects_are_the_declared_ones(centres):
    suffixes = {
        name: {p.suffix for p in Path(entry["raw_dir"]).iterdir() if p.stem != "SYNTHETIC"}
        for name, entry in centres.items()
    }
    assert suffixes == {
        "essen": {".csv"},
        "leipzig": {".csv"},
        "dublin": {".xlsx"},
        "uppsala": {".csv"},
    }
    leipzig = (Path(centres["leipzig"]["raw_dir"]) / "patients.csv").read_bytes()
    assert leipzig.startswith(b"patient_id;Geschlecht;")
    assert "Größe".encode("cp1252") in leipzig
    uppsala = (Path(centres["uppsala"]["raw_dir"]) / "patients.csv").read_bytes()
    assert b";kvinna;" in uppsala or b";man;" in uppsala


def test_the_centres_have_their_intended_sizes(endpoints):
    for centre in CONSORTIUM:
        design = centre_design(centre)
        patients = endpoints[centre.name]
        stage_iv = stage_iv_of(patients)
        assert len(patients) == design.n_exported, centre.name
        assert int(patients["eligible"].sum()) == centre.n_eligible, centre.name
        assert (len(stage_iv), int(stage_iv["bm"].sum())) == (design.n_stage_iv, design.n_bm)
        assert int(stage_iv.loc[stage_iv["bm"], "sre"].sum()) == design.n_sre, centre.name
    assert [c.n_eligible for c in CONSORTIUM] == [458, 250, 150, 80]


def test_the_smallest_centre_still_has_bm_deaths_and_sres(endpoints):
    stage_iv = stage_iv_of(endpoints["uppsala"])
    bm = stage_iv[stage_iv["bm"]]
    assert len(bm) >= 15
    assert bm["dead"].sum() >= 3
    assert bm["sre"].sum() >= 2


def test_the_bm_shares_and_effects_differ_between_centres():
    designs = [centre_design(centre) for centre in CONSORTIUM]
    assert len({round(d.n_bm / d.n_stage_iv, 2) for d in designs}) == len(CONSORTIUM)
    medians = [d.os_median_bm_months for d in designs]
    assert medians == sorted(medians, reverse=True)
    ratios = [
        (d.os_median_no_bm_months / d.os_median_bm_months) ** d.os_weibull_shape for d in designs
    ]
    np.testing.assert_allclose(ratios, [c.bm_hazard_ratio for c in CONSORTIUM])


def test_a_random_effects_meta_analysis_of_the_crude_bm_hazard_ratios_finds_heterogeneity(
    endpoints,
):
    fits = [
        fit_cox(stage_iv_of(endpoints[c.name]), ["bm"], "os_months", "dead", 0.95).fitter
        for c in CONSORTIUM
    ]
    y = np.array([fit.params_["bm"] for fit in fits])
    v = np.array([fit.standard_errors_["bm"] ** 2 for fit in fits])
    assert y[-1] > y[0]  # the centre simulated with HR 6 against the one with HR 1.5
    assert MetaAnalysis.fit(y, v, 0.95).tau2 > 0
