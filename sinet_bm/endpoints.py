"""One row per patient with every derived endpoint (docs/endpoints.md), and the study's
populations.

All derivations are vectorised group-bys over the child tables (no per-patient Python), so
that a registry export of a million patients takes seconds. Times are in months of
`days_per_month` days, counted from whole calendar days.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from sinet_bm.contract import Definitions, derive_grade, first_positive_exam


def days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


def eligibility(patients: pd.DataFrame, definitions: Definitions) -> pd.DataFrame:
    """Age at diagnosis and the first failing inclusion criterion (period, then age)."""
    age_years = days(patients["diagnosis_date"], patients["birth_date"]) / definitions.days_per_year
    in_period = patients["diagnosis_date"].between(definitions.study_start, definitions.study_end)
    reason = np.select(
        [~in_period, age_years < definitions.min_age_years], ["study_period", "age"], default=""
    )
    return pd.DataFrame(
        {"age_years": age_years, "exclusion_reason": reason, "eligible": reason == ""},
        index=patients.index,
    )


def tumour_grade(patients: pd.DataFrame, definitions: Definitions) -> pd.DataFrame:
    """The given grade wins; Ki-67 fills in only where the grade is missing."""
    derived = derive_grade(patients["ki67_percent"], definitions)
    given = patients["grade"].astype(object)
    grade = given.where(given.notna(), derived)
    source = np.select([given.notna(), derived.notna()], ["given", "ki67"], default="missing")
    return pd.DataFrame({"grade": grade, "grade_source": source}, index=patients.index)


def bone_findings(imaging: pd.DataFrame, definitions: Definitions) -> pd.DataFrame:
    """BM date, SSTR-only detection, time to morphologic visibility and BM type per patient."""
    bm_date = first_positive_exam(imaging).rename("bm_date")
    morphologic = imaging.loc[imaging["bone_morphologic"].fillna(False).astype(bool)]
    first_morphologic = morphologic.groupby("patient_id")["exam_date"].min()
    last_exam = imaging.groupby("patient_id")["exam_date"].max()
    out = pd.DataFrame({"bm_date": bm_date})
    out["first_morphologic_date"] = first_morphologic.reindex(out.index)
    out["last_exam_date"] = last_exam.reindex(out.index)
    out["sstr_only"] = ~(out["first_morphologic_date"] <= out["bm_date"])
    visible = out["first_morphologic_date"].notna()
    until = out["first_morphologic_date"].where(visible, out["last_exam_date"])
    out["months_to_morphologic"] = (days(until, out["bm_date"]) / definitions.days_per_month).where(
        out["sstr_only"]
    )
    out["morphologic_visible"] = visible.where(out["sstr_only"])
    out["bm_type"] = bm_type(morphologic, first_morphologic).reindex(out.index).fillna("unknown")
    return out.drop(columns=["last_exam_date"])


def bm_type(morphologic: pd.DataFrame, first_morphologic: pd.Series) -> pd.Series:
    """Lesion type at the first morphologic exam; different types on that date make `mixed`."""
    first = morphologic["patient_id"].map(first_morphologic)
    on_first_date = morphologic.loc[morphologic["exam_date"] == first]
    types = on_first_date.groupby("patient_id")["lesion_type"].agg(["nunique", "first"])
    return types["first"].astype(object).where(types["nunique"] == 1, "mixed")


def skeletal_events(events: pd.DataFrame, bm_date: pd.Series) -> pd.DataFrame:
    """SREs on or after the BM date count; earlier ones (and those without BM) are left out."""
    own_bm = events["patient_id"].map(bm_date)
    counted = events["event_date"] >= own_bm
    without_bm = own_bm.isna()
    flags = pd.DataFrame(
        {
            "patient_id": events["patient_id"],
            "n_sre": counted,
            "n_sre_before_bm": ~counted & ~without_bm,
            "n_sre_without_bm": without_bm,
        }
    )
    out = flags.groupby("patient_id").sum().astype(int)
    first_sre = events.loc[counted].groupby("patient_id")["event_date"].min()
    out["first_sre_date"] = first_sre.reindex(out.index)
    return out


def antiresorptive(therapies: pd.DataFrame, definitions: Definitions) -> pd.Series:
    """First start of any antiresorptive episode, whatever its date."""
    episodes = therapies.loc[therapies["therapy"].isin(definitions.antiresorptive_therapies)]
    return episodes.groupby("patient_id")["start_date"].min().rename("antiresorptive_start")


def derive_endpoints(tables: Mapping[str, pd.DataFrame], definitions: Definitions) -> pd.DataFrame:
    patients = tables["patients"]
    out = pd.DataFrame(
        {
            "patient_id": patients["patient_id"].astype(str),
            "sex": patients["sex"].astype(str),
            "male": patients["sex"].astype(str) == "male",
            "diagnosis_date": patients["diagnosis_date"],
            "primary_site": patients["primary_site"].astype(str),
            "uicc_stage": patients["uicc_stage"].astype(str),
            "stage_iv": patients["uicc_stage"].astype(str) == "IV",
            "ki67_percent": patients["ki67_percent"],
            "functioning": patients["functioning"].astype(bool),
        }
    )
    out = out.join(eligibility(patients, definitions)).join(tumour_grade(patients, definitions))
    ids = pd.Index(out["patient_id"])
    bone = bone_findings(tables["imaging"], definitions).reindex(ids)
    bone["bm"] = bone["bm_date"].notna()
    sre = skeletal_events(tables["skeletal_events"], bone["bm_date"]).reindex(ids)
    start = antiresorptive(tables["therapies"], definitions).reindex(ids)
    joined = pd.concat([bone, sre, start], axis=1).reset_index(drop=True)
    out = pd.concat([out.reset_index(drop=True), joined], axis=1)
    out["sstr_only"] = out["sstr_only"].astype("boolean").fillna(False).astype(bool)
    out["morphologic_visible"] = out["morphologic_visible"].astype("boolean")
    counts = ["n_sre", "n_sre_before_bm", "n_sre_without_bm"]
    out[counts] = out[counts].fillna(0).astype(int)
    out["sre"] = out["n_sre"] > 0
    out["antiresorptive"] = out["antiresorptive_start"].notna()
    out["dead"] = patients["vital_status"].astype(str).to_numpy() == "dead"
    followup = patients["last_followup_date"].reset_index(drop=True)
    out["last_followup_date"] = followup
    out["os_months"] = days(followup, out["diagnosis_date"]) / definitions.days_per_month
    out["bm_months"] = days(out["bm_date"], out["diagnosis_date"]) / definitions.days_per_month
    out["population_bm"] = out["eligible"] & out["stage_iv"] & out["bm"]
    return out[ENDPOINT_COLUMNS]


ENDPOINT_COLUMNS = [
    "patient_id",
    "eligible",
    "exclusion_reason",
    "sex",
    "male",
    "age_years",
    "diagnosis_date",
    "primary_site",
    "uicc_stage",
    "stage_iv",
    "ki67_percent",
    "grade",
    "grade_source",
    "functioning",
    "bm",
    "population_bm",
    "bm_date",
    "bm_months",
    "sstr_only",
    "first_morphologic_date",
    "months_to_morphologic",
    "morphologic_visible",
    "bm_type",
    "antiresorptive",
    "antiresorptive_start",
    "sre",
    "n_sre",
    "n_sre_before_bm",
    "n_sre_without_bm",
    "first_sre_date",
    "dead",
    "last_followup_date",
    "os_months",
]


def populations(endpoints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's populations, as `estimates.csv` names them: every exported patient, the
    eligible (`all`), stage IV, stage IV with BM, and stage IV by functioning status
    (missing functioning: in neither)."""
    eligible = endpoints[endpoints["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    functioning = stage_iv["functioning"]
    return {
        "exported": endpoints,
        "all": eligible,
        "stage_iv": stage_iv,
        "bm": stage_iv[stage_iv["bm"]],
        "stage_iv_functioning": stage_iv[functioning.eq(True)],
        "stage_iv_nonfunctioning": stage_iv[functioning.eq(False)],
    }


def stage_iv_of(endpoints: pd.DataFrame) -> pd.DataFrame:
    return populations(endpoints)["stage_iv"].reset_index(drop=True)
