"""The synthetic cohort, checked from its four tables with the contract's own definitions."""

import dataclasses
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter

from sinet_bm.simulate import (
    COLUMNS,
    SyntheticDesign,
    design_from_config,
    scaled,
    simulate_cohort,
    write_exports,
)

DEFAULT_SEED = 20251023
DAYS_PER_MONTH = 30.4375
STUDY_START = pd.Timestamp("2003-01-01")
STUDY_END = pd.Timestamp("2023-12-31")
DATA_CUTOFF = pd.Timestamp("2024-06-30")
ANTIRESORPTIVES = {"denosumab", "zoledronic_acid", "other_bisphosphonate"}
PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CATEGORIES = {
    ("patients", "sex"): {"female", "male"},
    ("patients", "primary_site"): {"jejunum", "ileum", "small_intestine_nos"},
    ("patients", "uicc_stage"): {"I", "II", "III", "IV"},
    ("patients", "grade"): {"G1", "G2", "G3"},
    ("patients", "vital_status"): {"alive", "dead"},
    ("imaging", "modality"): {"sstr_pet_ct", "ct", "mri"},
    ("imaging", "lesion_type"): {"osteoblastic", "osteolytic", "mixed"},
    ("therapies", "therapy"): {
        "somatostatin_analog",
        "prrt",
        "everolimus",
        "chemotherapy",
        "surgery",
        "liver_directed",
        "external_radiotherapy",
        "other",
        *ANTIRESORPTIVES,
    },
    ("skeletal_events", "event_type"): {
        "pathologic_fracture",
        "spinal_cord_compression",
        "radiation_to_bone",
        "surgery_to_bone",
        "hypercalcemia",
    },
}


@pytest.fixture(scope="module")
def default_tables() -> dict[str, pd.DataFrame]:
    return simulate_cohort(SyntheticDesign(), DEFAULT_SEED)


@pytest.fixture(scope="module")
def small_tables() -> dict[str, pd.DataFrame]:
    return simulate_cohort(scaled(SyntheticDesign(), 60), 7)


@pytest.fixture(scope="module")
def large_tables() -> dict[str, pd.DataFrame]:
    return simulate_cohort(scaled(SyntheticDesign(), 20_000), 11)


def endpoints(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per exported patient with the section 2 endpoints, from the tables alone."""
    patients = tables["patients"].set_index("patient_id")
    imaging = tables["imaging"]
    age_days = (patients["diagnosis_date"] - patients["birth_date"]).dt.days
    in_period = patients["diagnosis_date"].between(STUDY_START, STUDY_END)
    positive = imaging[imaging["bone_sstr_uptake"].fillna(False) | imaging["bone_morphologic"]]
    morphologic = imaging[imaging["bone_morphologic"]]
    bm_date = positive.groupby("patient_id")["exam_date"].min()
    first_morphologic = morphologic.groupby("patient_id")["exam_date"].min()
    at_first = morphologic[
        morphologic["exam_date"] == morphologic["patient_id"].map(first_morphologic)
    ]
    types = at_first.groupby("patient_id")["lesion_type"].agg(
        lambda found: found.iloc[0] if found.nunique() == 1 else "mixed"
    )
    therapies = tables["therapies"]
    treated = therapies.loc[therapies["therapy"].isin(ANTIRESORPTIVES), "patient_id"]
    events = tables["skeletal_events"]
    after_bm = events["event_date"] >= events["patient_id"].map(bm_date)
    out = pd.DataFrame(index=patients.index)
    out["age_years"] = age_days / 365.25
    out["excluded_period"] = ~in_period
    out["excluded_age"] = in_period & (out["age_years"] < 18)
    out["eligible"] = in_period & (out["age_years"] >= 18)
    out["male"] = patients["sex"] == "male"
    out["functioning"] = patients["functioning"]
    out["stage_iv"] = patients["uicc_stage"] == "IV"
    out["bm_date"] = bm_date.reindex(out.index)
    out["bm"] = out["stage_iv"] & out["bm_date"].notna()
    out["first_morphologic"] = first_morphologic.reindex(out.index)
    out["sstr_only"] = out["bm"] & ~(out["first_morphologic"] <= out["bm_date"])
    out["bm_type"] = types.reindex(out.index).fillna("unknown")
    out["last_exam"] = imaging.groupby("patient_id")["exam_date"].max().reindex(out.index)
    out["antiresorptive"] = out.index.isin(treated)
    out["sre"] = out.index.isin(events.loc[after_bm, "patient_id"])
    followup_days = (patients["last_followup_date"] - patients["diagnosis_date"]).dt.days
    out["os_months"] = followup_days / DAYS_PER_MONTH
    out["dead"] = patients["vital_status"] == "dead"
    return out


def km_median(durations: pd.Series, events: pd.Series) -> float:
    return KaplanMeierFitter().fit(durations, events).median_survival_time_


def sstr_only_times(bm: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Months from BM date to visibility; never visible censored at the last exam."""
    sstr_only = bm[bm["sstr_only"]]
    visible = sstr_only["first_morphologic"].notna()
    end = sstr_only["first_morphologic"].where(visible, sstr_only["last_exam"])
    return (end - sstr_only["bm_date"]).dt.days / DAYS_PER_MONTH, visible


def test_default_cohort_has_the_published_counts(default_tables):
    cohort = endpoints(default_tables)
    eligible = cohort[cohort["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    bm = stage_iv[stage_iv["bm"]]
    assert len(cohort) == 467
    assert cohort["excluded_period"].sum() == 6
    assert cohort["excluded_age"].sum() == 3
    assert len(eligible) == 458
    assert eligible["male"].sum() == 247
    assert abs(eligible["age_years"].median() - 58) < 0.5
    assert len(stage_iv) == 305
    assert len(bm) == 105
    assert eligible["functioning"].sum() == 183
    assert bm["functioning"].sum() == 77
    assert bm["sstr_only"].sum() == 51
    assert bm["bm_type"].value_counts().to_dict() == {
        "osteoblastic": 61,
        "osteolytic": 26,
        "mixed": 12,
        "unknown": 6,
    }
    assert bm["antiresorptive"].sum() == 57
    assert bm["sre"].sum() == 13
    assert (bm["sre"] & bm["antiresorptive"]).sum() == 0
    assert bm.loc[bm["sre"], "bm_type"].value_counts().to_dict() == {
        "osteolytic": 8,
        "mixed": 3,
        "osteoblastic": 2,
    }


def test_default_cohort_has_the_edge_cases(default_tables):
    cohort = endpoints(default_tables)
    eligible = cohort[cohort["eligible"]]
    patients = default_tables["patients"].set_index("patient_id")
    eighteenth_birthday = (patients["diagnosis_date"] - patients["birth_date"]).dt.days.eq(6574) & (
        patients["birth_date"] + pd.DateOffset(years=18)
    ).eq(patients["diagnosis_date"])
    assert (eighteenth_birthday & cohort["excluded_age"]).sum() == 1
    assert (cohort["excluded_period"] & (patients["diagnosis_date"] > STUDY_END)).sum() == 2
    assert (eligible["bm_date"].notna() & ~eligible["stage_iv"]).sum() == 5
    imaging = default_tables["imaging"]
    morphologic = imaging[imaging["bone_morphologic"]]
    two_types = morphologic.groupby(["patient_id", "exam_date"])["lesion_type"].nunique() > 1
    assert two_types.sum() == 4


def test_bone_metastases_are_partly_metachronous(default_tables):
    cohort = endpoints(default_tables)
    bm = cohort[cohort["eligible"] & cohort["bm"]]
    diagnosis = default_tables["patients"].set_index("patient_id")["diagnosis_date"]
    metachronous = (bm["bm_date"] - diagnosis.reindex(bm.index)).dt.days > 90
    assert 0.3 <= metachronous.mean() <= 0.4


@pytest.mark.parametrize(
    ("estimate", "target"),
    [("os_bm", 127), ("os_no_bm", 170), ("followup", 36), ("visible", 16), ("visible_km", 16)],
)
def test_default_cohort_is_calibrated_to_the_published_medians(default_tables, estimate, target):
    cohort = endpoints(default_tables)
    eligible = cohort[cohort["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    bm, no_bm = stage_iv[stage_iv["bm"]], stage_iv[~stage_iv["bm"]]
    months, visible = sstr_only_times(bm)
    value = {
        "os_bm": lambda: km_median(bm["os_months"], bm["dead"]),
        "os_no_bm": lambda: km_median(no_bm["os_months"], no_bm["dead"]),
        "followup": lambda: km_median(eligible["os_months"], ~eligible["dead"]),
        "visible": lambda: months[visible].median(),
        "visible_km": lambda: km_median(months, visible),
    }[estimate]()
    assert abs(value / target - 1) < 0.15


def test_bm_stays_associated_with_os_after_adjustment(default_tables):
    cohort = endpoints(default_tables)
    patients = default_tables["patients"].set_index("patient_id")
    ki67 = patients["ki67_percent"]
    derived = pd.cut(ki67, [-np.inf, 2.999, 20, np.inf], labels=["G1", "G2", "G3"]).astype(object)
    grade = patients["grade"].fillna(derived)
    stage_iv = cohort["eligible"] & cohort["stage_iv"] & grade.notna()
    model_data = pd.DataFrame(
        {
            "os_months": cohort["os_months"],
            "dead": cohort["dead"].astype(int),
            "bm": cohort["bm"].astype(int),
            "age_years": cohort["age_years"],
            "male": cohort["male"].astype(int),
            "g2": (grade == "G2").astype(int),
            "g3": (grade == "G3").astype(int),
        }
    )[stage_iv]
    adjusted = CoxPHFitter().fit(model_data, "os_months", "dead")
    assert adjusted.hazard_ratios_["bm"] > 1
    assert adjusted.summary.loc["bm", "p"] < 0.05


def assert_contract_rules(tables: dict[str, pd.DataFrame]) -> None:
    for name, columns in COLUMNS.items():
        assert tuple(tables[name].columns) == columns
    for (name, column), allowed in CATEGORIES.items():
        assert set(tables[name][column].dropna()) <= allowed

    patients = tables["patients"]
    assert patients["patient_id"].is_unique
    assert patients["patient_id"].map(PATIENT_ID.match).notna().all()
    assert patients["patient_id"].is_monotonic_increasing
    required = patients.drop(columns=["ki67_percent", "grade"])
    assert required.notna().all().all()
    age_years = (patients["diagnosis_date"] - patients["birth_date"]).dt.days / 365.25
    assert age_years.between(0, 120, inclusive="right").all()
    assert (patients["diagnosis_date"] <= patients["last_followup_date"]).all()
    assert (patients["last_followup_date"] <= DATA_CUTOFF).all()
    ki67, grade = patients["ki67_percent"], patients["grade"]
    assert ki67.dropna().between(0, 100).all()
    derived = pd.cut(ki67, [-np.inf, 2.999, 20, np.inf], labels=["G1", "G2", "G3"]).astype(object)
    both = ki67.notna() & grade.notna()
    assert (derived[both] == grade[both]).all()

    by_id = patients.set_index("patient_id")
    for name, date_columns in {
        "imaging": ["exam_date"],
        "therapies": ["start_date", "end_date"],
        "skeletal_events": ["event_date"],
    }.items():
        table = tables[name]
        assert table["patient_id"].isin(by_id.index).all()
        last_followup = table["patient_id"].map(by_id["last_followup_date"])
        for column in date_columns:
            assert (table[column].isna() | (table[column] <= last_followup)).all()
        assert (
            table.drop(columns=["end_date", "bone_sstr_uptake", "lesion_type"], errors="ignore")
            .notna()
            .all()
            .all()
        )

    imaging = tables["imaging"]
    diagnosis = imaging["patient_id"].map(by_id["diagnosis_date"])
    assert ((diagnosis - imaging["exam_date"]).dt.days <= 180).all()
    assert not imaging.duplicated(["patient_id", "exam_date", "modality"]).any()
    assert (imaging["bone_sstr_uptake"].notna() == (imaging["modality"] == "sstr_pet_ct")).all()
    assert (imaging["lesion_type"].notna() == imaging["bone_morphologic"]).all()
    assert imaging.equals(
        imaging.sort_values(["patient_id", "exam_date", "modality"], ignore_index=True)
    )

    therapies = tables["therapies"]
    assert (therapies["end_date"].isna() | (therapies["end_date"] >= therapies["start_date"])).all()

    events = tables["skeletal_events"]
    assert (events["event_date"] >= events["patient_id"].map(by_id["diagnosis_date"])).all()
    assert not events.duplicated(["patient_id", "event_date", "event_type"]).any()
    first_positive = endpoints(tables)["bm_date"]
    assert (events["event_date"] >= events["patient_id"].map(first_positive)).all()


def test_default_cohort_follows_the_contract(default_tables):
    assert_contract_rules(default_tables)


def test_scaled_cohorts_follow_the_contract(small_tables, large_tables):
    assert_contract_rules(small_tables)
    assert_contract_rules(large_tables)


def test_scaled_cohorts_keep_the_structural_counts(small_tables, large_tables):
    for n_eligible, tables in ((60, small_tables), (20_000, large_tables)):
        design = scaled(SyntheticDesign(), n_eligible)
        cohort = endpoints(tables)
        eligible = cohort[cohort["eligible"]]
        bm = eligible[eligible["bm"]]
        assert len(eligible) == design.n_eligible
        assert eligible["male"].sum() == design.n_male
        assert eligible["stage_iv"].sum() == design.n_stage_iv
        assert len(bm) == design.n_bm
        assert eligible["functioning"].sum() == design.n_functioning
        assert bm["antiresorptive"].sum() == design.n_antiresorptive
        assert bm["sre"].sum() == design.n_sre >= 1


def test_scaled_keeps_proportions():
    default = SyntheticDesign()
    assert scaled(default, default.n_eligible) == default
    small = scaled(default, 60)
    assert (small.n_stage_iv, small.n_bm) == (40, 14)
    assert min(small.n_osteoblastic, small.n_osteolytic, small.n_mixed, small.n_unknown) >= 1
    assert small.n_sre >= 1
    huge = scaled(default, 1_000_000)
    assert abs(huge.n_bm / huge.n_stage_iv - 105 / 305) < 1e-5
    assert abs(huge.n_sre / huge.n_bm - 13 / 105) < 1e-5


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    design = scaled(SyntheticDesign(), 80)
    for name, seed in (("first", 5), ("again", 5), ("other", 6)):
        write_exports(simulate_cohort(design, seed), tmp_path / name)
    for table in COLUMNS:
        first = (tmp_path / "first" / f"{table}.csv").read_bytes()
        assert first == (tmp_path / "again" / f"{table}.csv").read_bytes()
    other = (tmp_path / "other" / "patients.csv").read_bytes()
    assert other != (tmp_path / "first" / "patients.csv").read_bytes()


def test_exports_are_in_the_canonical_dialect(default_tables, tmp_path: Path):
    write_exports(default_tables, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "SYNTHETIC.txt",
        "imaging.csv",
        "patients.csv",
        "skeletal_events.csv",
        "therapies.csv",
    ]
    notice = (tmp_path / "SYNTHETIC.txt").read_text(encoding="utf-8")
    assert "SYNTHETIC" in notice and "simulated" in notice and "no real person" in notice
    text = {
        name: pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in COLUMNS
    }
    iso_date = r"\d{4}-\d{2}-\d{2}"
    assert text["patients"]["birth_date"].str.fullmatch(iso_date).all()
    assert text["therapies"]["end_date"].str.fullmatch(f"({iso_date})?").all()
    assert set(text["patients"]["functioning"]) == {"true", "false"}
    assert set(text["imaging"]["bone_sstr_uptake"]) == {"true", "false", ""}
    assert text["patients"]["ki67_percent"].str.fullmatch(r"(\d+\.\d)?").all()
    assert (text["patients"]["grade"] == "").any()
    assert list(text["patients"].columns) == list(COLUMNS["patients"])
    reread = pd.read_csv(tmp_path / "patients.csv", parse_dates=["diagnosis_date"])
    assert (reread["diagnosis_date"] == default_tables["patients"]["diagnosis_date"]).all()


def test_design_from_config_sets_every_field_and_ignores_the_seed():
    design = design_from_config(
        {
            "seed": 1,
            "n_eligible": 500,
            "os_median_bm_months": 120,
            "study_end": "2022-12-31",
            "primary_site_shares": {"ileum": 0.9, "jejunum": 0.1},
        }
    )
    assert design.n_eligible == 500
    assert design.os_median_bm_months == 120.0
    assert design.study_end == date(2022, 12, 31)
    assert dict(design.primary_site_shares) == {
        "jejunum": 0.1,
        "ileum": 0.9,
        "small_intestine_nos": 0.0,
    }
    assert design_from_config({"seed": 3}) == SyntheticDesign()
    everything = {f.name: getattr(SyntheticDesign(), f.name) for f in dataclasses.fields(design)}
    as_config = {k: dict(v) if isinstance(v, tuple) else v for k, v in everything.items()}
    assert design_from_config(as_config) == SyntheticDesign()


@pytest.mark.parametrize(
    ("synthetic", "message"),
    [
        ({"n_patients": 3}, "n_patients"),
        ({"grade_shares": {"G4": 1.0}}, "G4"),
        ({"n_bm": 2.5}, "n_bm"),
        ({"n_bm": 400}, "n_bm exceeds n_stage_iv"),
        ({"sre_type_shares": {"hypercalcemia": 0.5}}, "sre_type_shares must sum to 1"),
    ],
)
def test_design_from_config_rejects_bad_values(synthetic, message):
    with pytest.raises(ValueError, match=message):
        design_from_config(synthetic)


def test_the_config_schema_of_the_design_is_generated_from_it():
    """schemas/synthetic.schema.yaml is SyntheticDesign's fields, defaults and descriptions
    (`make schemas` writes it), so the two cannot drift apart."""
    from sinet_bm.simulate import design_schema_text

    path = Path(__file__).resolve().parent.parent / "schemas" / "synthetic.schema.yaml"
    assert path.read_text() == design_schema_text(), "run `make schemas`"
