"""Synthetic siNET cohort in the export format of docs/export-format.md.

The real patient data are not public, so the pipeline's default input is simulated. The
counts the paper reports are exact truths of the synthetic cohort (computed with the
contract's section 2 definitions); survival, follow-up and imaging times come from
explicit models whose parameters are calibrated to the published medians (docs/study.md).
Everything is vectorised so that the same code produces 10^6-patient stress exports.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtri

from sinet_bm import contract

# The contract's default definitions, to which the cohort is calibrated (its eligibility
# edge cases are built around an 18th birthday).
DAYS_PER_MONTH = 30.4375
DAYS_PER_YEAR = 365.25
MIN_AGE_YEARS = 18
EIGHTEENTH_BIRTHDAY_DAYS = int(MIN_AGE_YEARS * DAYS_PER_YEAR)

SEXES = contract.categories("patients", "sex")
VITAL_STATUSES = contract.categories("patients", "vital_status")
PRIMARY_SITES = contract.categories("patients", "primary_site")
STAGES = contract.categories("patients", "uicc_stage")
EARLY_STAGES = STAGES[:3]
GRADES = contract.categories("patients", "grade")
MODALITIES = contract.categories("imaging", "modality")
LESION_TYPES = contract.categories("imaging", "lesion_type")
THERAPIES = contract.categories("therapies", "therapy")
ANTIRESORPTIVES = contract.ANTIRESORPTIVE_THERAPIES
NON_BONE_THERAPIES = tuple(therapy for therapy in THERAPIES if therapy not in ANTIRESORPTIVES)
SRE_TYPES = contract.categories("skeletal_events", "event_type")
COLUMNS = {table: contract.columns(table) for table in contract.TABLES}

SYNTHETIC_NOTICE = (
    "SYNTHETIC DATA - NOT PATIENTS. The tables in this folder (patients.csv, imaging.csv, "
    "therapies.csv, skeletal_events.csv) were simulated by sinet_bm.simulate; every row is "
    "invented and describes no real person. The simulation is built so that its true counts "
    "equal those published by Mathew et al., Front Endocrinol 2025 "
    "(doi:10.3389/fendo.2025.1680209), and its survival, follow-up and imaging times are "
    "calibrated to the published medians, so that the study pipeline can run end to end "
    "without access to the real exports. Anything computed from these files describes the "
    "simulation, not clinical evidence, and must always be labelled synthetic.\n"
)

Shares = tuple[tuple[str, float], ...]

PET, CT, MRI = 0, 1, 2
OSTEOBLASTIC, OSTEOLYTIC, MIXED = 0, 1, 2
ELIGIBLE, BEFORE_PERIOD, AFTER_PERIOD, UNDER_AGE = 0, 1, 2, 3
STAGING_OFFSET_LIMITS_DAYS = (-90, 42)
UNDER_AGE_YEARS = (15.0, 17.9)
BEFORE_PERIOD_YEARS = 5
AFTER_PERIOD_MARGIN_DAYS = 30
ANTIRESORPTIVE_BEFORE_BM_DAYS = (30, 730)
ANTIRESORPTIVE_DURATION_DAYS = (180, 1460)
ANTIRESORPTIVE_SHARE_ENDED = 0.4
RADIOTHERAPY_FOR_SRE_DAYS = (0, 21)
FIRST_DAY = int(np.datetime64("1900-01-01", "D").astype(np.int64))
DAY_SPAN = 1 << 17
MISSING_DAY = np.iinfo(np.int64).min
CALIBRATION_LOG_RANGE = 0.7
CALIBRATION_TOLERANCE = 1e-4
FOLLOWED_SHARE_START = 0.6
CALIBRATION_ROUNDS = 2
WRITE_CHUNK_ROWS = 250_000


class TherapyTiming(NamedTuple):
    """When an episode starts (fraction of follow-up plus days after diagnosis) and lasts."""

    start_fraction: tuple[float, float]
    start_days: int
    duration_days: tuple[int, int]
    share_ended: float


THERAPY_TIMING: dict[str, TherapyTiming] = {
    "surgery": TherapyTiming((0.0, 0.0), 30, (0, 0), 1.0),
    "somatostatin_analog": TherapyTiming((0.0, 0.05), 90, (180, 3650), 0.3),
    "prrt": TherapyTiming((0.05, 0.6), 0, (150, 240), 0.9),
    "everolimus": TherapyTiming((0.2, 0.8), 0, (90, 720), 0.6),
    "chemotherapy": TherapyTiming((0.2, 0.8), 0, (60, 240), 0.8),
    "liver_directed": TherapyTiming((0.05, 0.7), 0, (0, 2), 1.0),
    "external_radiotherapy": TherapyTiming((0.1, 0.9), 0, (5, 35), 1.0),
    "other": TherapyTiming((0.0, 0.9), 0, (30, 365), 0.5),
}


def _about(description: str) -> dict[str, str]:
    return {"description": description}


@dataclass(frozen=True)
class SyntheticDesign:
    """Every knob of the synthetic cohort; the defaults are the published study.

    Counts (n_*) are exact truths of the simulated cohort under the contract's definitions,
    and so are the published medians (OS by BM status, follow-up, time to morphologic
    visibility): the models' time scales are solved on each sample to meet them. Shares and
    hazard ratios parametrise everything else.
    """

    n_eligible: int = field(
        default=458, metadata=_about("Eligible patients (diagnosed in the study period, adult).")
    )
    n_diagnosed_before_period: int = field(
        default=4, metadata=_about("Exported but diagnosed before study_start.")
    )
    n_diagnosed_after_period: int = field(
        default=2, metadata=_about("Exported but diagnosed after study_end.")
    )
    n_under_age: int = field(
        default=3,
        metadata=_about(
            "Exported, diagnosed in the period but under 18 (one exactly on the 18th birthday)."
        ),
    )
    n_male: int = field(default=247, metadata=_about("Male patients among the eligible."))
    n_stage_iv: int = field(
        default=305, metadata=_about("Eligible patients with UICC stage IV at diagnosis.")
    )
    n_bm: int = field(default=105, metadata=_about("Stage IV patients with bone metastases (BM)."))
    n_functioning: int = field(
        default=183, metadata=_about("Functioning tumours among the eligible.")
    )
    n_functioning_bm: int = field(
        default=77, metadata=_about("Functioning tumours among the stage IV BM patients.")
    )
    n_sstr_only: int = field(
        default=51, metadata=_about("BM patients whose BM are SSTR-only at detection.")
    )
    n_osteoblastic: int = field(default=61, metadata=_about("BM patients of type osteoblastic."))
    n_osteolytic: int = field(default=26, metadata=_about("BM patients of type osteolytic."))
    n_mixed: int = field(
        default=12,
        metadata=_about(
            "BM patients of type mixed; the rest of n_bm is unknown (never visible, SSTR-only)."
        ),
    )
    n_mixed_same_day: int = field(
        default=4,
        metadata=_about(
            "Mixed BM patients whose type comes from two exams with different types on one date."
        ),
    )
    n_antiresorptive: int = field(
        default=57, metadata=_about("BM patients with any antiresorptive therapy episode.")
    )
    n_sre_osteoblastic: int = field(
        default=2, metadata=_about("BM patients with SRE among the osteoblastic.")
    )
    n_sre_osteolytic: int = field(
        default=8, metadata=_about("BM patients with SRE among the osteolytic.")
    )
    n_sre_mixed: int = field(
        default=3,
        metadata=_about("BM patients with SRE among the mixed (all SRE without therapy)."),
    )
    n_bm_early_stage: int = field(
        default=5,
        metadata=_about(
            "Stage I-III eligible patients with metachronous BM (outside population bm)."
        ),
    )
    study_start: date = field(
        default=date(2003, 1, 1), metadata=_about("First diagnosis date of the study period.")
    )
    study_end: date = field(
        default=date(2023, 12, 31), metadata=_about("Last diagnosis date of the study period.")
    )
    data_cutoff: date = field(
        default=date(2024, 6, 30), metadata=_about("No follow-up date after this day.")
    )
    diagnosis_trend: float = field(
        default=3.0,
        metadata=_about(
            "Density of diagnoses at study_end relative to study_start (linear in between)."
        ),
    )
    age_mean_years: float = field(
        default=58.0, metadata=_about("Mean age at diagnosis (normal distribution).")
    )
    age_sd_years: float = field(
        default=12.0, metadata=_about("Standard deviation of age at diagnosis.")
    )
    age_min_years: float = field(
        default=18.5, metadata=_about("Eligible ages are clipped to at least this.")
    )
    age_max_years: float = field(
        default=90.0, metadata=_about("Eligible ages are clipped to at most this.")
    )
    early_stage_shares: Shares = field(
        default=(("I", 0.10), ("II", 0.25), ("III", 0.65)),
        metadata=_about("Distribution of stages I-III outside IV."),
    )
    primary_site_shares: Shares = field(
        default=(("jejunum", 0.12), ("ileum", 0.80), ("small_intestine_nos", 0.08)),
        metadata=_about("Distribution of the primary site."),
    )
    grade_shares: Shares = field(
        default=(("G1", 0.55), ("G2", 0.40), ("G3", 0.05)),
        metadata=_about("Distribution of the true WHO grade."),
    )
    share_grade_missing: float = field(
        default=0.10, metadata=_about("Grade missing, Ki-67 given (pipeline derives it).")
    )
    share_ki67_missing: float = field(default=0.08, metadata=_about("Ki-67 missing, grade given."))
    share_grade_and_ki67_missing: float = field(
        default=0.03, metadata=_about("Both grade and Ki-67 missing.")
    )
    os_median_bm_months: float = field(
        default=127.0,
        metadata=_about("Kaplan-Meier median OS of stage IV with BM (the BM effect on OS)."),
    )
    os_median_no_bm_months: float = field(
        default=170.0, metadata=_about("Kaplan-Meier median OS of stage IV without BM.")
    )
    os_weibull_shape: float = field(
        default=2.0,
        metadata=_about(
            "Shape of the Weibull baseline hazard of OS; with the two medians it sets the BM "
            "hazard ratio, about (170 / 127) ** shape."
        ),
    )
    os_hr_early_stage: float = field(
        default=0.4, metadata=_about("OS hazard ratio, stage I-III vs stage IV.")
    )
    os_hr_age_per_year: float = field(
        default=1.03, metadata=_about("OS hazard ratio per year of age at diagnosis.")
    )
    os_hr_male: float = field(default=1.2, metadata=_about("OS hazard ratio, male vs female."))
    os_hr_g2: float = field(default=1.4, metadata=_about("OS hazard ratio, G2 vs G1 (true grade)."))
    os_hr_g3: float = field(default=2.5, metadata=_about("OS hazard ratio, G3 vs G1 (true grade)."))
    median_followup_months: float = field(
        default=36.0,
        metadata=_about(
            "Reverse Kaplan-Meier median follow-up of the eligible; sets the share of patients "
            "lost to follow-up (followed elsewhere after referral)."
        ),
    )
    loss_to_followup_weight_early_stage: float = field(
        default=3.0,
        metadata=_about(
            "How much likelier stage I-III patients are to be lost to follow-up than stage IV "
            "(resected patients are followed elsewhere; stage IV stays for therapy)."
        ),
    )
    lost_to_followup_median_months: float = field(
        default=6.0,
        metadata=_about("Median time to loss to follow-up (exponential) for those lost."),
    )
    last_contact_window_months: float = field(
        default=6.0,
        metadata=_about(
            "Patients not lost are last seen alive uniformly within this before data_cutoff."
        ),
    )
    staging_exam_mean_days: float = field(
        default=-7.0, metadata=_about("Mean staging PET/CT date relative to diagnosis.")
    )
    staging_exam_sd_days: float = field(
        default=14.0, metadata=_about("Standard deviation of the staging exam date.")
    )
    exam_interval_min_months: float = field(
        default=3.0, metadata=_about("Shortest interval between follow-up exams.")
    )
    exam_interval_max_months: float = field(
        default=12.0, metadata=_about("Longest interval between follow-up exams.")
    )
    follow_up_modality_shares: Shares = field(
        default=(("sstr_pet_ct", 0.40), ("ct", 0.45), ("mri", 0.15)),
        metadata=_about("Modality mix of follow-up exams."),
    )
    share_metachronous_bm: float = field(
        default=0.35,
        metadata=_about("Stage IV BM first seen at a follow-up exam rather than at staging."),
    )
    metachronous_bm_mean_months: float = field(
        default=24.0,
        metadata=_about("Mean time to metachronous BM (exponential, truncated at the last exam)."),
    )
    morphologic_median_months: float = field(
        default=16.0,
        metadata=_about(
            "Median months from SSTR-only BM to morphologic visibility as observed at the exams "
            "(the true log-normal delay is scaled to give it)."
        ),
    )
    morphologic_delay_sigma: float = field(
        default=0.6, metadata=_about("Log-scale SD of the morphologic delay.")
    )
    bm_early_stage_min_months: float = field(
        default=24.0,
        metadata=_about(
            "Metachronous BM after stage I-III appear at least this long after diagnosis."
        ),
    )
    therapy_shares_stage_iv: Shares = field(
        default=(
            ("somatostatin_analog", 0.85),
            ("prrt", 0.35),
            ("everolimus", 0.10),
            ("chemotherapy", 0.06),
            ("surgery", 0.65),
            ("liver_directed", 0.20),
            ("external_radiotherapy", 0.05),
            ("other", 0.05),
        ),
        metadata=_about("Share of stage IV patients with each non-antiresorptive therapy."),
    )
    therapy_shares_early_stage: Shares = field(
        default=(
            ("somatostatin_analog", 0.15),
            ("prrt", 0.02),
            ("everolimus", 0.01),
            ("chemotherapy", 0.01),
            ("surgery", 0.95),
            ("liver_directed", 0.0),
            ("external_radiotherapy", 0.01),
            ("other", 0.05),
        ),
        metadata=_about("Share of stage I-III patients with each non-antiresorptive therapy."),
    )
    antiresorptive_shares: Shares = field(
        default=(("denosumab", 0.55), ("zoledronic_acid", 0.35), ("other_bisphosphonate", 0.10)),
        metadata=_about("Which antiresorptive the treated BM patients receive."),
    )
    share_antiresorptive_before_bm: float = field(
        default=0.10,
        metadata=_about("Antiresorptive started before the BM date (e.g. for osteoporosis)."),
    )
    antiresorptive_start_mean_days: float = field(
        default=60.0,
        metadata=_about("Mean days from BM date to antiresorptive start (exponential)."),
    )
    sre_type_shares: Shares = field(
        default=(
            ("pathologic_fracture", 0.25),
            ("spinal_cord_compression", 0.15),
            ("radiation_to_bone", 0.40),
            ("surgery_to_bone", 0.12),
            ("hypercalcemia", 0.08),
        ),
        metadata=_about("Distribution of the type of skeletal-related event."),
    )
    share_sre_two_events: float = field(
        default=0.3, metadata=_about("SRE patients with a second event.")
    )
    sre_mean_months_after_visibility: float = field(
        default=9.0,
        metadata=_about("Mean months from morphologic visibility to an SRE (exponential)."),
    )

    def __post_init__(self) -> None:
        problems = _design_problems(self)
        if problems:
            raise ValueError("invalid synthetic design: " + "; ".join(problems))

    @property
    def n_unknown(self) -> int:
        """BM patients never morphologically visible (type unknown)."""
        return self.n_bm - self.n_osteoblastic - self.n_osteolytic - self.n_mixed

    @property
    def n_sre(self) -> int:
        """BM patients with a skeletal-related event."""
        return self.n_sre_osteoblastic + self.n_sre_osteolytic + self.n_sre_mixed

    @property
    def n_exported(self) -> int:
        """Every patient row of the export, eligible or not."""
        return (
            self.n_eligible
            + self.n_diagnosed_before_period
            + self.n_diagnosed_after_period
            + self.n_under_age
        )


SHARE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "early_stage_shares": EARLY_STAGES,
    "primary_site_shares": PRIMARY_SITES,
    "grade_shares": GRADES,
    "follow_up_modality_shares": MODALITIES,
    "antiresorptive_shares": ANTIRESORPTIVES,
    "sre_type_shares": SRE_TYPES,
    "therapy_shares_stage_iv": NON_BONE_THERAPIES,
    "therapy_shares_early_stage": NON_BONE_THERAPIES,
}
PROBABILITY_SHARES = ("therapy_shares_stage_iv", "therapy_shares_early_stage")
UNIT_INTERVAL_FIELDS = (
    "share_grade_missing",
    "share_ki67_missing",
    "share_grade_and_ki67_missing",
    "share_metachronous_bm",
    "share_antiresorptive_before_bm",
    "share_sre_two_events",
)


def _count_problems(d: SyntheticDesign) -> list[str]:
    counts = {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name.startswith("n_")}
    problems = [f"{name} must not be negative" for name, value in counts.items() if value < 0]
    rules = [
        (d.n_eligible >= 1, "n_eligible must be at least 1"),
        (d.n_male <= d.n_eligible, "n_male exceeds n_eligible"),
        (d.n_stage_iv <= d.n_eligible, "n_stage_iv exceeds n_eligible"),
        (d.n_bm <= d.n_stage_iv, "n_bm exceeds n_stage_iv"),
        (d.n_functioning_bm <= d.n_bm, "n_functioning_bm exceeds n_bm"),
        (d.n_functioning >= d.n_functioning_bm, "n_functioning is below n_functioning_bm"),
        (
            d.n_functioning - d.n_functioning_bm <= d.n_eligible - d.n_bm,
            "n_functioning outside BM exceeds the patients without BM",
        ),
        (d.n_unknown >= 0, "BM type counts exceed n_bm"),
        (d.n_unknown <= d.n_sstr_only <= d.n_bm, "need n_bm - typed <= n_sstr_only <= n_bm"),
        (d.n_mixed_same_day <= d.n_mixed, "n_mixed_same_day exceeds n_mixed"),
        (d.n_sre_osteoblastic <= d.n_osteoblastic, "n_sre_osteoblastic exceeds n_osteoblastic"),
        (d.n_sre_osteolytic <= d.n_osteolytic, "n_sre_osteolytic exceeds n_osteolytic"),
        (d.n_sre_mixed <= d.n_mixed, "n_sre_mixed exceeds n_mixed"),
        (
            d.n_sre <= d.n_bm - d.n_antiresorptive,
            "SRE patients must fit among the BM patients without antiresorptive therapy",
        ),
        (
            d.n_bm_early_stage <= d.n_eligible - d.n_stage_iv,
            "n_bm_early_stage exceeds the stage I-III patients",
        ),
    ]
    return problems + [message for ok, message in rules if not ok]


def _share_problems(d: SyntheticDesign) -> list[str]:
    problems = []
    for name, categories in SHARE_CATEGORIES.items():
        shares: Shares = getattr(d, name)
        values = np.array([v for _, v in shares], dtype=float)
        if tuple(c for c, _ in shares) != categories:
            problems.append(f"{name} must list exactly {', '.join(categories)}")
        elif np.any(values < 0) or np.any(values > 1):
            problems.append(f"{name} values must lie in [0, 1]")
        elif name not in PROBABILITY_SHARES and not np.isclose(values.sum(), 1.0):
            problems.append(f"{name} must sum to 1")
    return problems


POSITIVE_FIELDS = (
    "diagnosis_trend",
    "age_sd_years",
    "os_median_no_bm_months",
    "os_weibull_shape",
    "os_median_bm_months",
    "os_hr_early_stage",
    "os_hr_age_per_year",
    "os_hr_male",
    "os_hr_g2",
    "os_hr_g3",
    "lost_to_followup_median_months",
    "loss_to_followup_weight_early_stage",
    "metachronous_bm_mean_months",
    "morphologic_median_months",
    "median_followup_months",
    "antiresorptive_start_mean_days",
    "sre_mean_months_after_visibility",
    "exam_interval_min_months",
)


def _model_problems(d: SyntheticDesign) -> list[str]:
    problems = [f"{name} must be positive" for name in POSITIVE_FIELDS if not getattr(d, name) > 0]
    problems += [
        f"{name} must lie in [0, 1]"
        for name in UNIT_INTERVAL_FIELDS
        if not 0 <= getattr(d, name) <= 1
    ]
    rules = [
        (d.study_start <= d.study_end < d.data_cutoff, "need study_start <= study_end < cutoff"),
        (d.age_min_years >= MIN_AGE_YEARS, f"age_min_years must be at least {MIN_AGE_YEARS}"),
        (d.age_min_years <= d.age_max_years, "age_min_years exceeds age_max_years"),
        (
            d.exam_interval_min_months <= d.exam_interval_max_months,
            "exam_interval_min_months exceeds exam_interval_max_months",
        ),
        (
            d.share_grade_missing + d.share_ki67_missing + d.share_grade_and_ki67_missing <= 1,
            "grade / Ki-67 missingness shares exceed 1",
        ),
        (
            d.morphologic_delay_sigma >= 0 and d.staging_exam_sd_days >= 0,
            "standard deviations must be non-negative",
        ),
        (d.last_contact_window_months >= 0, "last_contact_window_months must be non-negative"),
    ]
    return problems + [message for ok, message in rules if not ok]


def _design_problems(d: SyntheticDesign) -> list[str]:
    return _count_problems(d) + _share_problems(d) + _model_problems(d)


def _coerce(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, Mapping):
            raise ValueError(f"synthetic.{name} must be a mapping of category to share")
        categories = SHARE_CATEGORIES[name]
        unknown = [key for key in value if key not in categories]
        if unknown:
            raise ValueError(f"synthetic.{name}: unknown category {unknown[0]!r}")
        shares = {c: value.get(c, 0.0) for c in categories}
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in shares.values()):
            raise ValueError(f"synthetic.{name}: shares must be numbers")
        return tuple((c, float(v)) for c, v in shares.items())
    if isinstance(default, date):
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"synthetic.{name} must be a number, got {value!r}")
    if isinstance(default, int) and not float(value).is_integer():
        raise ValueError(f"synthetic.{name} must be an integer, got {value!r}")
    return type(default)(value)


STUDY_DATES = ("study_start", "study_end", "data_cutoff")


def design_from_config(
    synthetic: Mapping[str, Any], definitions: Mapping[str, Any] | None = None
) -> SyntheticDesign:
    """The design from the config's `synthetic:` mapping, with the study period and cutoff
    of its `definitions:`, so that every simulated cohort (the default export, the bias
    check's) is the configured study; `seed` is the caller's."""
    defaults = {f.name: f.default for f in dataclasses.fields(SyntheticDesign)}
    dates = {key: (definitions or {})[key] for key in STUDY_DATES if key in (definitions or {})}
    values = {}
    for key, value in {**synthetic, **dates}.items():
        if key == "seed":
            continue
        if key not in defaults:
            raise ValueError(f"synthetic: unknown key {key!r}")
        values[key] = _coerce(key, defaults[key], value)
    return SyntheticDesign(**values)


SEED = 20251023  # the default seed of the synthetic cohort
# The design's part of the config: its knobs, without the study dates (from definitions).
DESIGN_SCHEMA_HEADER = (
    "# JSON schema of the config's `synthetic:` section, generated from\n"
    "# sinet_bm.simulate.SyntheticDesign by `make schemas`; tests/test_simulate.py checks that\n"
    "# it is current. Do not edit by hand.\n"
)


def _field_schema(item: dataclasses.Field) -> dict[str, Any]:
    """A design field as JSON schema: its type, default, bounds and description."""
    name, default = item.name, item.default
    described = {"description": item.metadata["description"]}
    if isinstance(default, tuple):
        categories = SHARE_CATEGORIES[name]
        rule = (
            "Each value in [0, 1], independent."
            if name in PROBABILITY_SHARES
            else "Values in [0, 1] summing to 1; a category left out counts as 0."
        )
        share = {"type": "number", "minimum": 0, "maximum": 1}
        return {
            "type": "object",
            "description": f"{item.metadata['description']} {rule}",
            "properties": {category: share for category in categories},
            "additionalProperties": False,
            "default": dict(default),
        }
    if isinstance(default, int):
        bound = {"minimum": 1 if name == "n_eligible" else 0}
        return {"type": "integer", **bound, **described, "default": default}
    bounds: dict[str, float] = {}
    if name in POSITIVE_FIELDS:
        bounds["exclusiveMinimum"] = 0
    if name in UNIT_INTERVAL_FIELDS:
        bounds |= {"minimum": 0, "maximum": 1}
    if name == "age_min_years":
        bounds["minimum"] = MIN_AGE_YEARS
    return {"type": "number", **described, "default": default, **bounds}


def design_schema() -> dict[str, Any]:
    """The `synthetic:` section of the config schema: one key per design field (the study
    dates excepted, which come from `definitions:`), and the seed."""
    fields = [f for f in dataclasses.fields(SyntheticDesign) if f.name not in STUDY_DATES]
    seed = {
        "type": "integer",
        "default": SEED,
        "description": "Seed of the simulation; the same seed gives byte-identical exports.",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "default": {},
        "additionalProperties": False,
        "description": (
            "The built-in synthetic cohort (used only when raw_dir is empty). Counts are exact "
            "truths of the simulated cohort; the study period and data cutoff are those of "
            "`definitions`."
        ),
        "properties": {"seed": seed} | {f.name: _field_schema(f) for f in fields},
    }


def design_schema_text() -> str:
    import yaml

    body = yaml.safe_dump(design_schema(), sort_keys=False, allow_unicode=True, width=92)
    return DESIGN_SCHEMA_HEADER + body


def _apportion(total: int, weights: Sequence[float], floor_one: bool = False) -> np.ndarray:
    """Split total into integer parts proportional to weights (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    if total <= 0 or w.sum() <= 0:
        return np.zeros(w.size, dtype=np.int64)
    exact = w / w.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    if floor_one and total >= np.count_nonzero(w):
        for category in np.flatnonzero((counts == 0) & (w > 0)):
            counts[np.argmax(counts)] -= 1
            counts[category] = 1
    return counts


def _rescale(count: int, old_total: int, new_total: int) -> int:
    return round(count * new_total / old_total) if old_total else 0


def scaled(design: SyntheticDesign, n_eligible: int) -> SyntheticDesign:
    """The same cohort proportions at another size (small tests, 10^6-patient stress runs)."""
    if n_eligible < 1:
        raise ValueError("n_eligible must be at least 1")
    d = design
    n_stage_iv = _rescale(d.n_stage_iv, d.n_eligible, n_eligible)
    n_bm = _rescale(d.n_bm, d.n_stage_iv, n_stage_iv)
    blastic, lytic, mixed, unknown = _apportion(
        n_bm, [d.n_osteoblastic, d.n_osteolytic, d.n_mixed, d.n_unknown], floor_one=True
    )
    n_antiresorptive = _rescale(d.n_antiresorptive, d.n_bm, n_bm)
    n_sre = min(max(_rescale(d.n_sre, d.n_bm, n_bm), int(d.n_sre > 0)), n_bm - n_antiresorptive)
    sre = np.minimum(
        _apportion(n_sre, [d.n_sre_osteoblastic, d.n_sre_osteolytic, d.n_sre_mixed]),
        [blastic, lytic, mixed],
    )
    n_functioning_bm = _rescale(d.n_functioning_bm, d.n_bm, n_bm)
    n_functioning_other = _rescale(
        d.n_functioning - d.n_functioning_bm, d.n_eligible - d.n_bm, n_eligible - n_bm
    )
    return dataclasses.replace(
        d,
        n_eligible=n_eligible,
        n_diagnosed_before_period=_rescale(d.n_diagnosed_before_period, d.n_eligible, n_eligible),
        n_diagnosed_after_period=_rescale(d.n_diagnosed_after_period, d.n_eligible, n_eligible),
        n_under_age=_rescale(d.n_under_age, d.n_eligible, n_eligible),
        n_male=_rescale(d.n_male, d.n_eligible, n_eligible),
        n_stage_iv=n_stage_iv,
        n_bm=n_bm,
        n_functioning=n_functioning_bm + n_functioning_other,
        n_functioning_bm=n_functioning_bm,
        n_sstr_only=min(max(_rescale(d.n_sstr_only, d.n_bm, n_bm), int(unknown)), n_bm),
        n_osteoblastic=int(blastic),
        n_osteolytic=int(lytic),
        n_mixed=int(mixed),
        n_mixed_same_day=min(_rescale(d.n_mixed_same_day, d.n_mixed, int(mixed)), int(mixed)),
        n_antiresorptive=n_antiresorptive,
        n_sre_osteoblastic=int(sre[0]),
        n_sre_osteolytic=int(sre[1]),
        n_sre_mixed=int(sre[2]),
        n_bm_early_stage=min(
            _rescale(d.n_bm_early_stage, d.n_eligible, n_eligible), n_eligible - n_stage_iv
        ),
    )


def _day(value: date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _share_values(shares: Shares) -> np.ndarray:
    return np.array([v for _, v in shares], dtype=float)


def _choose(rng: np.random.Generator, k: int, priority: np.ndarray) -> np.ndarray:
    """Positions of k items, highest priority first, random within equal priority."""
    order = np.lexsort((rng.random(priority.size), -priority))
    return np.sort(order[: min(k, priority.size)])


def _pick(rng: np.random.Generator, candidates: np.ndarray, k: int) -> np.ndarray:
    """k of the candidates, chosen uniformly at random."""
    return np.sort(rng.permutation(candidates)[: min(k, candidates.size)])


def _allocate(rng: np.random.Generator, counts: Sequence[int]) -> np.ndarray:
    """Category codes with exactly the given counts, in random order."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def _stratified_uniform(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """One uniform per item, stratified within each group, so group quantiles are stable."""
    n = groups.size
    order = np.lexsort((rng.random(n), groups))
    sizes = np.bincount(groups)
    starts = np.cumsum(sizes) - sizes
    sorted_groups = groups[order]
    u = np.empty(n)
    u[order] = (np.arange(n) - starts[sorted_groups] + rng.random(n)) / sizes[sorted_groups]
    return u


def _truncated_exponential(rng: np.random.Generator, mean: float, upper: np.ndarray) -> np.ndarray:
    u = rng.random(upper.size)
    return -mean * np.log1p(-u * -np.expm1(-upper / mean))


def _trend_fraction(u: np.ndarray, trend: float) -> np.ndarray:
    """Inverse CDF on [0, 1] of a density rising linearly to `trend` times its start."""
    if np.isclose(trend, 1.0):
        return u
    slope = trend - 1.0
    return (np.sqrt(1.0 + slope * (1.0 + trend) * u) - 1.0) / slope


def _eighteenth_birthday_diagnosis(rng: np.random.Generator, start: int, end: int) -> int:
    """A diagnosis day in [start, end] that is an 18th birthday only 6574 days after birth."""
    days = np.arange(start, end + 1)
    diagnosis = days.astype("datetime64[D]")
    birth = (days - EIGHTEENTH_BIRTHDAY_DAYS).astype("datetime64[D]")
    diagnosis_month = diagnosis.astype("datetime64[M]")
    birth_month = birth.astype("datetime64[M]")
    birthday = ((diagnosis_month - birth_month).astype(np.int64) == 12 * MIN_AGE_YEARS) & (
        (diagnosis - diagnosis_month) == (birth - birth_month)
    )
    candidates = days[birthday]
    return int(rng.choice(candidates)) if candidates.size else start


class _Cohort(NamedTuple):
    group: np.ndarray
    male: np.ndarray
    age_years: np.ndarray
    birth_day: np.ndarray
    diagnosis_day: np.ndarray
    stage: np.ndarray
    bm: np.ndarray
    functioning: np.ndarray


def _diagnosis_days(
    design: SyntheticDesign, rng: np.random.Generator, group: np.ndarray
) -> np.ndarray:
    start, end, cutoff = _day(design.study_start), _day(design.study_end), _day(design.data_cutoff)
    u = _stratified_uniform(rng, group)
    period = end - start + 1
    after = max(cutoff - AFTER_PERIOD_MARGIN_DAYS - end, 1)
    by_group = {
        ELIGIBLE: start + np.floor(_trend_fraction(u, design.diagnosis_trend) * period),
        BEFORE_PERIOD: start - 1 - np.floor(u * BEFORE_PERIOD_YEARS * 365),
        AFTER_PERIOD: end + 1 + np.floor(u * after),
        UNDER_AGE: start + np.floor(u * period),
    }
    days = np.select([group == g for g in by_group], list(by_group.values()))
    return np.minimum(days, np.where(group == ELIGIBLE, end, cutoff)).astype(np.int64)


def _ages_and_births(
    design: SyntheticDesign, rng: np.random.Generator, group: np.ndarray, diagnosis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    adult = np.clip(
        design.age_mean_years + design.age_sd_years * ndtri(_stratified_uniform(rng, group)),
        design.age_min_years,
        design.age_max_years,
    )
    minor = rng.uniform(*UNDER_AGE_YEARS, group.size)
    under_age = group == UNDER_AGE
    birth = np.where(
        under_age,
        diagnosis - np.floor(minor * DAYS_PER_YEAR),
        diagnosis - np.ceil(adult * DAYS_PER_YEAR),
    ).astype(np.int64)
    birthday_case = np.flatnonzero(under_age)[:1]
    if birthday_case.size:
        day = _eighteenth_birthday_diagnosis(rng, _day(design.study_start), _day(design.study_end))
        diagnosis[birthday_case] = day
        birth[birthday_case] = day - EIGHTEENTH_BIRTHDAY_DAYS
    return (diagnosis - birth) / DAYS_PER_YEAR, birth, diagnosis


def _draw_cohort(design: SyntheticDesign, rng: np.random.Generator) -> _Cohort:
    d = design
    group = np.repeat(
        [ELIGIBLE, BEFORE_PERIOD, AFTER_PERIOD, UNDER_AGE],
        [d.n_eligible, d.n_diagnosed_before_period, d.n_diagnosed_after_period, d.n_under_age],
    )
    eligible = np.arange(d.n_eligible)
    others = np.arange(d.n_eligible, group.size)
    diagnosis = _diagnosis_days(d, rng, group)
    age, birth, diagnosis = _ages_and_births(d, rng, group, diagnosis)

    male = np.zeros(group.size, dtype=bool)
    male[_pick(rng, eligible, d.n_male)] = True
    male[_pick(rng, others, _rescale(d.n_male, d.n_eligible, others.size))] = True

    stage = _allocate(rng, _apportion(group.size, _share_values(d.early_stage_shares))).astype(
        np.int64
    )
    stage_iv_eligible = _pick(rng, eligible, d.n_stage_iv)
    stage[stage_iv_eligible] = 3
    stage[_pick(rng, others, _rescale(d.n_stage_iv, d.n_eligible, others.size))] = 3

    bm = np.zeros(group.size, dtype=bool)
    bm[_pick(rng, stage_iv_eligible, d.n_bm)] = True
    functioning = np.zeros(group.size, dtype=bool)
    functioning[_pick(rng, np.flatnonzero(bm), d.n_functioning_bm)] = True
    without_bm = eligible[~bm[eligible]]
    functioning[_pick(rng, without_bm, d.n_functioning - d.n_functioning_bm)] = True
    functioning[_pick(rng, others, _rescale(d.n_functioning, d.n_eligible, others.size))] = True
    return _Cohort(group, male, age, birth, diagnosis, stage, bm, functioning)


class _Tumour(NamedTuple):
    site: np.ndarray
    true_grade: np.ndarray
    grade: np.ndarray
    ki67: np.ndarray


def _draw_tumour(design: SyntheticDesign, rng: np.random.Generator, n: int) -> _Tumour:
    site = _allocate(rng, _apportion(n, _share_values(design.primary_site_shares)))
    true_grade = _allocate(rng, _apportion(n, _share_values(design.grade_shares)))
    u = rng.random(n)
    ki67 = np.round(
        np.select(
            [true_grade == 0, true_grade == 1],
            [0.5 + 2.4 * u, 3.0 + 17.0 * u**2],
            20.1 + 39.9 * u,
        ),
        1,
    )
    d = design
    complete = 1.0 - d.share_grade_missing - d.share_ki67_missing - d.share_grade_and_ki67_missing
    missing = _allocate(
        rng,
        _apportion(
            n,
            [complete, d.share_grade_missing, d.share_ki67_missing, d.share_grade_and_ki67_missing],
        ),
    )
    grade = np.where((missing == 1) | (missing == 3), -1, true_grade)
    ki67 = np.where((missing == 2) | (missing == 3), np.nan, ki67)
    return _Tumour(site, true_grade, grade, ki67)


def _relative_risk(design: SyntheticDesign, cohort: _Cohort, tumour: _Tumour) -> np.ndarray:
    """Proportional-hazards risk of age, sex, true grade and early stage (BM acts via scale)."""
    d = design
    log_risk = (
        np.log(d.os_hr_age_per_year) * (cohort.age_years - d.age_mean_years)
        + np.log(d.os_hr_male) * cohort.male
        + np.log(d.os_hr_g2) * (tumour.true_grade == 1)
        + np.log(d.os_hr_g3) * (tumour.true_grade == 2)
        + np.log(d.os_hr_early_stage) * (cohort.stage < 3)
    )
    return np.exp(log_risk)


def _model_scale(median_months: float, shape: float, risk: np.ndarray) -> float:
    """Weibull time scale whose covariate mixture `risk` has the marginal median asked for."""
    if risk.size == 0 or np.ptp(risk) < 1e-12:
        return median_months * float(np.log(2.0) / (risk[0] if risk.size else 1.0)) ** (-1 / shape)

    def excess(log_scale: float) -> float:
        return float(np.mean(np.exp(-((median_months / np.exp(log_scale)) ** shape) * risk)) - 0.5)

    low = np.log(median_months) - np.log(np.log(2.0) / risk.min()) / shape
    high = np.log(median_months) - np.log(np.log(2.0) / risk.max()) / shape
    return float(np.exp(brentq(excess, low, high, xtol=1e-10)))


def _km_median(time: np.ndarray, event: np.ndarray) -> float:
    """First day the Kaplan-Meier curve of whole-day times reaches 0.5 (inf if never)."""
    if time.size == 0:
        return np.inf
    ending = np.bincount(time)
    at_risk = time.size - np.cumsum(ending) + ending
    survival = np.cumprod(1.0 - np.bincount(time, weights=event) / np.maximum(at_risk, 1))
    reached = np.flatnonzero(survival <= 0.5)
    return float(reached[0]) if reached.size else np.inf


def _calibrated_factor(statistic: Callable[[float], float], target: float) -> float:
    """Factor near 1 at which a non-decreasing sample statistic of it comes closest to target.

    With a few hundred heavily censored patients a model median is met only within about
    20%; like the published counts, the published medians are made true of the sample.
    Returns 1 when the target is out of reach.
    """
    low, high = -CALIBRATION_LOG_RANGE, CALIBRATION_LOG_RANGE
    if not statistic(np.exp(low)) <= target <= statistic(np.exp(high)):
        return 1.0
    while high - low > CALIBRATION_TOLERANCE:
        middle = (low + high) / 2
        low, high = (middle, high) if statistic(np.exp(middle)) < target else (low, middle)
    miss_low = target - statistic(np.exp(low))
    miss_high = statistic(np.exp(high)) - target
    return float(np.exp(low if miss_low < miss_high else high))


def _observed_os(os_months: np.ndarray, censor_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days of follow-up and death indicator when death at os_months competes with censoring."""
    os_days = np.round(os_months * DAYS_PER_MONTH).astype(np.int64)
    dead = os_days <= censor_days
    return np.where(dead, os_days, censor_days), dead


def _sample_os_median(os_months: np.ndarray, censor_days: np.ndarray, factor: float) -> float:
    return _km_median(*_observed_os(os_months * factor, censor_days))


class _Survival(NamedTuple):
    dead: np.ndarray
    last_followup_day: np.ndarray


class _CensoringDraws(NamedTuple):
    loss_order: np.ndarray
    lost_days: np.ndarray
    admin_days: np.ndarray


def _draw_censoring(
    design: SyntheticDesign, rng: np.random.Generator, cohort: _Cohort
) -> _CensoringDraws:
    """Who is lost first, when they would be lost, and when the rest are last seen alive."""
    d = design
    n = cohort.group.size
    lost_scale = d.lost_to_followup_median_months * DAYS_PER_MONTH / np.log(2.0)
    uniform = _stratified_uniform(rng, np.zeros(n, dtype=np.int64))
    window = d.last_contact_window_months * DAYS_PER_MONTH
    last_contact = _day(d.data_cutoff) - np.floor(rng.random(n) * window)
    return _CensoringDraws(
        loss_order=_weighted_order(
            rng, np.where(cohort.stage < 3, d.loss_to_followup_weight_early_stage, 1.0)
        ),
        lost_days=np.floor(-lost_scale * np.log(uniform)).astype(np.int64),
        admin_days=np.maximum(last_contact - cohort.diagnosis_day, 0).astype(np.int64),
    )


def _weighted_order(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Random order in which each item comes early in proportion to its weight."""
    return np.argsort(np.log(rng.random(weights.size)) / -weights, kind="stable")


def _censoring_days(draws: _CensoringDraws, factor: float) -> np.ndarray:
    """Days until last seen alive when a share FOLLOWED_SHARE_START * factor is not lost."""
    n = draws.admin_days.size
    lost = draws.loss_order[: n - round(min(FOLLOWED_SHARE_START * factor, 1.0) * n)]
    days = draws.admin_days.copy()
    days[lost] = np.minimum(draws.lost_days[lost], draws.admin_days[lost])
    return days


def _sample_followup_median(
    draws: _CensoringDraws, os_months: np.ndarray, eligible: np.ndarray, factor: float
) -> float:
    """Reverse Kaplan-Meier median follow-up of the eligible, in days."""
    time, dead = _observed_os(os_months[eligible], _censoring_days(draws, factor)[eligible])
    return _km_median(time, ~dead)


def _draw_survival(
    design: SyntheticDesign, rng: np.random.Generator, cohort: _Cohort, tumour: _Tumour
) -> _Survival:
    """Weibull proportional-hazards OS with loss to follow-up, calibrated to the medians.

    The share lost to follow-up is set for the median follow-up, and the time scales of
    stage IV with / without BM for their median OS; each depends on the other, so the two
    calibrations alternate. Stage I-III and exported-but-ineligible patients share the
    no-BM scale; their hazard differs through the covariates (early stage included).
    """
    d = design
    risk = _relative_risk(d, cohort, tumour)
    eligible = cohort.group == ELIGIBLE
    eligible_stage_iv = eligible & (cohort.stage == 3)
    groups = np.select([eligible_stage_iv & cohort.bm, eligible_stage_iv], [0, 1], 2)
    unit_months = (-np.log(_stratified_uniform(rng, groups)) / risk) ** (1 / d.os_weibull_shape)
    medians = (d.os_median_bm_months, d.os_median_no_bm_months)
    scales = np.array(
        [_model_scale(m, d.os_weibull_shape, risk[groups == g]) for g, m in enumerate(medians)]
    )
    scales = np.append(scales, scales[1])
    draws = _draw_censoring(d, rng, cohort)
    for _ in range(CALIBRATION_ROUNDS):
        followup = partial(_sample_followup_median, draws, unit_months * scales[groups], eligible)
        censor_days = _censoring_days(
            draws, _calibrated_factor(followup, d.median_followup_months * DAYS_PER_MONTH)
        )
        for group, median_months in enumerate(medians):
            members = groups == group
            statistic = partial(
                _sample_os_median, unit_months[members] * scales[group], censor_days[members]
            )
            scales[group] *= _calibrated_factor(statistic, median_months * DAYS_PER_MONTH)
        scales[2] = scales[1]
    os_days, dead = _observed_os(unit_months * scales[groups], censor_days)
    return _Survival(dead, cohort.diagnosis_day + os_days)


class _Exams(NamedTuple):
    patient: np.ndarray
    day: np.ndarray
    modality: np.ndarray
    first_row: np.ndarray
    last_row: np.ndarray
    key: np.ndarray

    def first_on_or_after(self, patients: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Row of each patient's first exam on or after the day (clamped to the last exam)."""
        rows = np.searchsorted(self.key, _exam_key(patients, days), side="left")
        return np.minimum(rows, self.last_row[patients])


def _exam_key(patients: np.ndarray, days: np.ndarray) -> np.ndarray:
    return patients.astype(np.int64) * DAY_SPAN + (days - FIRST_DAY)


def _schedule_exams(
    design: SyntheticDesign,
    rng: np.random.Generator,
    diagnosis_day: np.ndarray,
    last_followup_day: np.ndarray,
) -> _Exams:
    """A staging SSTR PET/CT around diagnosis, then exams every few months until follow-up ends."""
    d = design
    n = diagnosis_day.size
    offset = np.clip(
        np.round(rng.normal(d.staging_exam_mean_days, d.staging_exam_sd_days, n)),
        *STAGING_OFFSET_LIMITS_DAYS,
    ).astype(np.int64)
    staging = np.minimum(diagnosis_day + offset, last_followup_day)
    interval = (
        round(d.exam_interval_min_months * DAYS_PER_MONTH),
        round(d.exam_interval_max_months * DAYS_PER_MONTH),
    )
    modality_shares = _share_values(d.follow_up_modality_shares)
    patients = [np.arange(n, dtype=np.int32)]
    days, modalities = [staging], [np.full(n, PET, dtype=np.int8)]
    current = staging.copy()
    active = patients[0]
    while active.size:
        following = current[active] + rng.integers(interval[0], interval[1] + 1, active.size)
        keep = following <= last_followup_day[active]
        active = active[keep]
        current[active] = following[keep]
        patients.append(active)
        days.append(following[keep])
        modalities.append(
            rng.choice(len(MODALITIES), size=active.size, p=modality_shares).astype(np.int8)
        )
    patient = np.concatenate(patients)
    order = np.argsort(patient, kind="stable")
    patient, day = patient[order], np.concatenate(days)[order].astype(np.int32)
    first_row = np.searchsorted(patient, np.arange(n), side="left")
    last_row = np.searchsorted(patient, np.arange(n), side="right") - 1
    modality = np.concatenate(modalities)[order]
    return _Exams(patient, day, modality, first_row, last_row, _exam_key(patient, day))


class _Bone(NamedTuple):
    bm_row: np.ndarray
    visible_row: np.ndarray
    bm_day: np.ndarray
    visible_day: np.ndarray
    bm_type: np.ndarray
    same_day_mixed: np.ndarray
    modality: np.ndarray


def _metachronous_rows(
    design: SyntheticDesign, rng: np.random.Generator, exams: _Exams, bm_patients: np.ndarray
) -> np.ndarray:
    """BM exam rows: the staging exam, or for the metachronous a later follow-up exam."""
    first, last = exams.first_row[bm_patients], exams.last_row[bm_patients]
    bm_row = first.copy()
    chosen = _choose(
        rng, round(design.share_metachronous_bm * bm_patients.size), (last > first).astype(int)
    )
    chosen = chosen[last[chosen] > first[chosen]]
    staging_day = exams.day[first[chosen]]
    span = exams.day[last[chosen]] - staging_day
    delay = _truncated_exponential(
        rng, design.metachronous_bm_mean_months * DAYS_PER_MONTH, span.astype(float)
    )
    delay = np.clip(np.ceil(delay), 1, span).astype(np.int64)
    bm_row[chosen] = exams.first_on_or_after(bm_patients[chosen], staging_day + delay)
    return bm_row


def _visible_rows(
    exams: _Exams,
    patients: np.ndarray,
    bm_day: np.ndarray,
    window: np.ndarray,
    delay_days: np.ndarray,
) -> np.ndarray:
    """First exam on or after the lesion turns visible, kept within the patient's exams."""
    delay = np.clip(np.ceil(delay_days), 1, np.maximum(window, 1)).astype(np.int64)
    return exams.first_on_or_after(patients, bm_day + delay)


def _observed_delay_median(
    exams: _Exams,
    patients: np.ndarray,
    bm_day: np.ndarray,
    window: np.ndarray,
    delay_days: np.ndarray,
    factor: float,
) -> float:
    rows = _visible_rows(exams, patients, bm_day, window, delay_days * factor)
    return float(np.median(exams.day[rows] - bm_day)) if rows.size else np.inf


def _visibility_rows(
    design: SyntheticDesign,
    rng: np.random.Generator,
    exams: _Exams,
    bm_patients: np.ndarray,
    bm_row: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First morphologic rows of the BM patients, and which are never visible / SSTR-only.

    SSTR-only lesions become visible after a log-normal delay, seen at the next exam; the
    delay's scale is set so the observed median is the design's. The never-visible are
    preferably those whose exams end before their delay does.
    """
    d = design
    bm_day = exams.day[bm_row]
    window = exams.day[exams.last_row[bm_patients]] - bm_day
    target = d.morphologic_median_months * DAYS_PER_MONTH
    delay = target * np.exp(d.morphologic_delay_sigma * rng.standard_normal(bm_row.size))
    feasible = window >= np.ceil(delay)
    never = _choose(rng, d.n_unknown, 2 * ~feasible + (window == 0))
    rest = np.setdiff1d(np.arange(bm_row.size), never)
    priority = 2 * feasible[rest] + (window[rest] > 0)
    later = rest[_choose(rng, d.n_sstr_only - d.n_unknown, priority)]
    args = (exams, bm_patients[later], bm_day[later], window[later], delay[later])
    factor = _calibrated_factor(partial(_observed_delay_median, *args), target)
    visible_row = bm_row.copy()
    visible_row[never] = exams.patient.size
    visible_row[later] = _visible_rows(*args[:-1], delay[later] * factor)
    return visible_row, never, np.concatenate([never, later])


def _early_stage_bm(
    design: SyntheticDesign, rng: np.random.Generator, exams: _Exams, cohort: _Cohort
) -> tuple[np.ndarray, np.ndarray]:
    """Stage I-III patients with BM years after diagnosis, and their first positive rows."""
    candidates = np.flatnonzero((cohort.group == ELIGIBLE) & (cohort.stage < 3))
    first, last = exams.first_row[candidates], exams.last_row[candidates]
    earliest = cohort.diagnosis_day[candidates] + round(
        design.bm_early_stage_min_months * DAYS_PER_MONTH
    )
    room = exams.day[last] - earliest
    chosen = _choose(rng, design.n_bm_early_stage, 2 * (room >= 0) + (last > first))
    target = earliest[chosen] + np.floor(rng.random(chosen.size) * np.maximum(room[chosen], 0))
    patients = candidates[chosen]
    return patients, exams.first_on_or_after(patients, target.astype(np.int64))


def _place_bone_metastases(
    design: SyntheticDesign, rng: np.random.Generator, exams: _Exams, cohort: _Cohort
) -> _Bone:
    """Which exam first shows BM, when they become morphologically visible, and their type."""
    n_patients = cohort.group.size
    never_row = exams.patient.size
    bm_patients = np.flatnonzero(cohort.bm)
    bm_row_of_bm = _metachronous_rows(design, rng, exams, bm_patients)
    visible_of_bm, never, sstr_only = _visibility_rows(
        design, rng, exams, bm_patients, bm_row_of_bm
    )
    modality = exams.modality.copy()
    modality[bm_row_of_bm[sstr_only]] = PET

    bm_type = np.full(n_patients, -1, dtype=np.int64)
    typed = np.setdiff1d(np.arange(bm_patients.size), never)
    bm_type[bm_patients[typed]] = _allocate(
        rng, [design.n_osteoblastic, design.n_osteolytic, design.n_mixed]
    )
    bm_row = np.full(n_patients, never_row, dtype=np.int64)
    visible_row = np.full(n_patients, never_row, dtype=np.int64)
    bm_row[bm_patients] = bm_row_of_bm
    visible_row[bm_patients] = visible_of_bm
    early_patients, early_rows = _early_stage_bm(design, rng, exams, cohort)
    bm_row[early_patients] = early_rows
    visible_row[early_patients] = early_rows
    bm_type[early_patients] = OSTEOBLASTIC

    same_day_mixed = _pick(rng, bm_patients[bm_type[bm_patients] == MIXED], design.n_mixed_same_day)
    day_or_missing = np.append(exams.day, MISSING_DAY)
    return _Bone(
        bm_row,
        visible_row,
        day_or_missing[bm_row],
        day_or_missing[visible_row],
        bm_type,
        same_day_mixed,
        modality,
    )


def _imaging_rows(exams: _Exams, bone: _Bone) -> pd.DataFrame:
    """Bone findings of every exam, plus a same-day second exam for the two-type mixed BM."""
    rows = np.arange(exams.patient.size)
    patient = exams.patient
    positive = rows >= bone.bm_row[patient]
    morphologic = rows >= bone.visible_row[patient]
    lesion = np.where(morphologic, bone.bm_type[patient], -1).astype(np.int8)
    first_visible = bone.visible_row[bone.same_day_mixed]
    lesion[first_visible] = OSTEOBLASTIC
    uptake = np.where(bone.modality == PET, positive.astype(np.int8), -1)
    n_extra = first_visible.size
    return pd.DataFrame(
        {
            "patient": np.concatenate([patient, bone.same_day_mixed]),
            "day": np.concatenate([exams.day, exams.day[first_visible]]),
            "modality": np.concatenate(
                [
                    bone.modality,
                    np.where(bone.modality[first_visible] == CT, MRI, CT).astype(np.int8),
                ]
            ),
            "uptake": np.concatenate([uptake, np.full(n_extra, -1)]).astype(np.int8),
            "morphologic": np.concatenate([morphologic, np.ones(n_extra, dtype=bool)]),
            "lesion": np.concatenate([lesion, np.full(n_extra, OSTEOLYTIC, dtype=np.int8)]),
        },
        copy=False,
    )


class _BoneCare(NamedTuple):
    sre_patients: np.ndarray
    antiresorptive_patients: np.ndarray


def _assign_bone_care(
    design: SyntheticDesign, rng: np.random.Generator, cohort: _Cohort, bone: _Bone
) -> _BoneCare:
    """SRE patients by BM type, none on antiresorptive therapy; then the treated patients."""
    bm_patients = np.flatnonzero(cohort.bm)
    bm_type = bone.bm_type[bm_patients]
    per_type = (design.n_sre_osteoblastic, design.n_sre_osteolytic, design.n_sre_mixed)
    sre = np.sort(
        np.concatenate([_pick(rng, bm_patients[bm_type == t], k) for t, k in enumerate(per_type)])
    )
    without_sre = np.setdiff1d(bm_patients, sre)
    return _BoneCare(sre, _pick(rng, without_sre, design.n_antiresorptive))


def _delay_within(
    rng: np.random.Generator, mean_days: float, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """start plus an exponential delay, never beyond end."""
    return np.minimum(start + np.round(rng.exponential(mean_days, start.size)), end).astype(
        np.int64
    )


def _draw_skeletal_events(
    design: SyntheticDesign,
    rng: np.random.Generator,
    cohort: _Cohort,
    survival: _Survival,
    bone: _Bone,
    care: _BoneCare,
) -> pd.DataFrame:
    """One or two SREs after morphologic visibility, never twice the same type."""
    patients = care.sre_patients
    last = survival.last_followup_day[patients]
    mean_days = design.sre_mean_months_after_visibility * DAYS_PER_MONTH
    anchor = np.maximum(bone.visible_day[patients], cohort.diagnosis_day[patients])
    first_day = _delay_within(rng, mean_days, anchor, last)
    first_type = rng.choice(
        len(SRE_TYPES), size=patients.size, p=_share_values(design.sre_type_shares)
    )
    second = _pick(
        rng, np.arange(patients.size), round(design.share_sre_two_events * patients.size)
    )
    second_day = _delay_within(rng, mean_days, first_day[second], last[second])
    second_type = (first_type[second] + rng.integers(1, len(SRE_TYPES), second.size)) % len(
        SRE_TYPES
    )
    return pd.DataFrame(
        {
            "patient": np.concatenate([patients, patients[second]]),
            "day": np.concatenate([first_day, second_day]),
            "type": np.concatenate([first_type, second_type]),
        },
        copy=False,
    )


def _therapy_frame(
    patient: np.ndarray, therapy: np.ndarray | int, start: np.ndarray, end: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient": patient, "therapy": therapy, "start": start, "end": end}, copy=False
    )


def _episodes(
    rng: np.random.Generator, timing: TherapyTiming, diagnosis: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n = diagnosis.size
    start = (
        diagnosis
        + np.floor(rng.uniform(*timing.start_fraction, n) * (last - diagnosis))
        + rng.integers(0, timing.start_days + 1, n)
    )
    start = np.minimum(start, last).astype(np.int64)
    end = np.minimum(start + rng.integers(*timing.duration_days, n, endpoint=True), last)
    ended = rng.random(n) < timing.share_ended
    return start, np.where(ended, end, MISSING_DAY)


def _routine_therapies(
    design: SyntheticDesign, rng: np.random.Generator, cohort: _Cohort, survival: _Survival
) -> list[pd.DataFrame]:
    stage_iv = np.flatnonzero(cohort.stage == 3)
    early = np.flatnonzero(cohort.stage < 3)
    shares_iv = dict(design.therapy_shares_stage_iv)
    shares_early = dict(design.therapy_shares_early_stage)
    frames = []
    for therapy, timing in THERAPY_TIMING.items():
        patients = np.concatenate(
            [
                _pick(rng, stage_iv, round(shares_iv[therapy] * stage_iv.size)),
                _pick(rng, early, round(shares_early[therapy] * early.size)),
            ]
        )
        start, end = _episodes(
            rng, timing, cohort.diagnosis_day[patients], survival.last_followup_day[patients]
        )
        frames.append(_therapy_frame(patients, THERAPIES.index(therapy), start, end))
    return frames


def _antiresorptive_therapies(
    design: SyntheticDesign,
    rng: np.random.Generator,
    survival: _Survival,
    bone: _Bone,
    care: _BoneCare,
) -> pd.DataFrame:
    """One episode per treated BM patient, mostly started after the BM date."""
    patients = care.antiresorptive_patients
    bm_day = bone.bm_day[patients]
    last = survival.last_followup_day[patients]
    start = _delay_within(rng, design.antiresorptive_start_mean_days, bm_day, last)
    before = _pick(
        rng, np.arange(patients.size), round(design.share_antiresorptive_before_bm * patients.size)
    )
    start[before] = bm_day[before] - rng.integers(*ANTIRESORPTIVE_BEFORE_BM_DAYS, before.size)
    end = np.minimum(start + rng.integers(*ANTIRESORPTIVE_DURATION_DAYS, patients.size), last)
    end = np.where(rng.random(patients.size) < ANTIRESORPTIVE_SHARE_ENDED, end, MISSING_DAY)
    drug = _allocate(rng, _apportion(patients.size, _share_values(design.antiresorptive_shares)))
    codes = np.array([THERAPIES.index(name) for name in ANTIRESORPTIVES])
    return _therapy_frame(patients, codes[drug], start, end)


def _radiotherapy_for_sre(
    rng: np.random.Generator, survival: _Survival, events: pd.DataFrame
) -> pd.DataFrame:
    """Radiation to bone as an SRE is also an external radiotherapy episode."""
    radiation = events[events["type"] == SRE_TYPES.index("radiation_to_bone")]
    patients = radiation["patient"].to_numpy()
    start = radiation["day"].to_numpy()
    end = np.minimum(
        start + rng.integers(*RADIOTHERAPY_FOR_SRE_DAYS, patients.size, endpoint=True),
        survival.last_followup_day[patients],
    )
    return _therapy_frame(patients, THERAPIES.index("external_radiotherapy"), start, end)


def _draw_therapies(
    design: SyntheticDesign,
    rng: np.random.Generator,
    cohort: _Cohort,
    survival: _Survival,
    bone: _Bone,
    care: _BoneCare,
    events: pd.DataFrame,
) -> pd.DataFrame:
    return pd.concat(
        [
            *_routine_therapies(design, rng, cohort, survival),
            _antiresorptive_therapies(design, rng, survival, bone, care),
            _radiotherapy_for_sre(rng, survival, events),
        ],
        ignore_index=True,
    )


def _labels(categories: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """Category names for codes; code -1 is missing (None)."""
    return np.array([*categories, None], dtype=object)[codes]


def _alphabetical(categories: Sequence[str], codes: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(np.array(categories)))[codes]


def _dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]")


def _patient_ids(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pseudonyms "SYN" and 1..n in five or more digits, in random order, so that the id says
    nothing about the patient (and no id of a patient is written in this file, which the
    audit crate ships)."""
    rank = rng.permutation(n)
    digits = (rank + 1).astype(str)
    ids = np.strings.add("SYN", np.strings.zfill(digits, max(5, len(str(n))))).astype(object)
    return rank, ids


def _patients_table(
    cohort: _Cohort, tumour: _Tumour, survival: _Survival, ids: np.ndarray, rank: np.ndarray
) -> pd.DataFrame:
    by_id = np.argsort(rank)
    return pd.DataFrame(
        {
            "patient_id": ids[by_id],
            "sex": _labels(SEXES, cohort.male[by_id].astype(np.int64)),
            "birth_date": _dates(cohort.birth_day[by_id]),
            "diagnosis_date": _dates(cohort.diagnosis_day[by_id]),
            "primary_site": _labels(PRIMARY_SITES, tumour.site[by_id]),
            "uicc_stage": _labels(STAGES, cohort.stage[by_id]),
            "ki67_percent": tumour.ki67[by_id],
            "grade": _labels(GRADES, tumour.grade[by_id]),
            "functioning": cohort.functioning[by_id],
            "vital_status": _labels(VITAL_STATUSES, survival.dead[by_id].astype(np.int64)),
            "last_followup_date": _dates(survival.last_followup_day[by_id]),
        },
        copy=False,
    )


def _imaging_table(rows: pd.DataFrame, ids: np.ndarray, rank: np.ndarray) -> pd.DataFrame:
    key = _exam_key(rank[rows["patient"].to_numpy()], rows["day"].to_numpy()) * len(MODALITIES)
    rows = rows.take(np.argsort(key + _alphabetical(MODALITIES, rows["modality"].to_numpy())))
    patient, modality, uptake = (rows[c].to_numpy() for c in ("patient", "modality", "uptake"))
    return pd.DataFrame(
        {
            "patient_id": ids[patient],
            "exam_date": _dates(rows["day"].to_numpy()),
            "modality": _labels(MODALITIES, modality),
            "bone_sstr_uptake": pd.arrays.BooleanArray(uptake == 1, uptake < 0),
            "bone_morphologic": rows["morphologic"].to_numpy(),
            "lesion_type": _labels(LESION_TYPES, rows["lesion"].to_numpy()),
        },
        copy=False,
    )


def _therapies_table(rows: pd.DataFrame, ids: np.ndarray, rank: np.ndarray) -> pd.DataFrame:
    keys = (rows["end"], _alphabetical(THERAPIES, rows["therapy"]), rows["start"])
    rows = rows.take(np.lexsort((*keys, rank[rows["patient"]])))
    patient, therapy, start, end = (
        rows[c].to_numpy() for c in ("patient", "therapy", "start", "end")
    )
    return pd.DataFrame(
        {
            "patient_id": ids[patient],
            "therapy": _labels(THERAPIES, therapy),
            "start_date": _dates(start),
            "end_date": _dates(end),
        },
        copy=False,
    )


def _skeletal_events_table(rows: pd.DataFrame, ids: np.ndarray, rank: np.ndarray) -> pd.DataFrame:
    keys = (_alphabetical(SRE_TYPES, rows["type"]), rows["day"], rank[rows["patient"]])
    rows = rows.take(np.lexsort(keys))
    patient, event_type = rows["patient"].to_numpy(), rows["type"].to_numpy()
    return pd.DataFrame(
        {
            "patient_id": ids[patient],
            "event_date": _dates(rows["day"].to_numpy()),
            "event_type": _labels(SRE_TYPES, event_type),
        },
        copy=False,
    )


def _draw_imaging(
    design: SyntheticDesign,
    streams: Mapping[str, np.random.Generator],
    cohort: _Cohort,
    survival: _Survival,
    ids: np.ndarray,
    rank: np.ndarray,
) -> tuple[pd.DataFrame, _Bone]:
    """The imaging table and the bone course it shows (the exam schedule is then dropped)."""
    exams = _schedule_exams(
        design, streams["exams"], cohort.diagnosis_day, survival.last_followup_day
    )
    bone = _place_bone_metastases(design, streams["bone"], exams, cohort)
    return _imaging_table(_imaging_rows(exams, bone), ids, rank), bone


STREAMS = ("cohort", "tumour", "survival", "exams", "bone", "care", "events", "therapies", "ids")


def simulate_cohort(design: SyntheticDesign, seed: int) -> dict[str, pd.DataFrame]:
    """The four raw-export tables of a synthetic cohort, typed, in contract column order.

    Each step draws from its own stream spawned from `default_rng(seed)`, so that changing
    one part of the model leaves the random draws of the others untouched.
    """
    streams = dict(zip(STREAMS, np.random.default_rng(seed).spawn(len(STREAMS)), strict=True))
    cohort = _draw_cohort(design, streams["cohort"])
    tumour = _draw_tumour(design, streams["tumour"], cohort.group.size)
    survival = _draw_survival(design, streams["survival"], cohort, tumour)
    rank, ids = _patient_ids(streams["ids"], cohort.group.size)
    imaging, bone = _draw_imaging(design, streams, cohort, survival, ids, rank)
    care = _assign_bone_care(design, streams["care"], cohort, bone)
    events = _draw_skeletal_events(design, streams["events"], cohort, survival, bone, care)
    therapies = _draw_therapies(design, streams["therapies"], cohort, survival, bone, care, events)
    return {
        "patients": _patients_table(cohort, tumour, survival, ids, rank),
        "imaging": imaging,
        "therapies": _therapies_table(therapies, ids, rank),
        "skeletal_events": _skeletal_events_table(events, ids, rank),
    }


def _one_decimal(values: np.ndarray) -> np.ndarray:
    tenths = np.round(np.abs(values) * 10).astype(np.int64)
    sign = np.where(values < 0, "-", "")
    text = np.strings.add(np.strings.add(sign, (tenths // 10).astype(str)), ".")
    return np.strings.add(text, (tenths % 10).astype(str))


def _quoted(text: np.ndarray) -> np.ndarray:
    """RFC 4180 quoting of the cells that hold a separator, quote or line break."""
    needs_quotes = np.zeros(text.shape, dtype=bool)
    for character in (",", '"', "\n", "\r"):
        needs_quotes |= np.strings.find(text, character) >= 0
    if not needs_quotes.any():
        return text
    escaped = np.strings.add(np.strings.add('"', np.strings.replace(text, '"', '""')), '"')
    return np.where(needs_quotes, escaped, text)


def _canonical_values(values: pd.Index) -> np.ndarray:
    """Distinct non-missing values as canonical CSV cells."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return np.datetime_as_string(values.to_numpy().astype("datetime64[D]"))
    if pd.api.types.is_bool_dtype(values):
        return np.where(values.to_numpy(dtype=bool), "true", "false")
    if pd.api.types.is_float_dtype(values):
        return _one_decimal(values.to_numpy(dtype=float))
    return _quoted(values.to_numpy(dtype=str))


def _canonical_text(column: pd.Series) -> np.ndarray:
    """A column as UTF-8 canonical CSV cells: ISO dates, true/false, one decimal, empty = missing.

    Only the distinct values are formatted, which keeps 10^6-patient exports fast.
    """
    codes, values = pd.factorize(column)
    return np.strings.encode(np.append(_canonical_values(values), ""), "utf-8")[codes]


def _write_csv(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Canonical CSV, built chunk by chunk with vectorised byte-string operations."""
    with path.open("wb") as out:
        out.write(",".join(columns).encode("utf-8") + b"\n")
        for start in range(0, len(frame), WRITE_CHUNK_ROWS):
            chunk = frame.iloc[start : start + WRITE_CHUNK_ROWS]
            cells = [_canonical_text(chunk[column]) for column in columns]
            lines = cells[0]
            for cell in cells[1:]:
                lines = np.strings.add(np.strings.add(lines, b","), cell)
            out.write(b"\n".join(lines.tolist()) + b"\n")


def write_exports(tables: Mapping[str, pd.DataFrame], directory: Path) -> None:
    """Write the four canonical CSVs, plus SYNTHETIC.txt so nobody takes them for patients."""
    missing = [name for name in COLUMNS if name not in tables]
    if missing:
        raise ValueError(f"missing table(s): {', '.join(missing)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, columns in COLUMNS.items():
        _write_csv(tables[name], columns, directory / f"{name}.csv")
    (directory / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTICE, encoding="utf-8")


# ---------------------------------------------------------------------------------------
# exports in a declared dialect, and the example consortium

IGNORED_COLUMN_NOTE = "Größe über Norm"  # a free-text cell, outside ASCII, as clinics write
XLSX_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can carry
XLSX_CORE_TIME = "1980-01-01T00:00:00Z"


def _inverse_values(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Contract cell text -> export value, from the config's export value -> contract value
    (YAML reads `ja: true` as the boolean, which the canonical cell writes as "true")."""

    def cell(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return {cell(contract_value): export for export, contract_value in mapping.items()}


def _dialect_text(column: pd.Series, date_format: str, decimal: str) -> np.ndarray:
    """A typed column as export cells: dates in date_format, true/false, one decimal with
    the declared separator, empty = missing; only the distinct values are formatted."""
    codes, values = pd.factorize(column)
    if pd.api.types.is_datetime64_any_dtype(values):
        text = np.asarray(values.strftime(date_format), dtype=object)
    elif pd.api.types.is_bool_dtype(values):
        text = np.where(values.to_numpy(dtype=bool), "true", "false")
    elif pd.api.types.is_float_dtype(values):
        text = np.strings.replace(_one_decimal(values.to_numpy(dtype=float)), ".", decimal)
    else:
        text = values.to_numpy(dtype=str)
    return np.append(np.asarray(text, dtype=object), "")[codes]


def _export_columns(frame: pd.DataFrame, table: str, dialect: Mapping[str, Any]) -> pd.DataFrame:
    """Contract names to the export's (the inverse of `columns:`), plus every column the
    dialect says to ignore, filled with free text, as a clinic's extra columns would be."""
    renamed = {
        contract_name: export_name
        for export_name, contract_name in (dialect.get("columns") or {}).get(table, {}).items()
    }
    extras = (dialect.get("ignore_columns") or {}).get(table, [])
    return frame.rename(columns=renamed).assign(**dict.fromkeys(extras, IGNORED_COLUMN_NOTE))


def dialect_table(frame: pd.DataFrame, table: str, dialect: Mapping[str, Any]) -> pd.DataFrame:
    """One contract-typed table as the text cells of an export in the declared dialect
    (config keys raw_format, columns, values, ignore_columns): ingest's reading undone, so
    that what the contract says can be declared is also what the examples exercise."""
    raw_format = dialect.get("raw_format") or {}
    date_format = raw_format.get("date_format", "%Y-%m-%d")
    decimal = raw_format.get("decimal", ".")
    mappings = (dialect.get("values") or {}).get(table, {})
    cells = {}
    for name in frame.columns:
        text = pd.Series(_dialect_text(frame[name], date_format, decimal), copy=False)
        if name in mappings:
            text = text.replace(_inverse_values(mappings[name]))
        cells[name] = text
    return _export_columns(pd.DataFrame(cells), table, dialect)


def _clear_exports(directory: Path) -> None:
    """Remove earlier exports of the four tables: a table left as .csv beside a new .xlsx
    would be the contract's duplicate-file error."""
    for table in COLUMNS:
        for suffix in (".csv", ".xlsx"):
            (directory / f"{table}{suffix}").unlink(missing_ok=True)


def write_dialect_exports(
    tables: Mapping[str, pd.DataFrame],
    directory: Path,
    dialect: Mapping[str, Any],
    notice: str = SYNTHETIC_NOTICE,
) -> None:
    """The four tables as CSV in a declared dialect (delimiter, decimal, encoding, dates,
    column names, value spellings, ignored extra columns), as a hospital system exports them;
    plus SYNTHETIC.txt, as beside every simulated export."""
    raw_format = dialect.get("raw_format") or {}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _clear_exports(directory)
    for name, columns in COLUMNS.items():
        dialect_table(tables[name][list(columns)], name, dialect).to_csv(
            directory / f"{name}.csv",
            sep=raw_format.get("delimiter", ","),
            encoding=raw_format.get("encoding", "utf-8"),
            index=False,
            lineterminator="\n",
        )
    (directory / "SYNTHETIC.txt").write_text(notice, encoding="utf-8")


def _fixed_time_zip(data: bytes) -> bytes:
    """The workbook with every time stamp (zip members, document properties) fixed, so that
    the same tables give the same bytes: openpyxl stamps the time of saving."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            content = source.read(member)
            if member.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                    rb"\g<1>" + XLSX_CORE_TIME.encode(),
                    content,
                )
            info = zipfile.ZipInfo(member.filename, date_time=XLSX_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return out.getvalue()


def write_xlsx_exports(
    tables: Mapping[str, pd.DataFrame],
    directory: Path,
    dialect: Mapping[str, Any],
    notice: str = SYNTHETIC_NOTICE,
) -> None:
    """One workbook per table with real date and boolean cells, as spreadsheets export them,
    on the dialect's sheet (columns renamed and extra columns added as declared); plus
    SYNTHETIC.txt, as beside every simulated export."""
    if (dialect.get("values") or {}) or set(dialect.get("raw_format") or {}) - {"sheet"}:
        raise ValueError(
            ".xlsx exports are simulated with only raw_format.sheet, columns and "
            "ignore_columns declared"
        )
    sheet = (dialect.get("raw_format") or {}).get("sheet", "Sheet1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _clear_exports(directory)
    for name, columns in COLUMNS.items():
        frame = tables[name][list(columns)]
        cells = _export_columns(frame.astype(object).where(frame.notna(), None), name, dialect)
        book = io.BytesIO()
        cells.to_excel(book, index=False, sheet_name=sheet, engine="openpyxl")
        (directory / f"{name}.xlsx").write_bytes(_fixed_time_zip(book.getvalue()))
    (directory / "SYNTHETIC.txt").write_text(notice, encoding="utf-8")


CONSORTIUM_SEED = 20251207  # the default seed of the example consortium
CONSORTIUM_NOTICE = (
    "SYNTHETIC DATA - NOT PATIENTS. The tables in this folder were simulated by "
    "sinet_bm.simulate (write_consortium) as one centre of an invented consortium; every row "
    "is invented and describes no real person, and the centre's name is a label, not a "
    "hospital's data. The centres differ on purpose in size, share of bone metastases and "
    "effect of bone metastases on survival, so that the pooled analysis has heterogeneity to "
    "find. Anything computed from these files describes the simulation, not clinical "
    "evidence, and must always be labelled synthetic.\n"
)


class ConsortiumCentre(NamedTuple):
    """One centre of the example consortium: its size, its own share of BM among stage IV
    and BM hazard ratio of OS (the heterogeneity the pooling is to find), its file type."""

    name: str
    n_eligible: int
    bm_share_stage_iv: float
    bm_hazard_ratio: float
    file_type: str  # "csv" (in the centre's declared dialect) or "xlsx"


# Appending a centre leaves the others' seeds (child k of the consortium seed) unchanged.
CONSORTIUM: tuple[ConsortiumCentre, ...] = (
    ConsortiumCentre("essen", 458, 105 / 305, 1.5, "csv"),
    ConsortiumCentre("leipzig", 250, 0.45, 2.5, "csv"),
    ConsortiumCentre("dublin", 150, 0.25, 4.0, "xlsx"),
    ConsortiumCentre("uppsala", 80, 0.40, 6.0, "csv"),
)


# The counts `scaled` derives from n_bm, in the base's proportions among the BM patients.
BM_COUNTS = (
    "n_bm",
    "n_functioning_bm",
    "n_sstr_only",
    "n_osteoblastic",
    "n_osteolytic",
    "n_mixed",
    "n_mixed_same_day",
    "n_antiresorptive",
    "n_sre_osteoblastic",
    "n_sre_osteolytic",
    "n_sre_mixed",
)


def centre_design(centre: ConsortiumCentre, base: SyntheticDesign | None = None) -> SyntheticDesign:
    """The base design (default: the published study) at the centre's size, with its BM
    share and BM effect. Stage IV and everything outside BM keep the base's proportions;
    the BM counts are those of the base scaled to the size at which its BM number is the
    centre's, so types, SRE and therapy keep their proportions among the BM patients. The
    effect moves the BM median of OS: two Weibull groups of one shape have the hazard ratio
    (median ratio) ** shape."""
    base = base or SyntheticDesign()
    design = scaled(base, centre.n_eligible)
    n_bm = round(centre.bm_share_stage_iv * design.n_stage_iv)
    bm = scaled(base, max(1, round(n_bm * base.n_eligible / base.n_bm)))
    n_functioning_other = _rescale(
        base.n_functioning - base.n_functioning_bm,
        base.n_eligible - base.n_bm,
        centre.n_eligible - bm.n_bm,
    )
    return dataclasses.replace(
        design,
        **{name: getattr(bm, name) for name in BM_COUNTS},
        n_functioning=bm.n_functioning_bm + n_functioning_other,
        os_median_bm_months=base.os_median_no_bm_months
        / centre.bm_hazard_ratio ** (1 / base.os_weibull_shape),
    )


def centre_seeds(seed: int, k: int) -> list[int]:
    """Independent child seeds of the consortium's seed, one per centre, in centre order."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(k)]


def write_centre(
    tables: Mapping[str, pd.DataFrame],
    directory: Path,
    dialect: Mapping[str, Any],
    file_type: str,
) -> None:
    """A centre's folder: its four exports in its dialect and the synthetic marker."""
    if file_type == "xlsx":
        write_xlsx_exports(tables, directory, dialect, CONSORTIUM_NOTICE)
    elif file_type == "csv":
        write_dialect_exports(tables, directory, dialect, CONSORTIUM_NOTICE)
    else:
        raise ValueError(f"unknown file type {file_type!r} (csv or xlsx)")


def write_consortium(
    centres: Mapping[str, Mapping[str, Any]],
    seed: int = CONSORTIUM_SEED,
    base: SyntheticDesign | None = None,
) -> dict[str, SyntheticDesign]:
    """Simulate the example consortium into the folders a config's `centres:` names, each
    centre in the dialect declared there (so the config, which the pipeline reads, is also
    what the exports are written to), and return each centre's design."""
    names = [centre.name for centre in CONSORTIUM]
    if sorted(centres) != sorted(names):
        raise ValueError(f"the config's centres must be exactly {', '.join(names)}")
    designs = {}
    for centre, child_seed in zip(CONSORTIUM, centre_seeds(seed, len(CONSORTIUM)), strict=True):
        design = centre_design(centre, base)
        entry = centres[centre.name]
        tables = simulate_cohort(design, seed=child_seed)
        write_centre(tables, Path(entry["raw_dir"]), entry, centre.file_type)
        designs[centre.name] = design
    return designs


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m sinet_bm.simulate consortium CONFIG [--seed N]`: write the centres that
    CONFIG (a Snakemake --configfile with `centres:`) lists, into their raw_dir."""
    import argparse

    import yaml

    parser = argparse.ArgumentParser(
        prog="python -m sinet_bm.simulate", description="Write synthetic exports."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    consortium = sub.add_parser(
        "consortium", help="the example consortium's centres, into the raw_dir of each"
    )
    consortium.add_argument("config", type=Path, help="config file with a centres: mapping")
    consortium.add_argument("--seed", type=int, default=CONSORTIUM_SEED)
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    for name, design in write_consortium(config["centres"], args.seed).items():
        print(
            f"{name}: {design.n_eligible} eligible, {design.n_stage_iv} stage IV, "
            f"{design.n_bm} BM -> {config['centres'][name]['raw_dir']}"
        )


if __name__ == "__main__":
    main()
