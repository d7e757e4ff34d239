"""Bundles and the pooled rows of several centres, without Snakemake: what a bundle holds
and withholds, how a coordinator refuses a bundle, and pooled rows checked by hand."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sinet_bm import bundle as bundles
from sinet_bm.consortium import pooled_results, union_endpoints, union_summary
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints
from sinet_bm.ingest import ExportFormat, format_from_config, validate_folder
from sinet_bm.results import estimates_frame, row
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

LEVEL = 0.95
PIPELINE = {"version": "0.1.0", "commit": "0" * 40, "modified": False}


def centre_endpoints(folder: Path, config: dict, n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    write_exports(simulate_cohort(scaled(SyntheticDesign(), n), seed=seed), folder)
    definitions = Definitions.from_config(config["definitions"])
    result = validate_folder(folder, format_from_config(config), definitions, strict=False)
    assert not result.has_errors
    summary = {
        "files": {
            table: {"name": path.name, "rows": result.rows[table], "sha256": "a" * 64}
            for table, path in result.paths.items()
        },
        "synthetic": True,
    }
    return derive_endpoints(result.tables, definitions), summary


def fake_estimates(hr: float, width: float, n: int, missing: bool = False) -> pd.DataFrame:
    """The rows of estimates.csv a bundle reads, with a chosen HR and a Wald CI of a chosen
    width on the log scale (the pipeline's own Cox fits are tested elsewhere)."""
    z = 1.959963984540054
    rows = [row("median_followup_months", "all", n, 30.0)]
    for name in bundles.HAZARD_RATIOS:
        if missing:
            rows.append(row(name, "stage_iv", n, method="Cox: not computable, no events"))
        else:
            ci = (hr * math.exp(-z * width), hr * math.exp(z * width))
            rows.append(row(name, "stage_iv", n, hr, ci, 0.01, "Cox"))
    return estimates_frame(rows)


@pytest.fixture(scope="module")
def centres(tmp_path_factory, config) -> dict[str, tuple[pd.DataFrame, dict]]:
    root = tmp_path_factory.mktemp("centres")
    sizes = {"essen": (200, 1), "kiel": (90, 2), "tiny": (40, 3)}
    return {
        name: centre_endpoints(root / name, config, n, seed) for name, (n, seed) in sizes.items()
    }


def make_bundle(endpoints, summary, config, centre, estimates, k=0) -> dict:
    built = bundles.build_bundle(
        endpoints,
        estimates,
        summary,
        centre=centre,
        source="patients.csv (canonical)",
        definitions=config["definitions"],
        level=LEVEL,
        life_table_months=1,
        horizon_months=120,
        pipeline=PIPELINE,
    )
    return bundles.withhold(built, k)


@pytest.fixture(scope="module")
def shared(centres, config) -> dict[str, dict]:
    effects = {"essen": (1.5, 0.2), "kiel": (3.0, 0.3), "tiny": (6.0, 0.5)}
    return {
        name: make_bundle(*centres[name], config, name, fake_estimates(*effects[name], 100))
        for name in centres
    }


def as_files(tmp_path: Path, contents: dict[str, dict]) -> list[Path]:
    paths = []
    for name, content in contents.items():
        path = tmp_path / name / "bundle.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        bundles.write_bundle(content, path)
        paths.append(path)
    return paths


def pooled(tmp_path: Path, contents: dict[str, dict]):
    results = pooled_results(bundles.read_bundles(as_files(tmp_path, contents)), LEVEL, [12, 60])
    return results, estimates_frame(results.rows).set_index("estimate")


# ---------------------------------------------------------------------------------------
# what a bundle holds


def test_a_bundle_is_valid_and_deterministic(shared, tmp_path):
    content = shared["essen"]
    assert bundles.schema_errors(content) == []
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    bundles.write_bundle(content, first)
    bundles.write_bundle(json.loads(first.read_text()), second)
    assert first.read_bytes() == second.read_bytes()


def test_a_bundle_names_no_patient_and_no_patient_date(centres, shared):
    """Scans the bytes of bundle.json and bundle.html for every id and every date of the
    centre's export; the only dates allowed are the definitions' own."""
    endpoints, _ = centres["essen"]
    text = json.dumps(shared["essen"]) + bundles.render_bundle_page(shared["essen"])
    ids = set(endpoints["patient_id"].astype(str))
    found_ids = ids & set(re.findall(r"[A-Za-z0-9_-]+", text))
    assert not found_ids
    dates = set()
    for column in endpoints.columns:
        if pd.api.types.is_datetime64_any_dtype(endpoints[column]):
            dates |= set(endpoints[column].dropna().dt.strftime("%Y-%m-%d"))
    allowed = {str(value) for value in shared["essen"]["definitions"].values()}
    assert dates and not (set(re.findall(r"\d{4}-\d{2}-\d{2}", text)) - allowed)


def test_the_page_shows_every_number_of_the_bundle(shared):
    content = shared["kiel"]
    page = bundles.render_bundle_page(content)
    for value in content["counts"].values():
        assert f">{value}<" in page
    for table in content["tables"].values():
        for cell in np.ravel(table):
            assert f">{cell}<" in page
    assert "Nothing is withheld" in page


def test_the_canonical_dialect_is_ingest_s_default():
    default = ExportFormat()
    assert {
        key: getattr(default, key) for key in bundles.CANONICAL_FORMAT
    } == bundles.CANONICAL_FORMAT


def test_the_source_names_the_dialect_in_words():
    german = bundles.export_source(
        ["patients.csv"],
        {"delimiter": ";", "decimal": ",", "encoding": "cp1252"},
        {"patients": {"Geschlecht": "sex", "Stadium": "uicc_stage"}},
        {"patients": {"sex": {"m": "male"}}},
    )
    assert german == (
        "patients.csv (delimiter ';'; decimal ','; encoding 'cp1252'; 2 columns renamed; "
        "values mapped in 1 columns)"
    )
    assert bundles.export_source(["patients.xlsx"], {}, {}, {}) == "patients.xlsx (canonical)"


# ---------------------------------------------------------------------------------------
# disclosure control


def test_k5_withholds_every_quantity_built_on_a_count_from_1_to_4(centres, config):
    endpoints, summary = centres["tiny"]
    open_bundle = make_bundle(endpoints, summary, config, "tiny", fake_estimates(2, 0.4, 3))
    closed = make_bundle(endpoints, summary, config, "tiny", fake_estimates(2, 0.4, 3), k=5)
    assert bundles.schema_errors(closed) == []
    withheld = {item["quantity"] for item in closed["withheld"]}
    counts = open_bundle["counts"]
    assert {f"counts.{name}" for name, n in counts.items() if 0 < n < 5} <= withheld
    # a hazard ratio of 3 patients, and each proportion or table with a cell of 1 to 4
    assert {f"hazard_ratios.{name}" for name in bundles.HAZARD_RATIOS} <= withheld
    for name, record in open_bundle["proportions"].items():
        small = any(0 < n < 5 for n in (record["x"], record["m"] - record["x"]))
        assert (f"proportions.{name}" in withheld) == small
    for name, table in open_bundle["tables"].items():
        assert (f"tables.{name}" in withheld) == any(0 < c < 5 for c in np.ravel(table))

    # and no count from 1 to 4 is left anywhere in the bundle
    def numbers(value):
        if isinstance(value, dict):
            return [n for key, v in value.items() if key != "min_cell_count" for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [value] if isinstance(value, int) and not isinstance(value, bool) else []

    shared_counts = numbers(
        {k: closed[k] for k in ("counts", "proportions", "tables", "life_tables")}
    )
    assert not [n for n in shared_counts if 0 < n < 5]


def test_merged_life_table_intervals_keep_the_counts(centres, config):
    endpoints, summary = centres["kiel"]
    content = make_bundle(endpoints, summary, config, "kiel", fake_estimates(2, 0.4, 80))
    for record in content["life_tables"].values():
        merged, note = bundles.merge_life_table(record, 5)
        assert merged, note
        assert all(d == 0 or d >= 5 for d in merged["deaths"])
        assert all(c == 0 or c >= 5 for c in merged["censored"])
        end = merged["ends"][-1]
        kept = [i for i, start in enumerate(record["starts"]) if start < end]
        assert sum(merged["deaths"]) == sum(record["deaths"][i] for i in kept)
        assert merged["starts"][0] == 0 and merged["at_risk"][0] == record["n"]
        assert "merged" in note


# ---------------------------------------------------------------------------------------
# the coordinator refuses bundles it cannot pool


def test_a_malformed_bundle_is_named(shared, tmp_path):
    paths = as_files(tmp_path, {"essen": shared["essen"]})
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "sinet-bm bundle", ')
    with pytest.raises(bundles.BundleError, match=re.escape(f"{broken}: not a readable bundle")):
        bundles.read_bundles([*paths, broken])
    invalid = json.loads(paths[0].read_text()) | {"counts": {"n_bm": -1}}
    broken.write_text(json.dumps(invalid))
    with pytest.raises(
        bundles.BundleError, match=re.escape(f"{broken}: not a valid bundle: counts")
    ):
        bundles.read_bundles([broken])


def test_a_bundle_of_another_version_is_refused(shared, tmp_path):
    path = as_files(tmp_path, {"essen": shared["essen"] | {"version": 2}})[0]
    with pytest.raises(
        bundles.BundleError, match="bundle version 2, this pipeline reads version 1"
    ):
        bundles.read_bundles([path])


def test_two_bundles_of_one_centre_are_refused(shared, tmp_path):
    paths = as_files(tmp_path, {"a": shared["essen"], "b": shared["essen"]})
    with pytest.raises(bundles.BundleError, match="two bundles of centre 'essen'"):
        bundles.read_bundles(paths)


def test_bundles_of_other_definitions_name_the_keys(shared, tmp_path):
    other = json.loads(json.dumps(shared["kiel"]))
    other["definitions"]["data_cutoff"] = "2025-06-30"
    other["definitions"]["min_age_years"] = 16
    paths = as_files(tmp_path, {"essen": shared["essen"], "kiel": other})
    with pytest.raises(bundles.BundleError, match="data_cutoff, min_age_years differ"):
        bundles.read_bundles(paths)


# ---------------------------------------------------------------------------------------
# pooled rows, by hand


def test_fixed_effect_hr_is_the_inverse_variance_mean_of_the_log_hrs(shared, tmp_path):
    _, rows = pooled(tmp_path, shared)
    hr = np.array([1.5, 3.0, 6.0])
    v = np.array([0.2, 0.3, 0.5]) ** 2
    w = 1 / v
    mean = np.sum(w * np.log(hr)) / np.sum(w)
    assert rows.at["hr_os_bm_crude_fe", "value"] == pytest.approx(math.exp(mean), rel=1e-12)
    se = 1 / math.sqrt(np.sum(w))
    assert rows.at["hr_os_bm_crude_fe", "ci_upper"] == pytest.approx(
        math.exp(mean + 1.959963984540054 * se), rel=1e-12
    )
    q = np.sum(w * (np.log(hr) - mean) ** 2)
    assert rows.at["hr_os_bm_crude_q", "value"] == pytest.approx(q, rel=1e-12)
    assert rows.at["hr_os_bm_crude_q", "n"] == 3
    assert rows.at["hr_os_bm_crude_tau2", "value"] > 0  # the effects differ between centres
    assert rows.at["n_centres", "value"] == 3


def test_the_stratified_logrank_sums_the_centres_o_minus_e_and_v(shared, tmp_path):
    _, rows = pooled(tmp_path, shared)
    parts = [shared[c]["logrank"] for c in shared]
    o_e = sum(p["observed"] - p["expected"] for p in parts)
    v = sum(p["variance"] for p in parts)
    assert rows.at["test_os_logrank_stratified", "value"] == pytest.approx(o_e**2 / v, rel=1e-12)
    assert rows.at["test_os_logrank_stratified", "n"] == sum(p["n"] for p in parts)


def test_the_pooled_life_table_sums_the_counts(shared, tmp_path, centres):
    _, rows = pooled(tmp_path, shared)
    union = union_endpoints({c: centres[c][0] for c in centres})
    stage_iv = union[union["eligible"] & union["stage_iv"] & union["bm"]]
    time, dead = stage_iv["os_months"].to_numpy(), stage_iv["dead"].to_numpy(bool)
    survival = 1.0
    for start in range(12):  # by hand, on the union's rows
        at_risk = np.sum(time >= start)
        inside = (time >= start) & (time < start + 1)
        d, c = np.sum(inside & dead), np.sum(inside & ~dead)
        if at_risk - c / 2 > 0:
            survival *= 1 - d / (at_risk - c / 2)
    assert rows.at["surv_os_bm_12", "value"] == pytest.approx(survival, rel=1e-12)
    assert rows.at["surv_os_bm_12", "n"] == len(stage_iv)


def test_one_centre_has_no_random_effects_and_says_why(shared, tmp_path):
    _, rows = pooled(tmp_path, {"essen": shared["essen"]})
    for part in ("re", "re_pi", "tau2", "i2"):
        assert pd.isna(rows.at[f"prop_bm_{part}", "value"])
        assert "one centre" in rows.at[f"prop_bm_{part}", "method"]
    assert rows.at["prop_bm_q", "value"] == 0 and rows.at["prop_bm_q", "p_value"] == 1
    assert rows.at["prop_bm_fe", "value"] == pytest.approx(
        shared["essen"]["counts"]["n_bm"] / shared["essen"]["counts"]["n_stage_iv"], rel=1e-12
    )


def test_a_centre_without_an_estimate_leaves_that_pooling_and_is_named(
    centres, shared, config, tmp_path
):
    no_model = make_bundle(*centres["tiny"], config, "tiny", fake_estimates(2, 0.4, 40, True))
    results, rows = pooled(
        tmp_path, {"essen": shared["essen"], "kiel": shared["kiel"], "tiny": no_model}
    )
    assert rows.at["hr_os_bm_adjusted_q", "n"] == 2
    assert (
        "left out: tiny (no estimate (Cox: not computable, no events))"
        in (rows.at["hr_os_bm_adjusted_fe", "method"])
    )
    assert rows.at["prop_bm_q", "n"] == 3
    left = results.left_out
    assert set(left.loc[left["centre"] == "tiny", "quantity"]) == set(bundles.HAZARD_RATIOS)


def test_a_withheld_table_leaves_the_mantel_haenszel_pooling(centres, shared, config, tmp_path):
    closed = make_bundle(*centres["tiny"], config, "tiny", fake_estimates(2, 0.4, 40), k=5)
    _, rows = pooled(tmp_path, {"essen": shared["essen"], "tiny": closed})
    if "withheld" in closed["tables"]["test_sre_antiresorptive"]:
        assert (
            "left out: tiny (withheld by the centre"
            in rows.at["test_sre_antiresorptive_mh", "method"]
        )
        assert rows.at["test_sre_antiresorptive_mh", "n"] == int(
            np.sum(shared["essen"]["tables"]["test_sre_antiresorptive"])
        )


def test_the_union_keeps_equal_ids_of_two_centres_apart():
    one = pd.DataFrame({"patient_id": ["P1", "P2"], "os_months": [1.0, 2.0]})
    union = union_endpoints({"essen": one, "kiel": one})
    assert union["patient_id"].tolist() == ["essen:P1", "essen:P2", "kiel:P1", "kiel:P2"]
    assert union["centre"].tolist() == ["essen", "essen", "kiel", "kiel"]
    summary = {
        "checks": 69,
        "files": {"patients": {"name": "patients.csv", "rows": 2, "sha256": "a" * 64}},
        "findings": {"by_check": {"x": 1}, "by_severity": {"error": 0, "warning": 1}},
        "synthetic": True,
    }
    combined = union_summary({"essen": summary, "kiel": summary})
    assert set(combined["files"]) == {"essen/patients", "kiel/patients"}
    assert combined["findings"]["by_check"] == {"x": 2}
