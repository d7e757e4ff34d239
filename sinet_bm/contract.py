"""The data contract's facts, each written once: the export tables and their categories
(read from the pandera schemas in `schemas/`, which validation runs), and the section 2
definitions that turn exports into endpoints (read from the config).

Validation, endpoint derivation, the simulator, the analyses and the documentation all take
these from here, so that a category or a threshold cannot differ between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

NAT = np.iinfo(np.int64).min  # NaT, as the int64 behind datetime64
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
TABLES = ("patients", "imaging", "therapies", "skeletal_events")
CHILD_TABLES = TABLES[1:]
# Therapies that count as antiresorptive unless the config says otherwise (its default).
ANTIRESORPTIVE_THERAPIES = ("denosumab", "zoledronic_acid", "other_bisphosphonate")
# Files this module reads (one schema per table): steps that use it rerun when one changes.
USES = (
    "schemas/patients.yaml",
    "schemas/imaging.yaml",
    "schemas/therapies.yaml",
    "schemas/skeletal_events.yaml",
)


@cache
def table_schema(table: str) -> dict[str, Any]:
    """The pandera schema of one export, as the YAML mapping it is written in."""
    return yaml.safe_load((SCHEMA_DIR / f"{table}.yaml").read_text())


def columns(table: str) -> tuple[str, ...]:
    return tuple(table_schema(table)["columns"])


def categories(table: str, column: str) -> tuple[str, ...]:
    """The allowed values of a category column, in the contract's order."""
    return tuple(table_schema(table)["columns"][column]["isin"])


def unique_key(table: str) -> tuple[str, ...]:
    return tuple(table_schema(table).get("unique") or ())


@dataclass(frozen=True)
class Definitions:
    """Section 2 of the contract: every constant that derives endpoints from exports.

    The config's `definitions:` mapping is its only source; validation (cutoff, exam
    warning, Ki-67 cut-offs) and derivation (period, age, months, antiresorptives) read the
    same object.
    """

    data_cutoff: pd.Timestamp
    study_start: pd.Timestamp
    study_end: pd.Timestamp
    min_age_years: float
    days_per_month: float
    days_per_year: float
    exam_before_diagnosis_warning_days: int
    ki67_g1_below: float
    ki67_g2_max: float
    antiresorptive_therapies: tuple[str, ...]

    @classmethod
    def from_config(cls, definitions: Mapping[str, Any]) -> Definitions:
        return cls(
            data_cutoff=pd.Timestamp(definitions["data_cutoff"]),
            study_start=pd.Timestamp(definitions["study_start"]),
            study_end=pd.Timestamp(definitions["study_end"]),
            min_age_years=float(definitions["min_age_years"]),
            days_per_month=float(definitions["days_per_month"]),
            days_per_year=float(definitions["days_per_year"]),
            exam_before_diagnosis_warning_days=int(
                definitions["exam_before_diagnosis_warning_days"]
            ),
            ki67_g1_below=float(definitions["ki67_g1_below"]),
            ki67_g2_max=float(definitions["ki67_g2_max"]),
            antiresorptive_therapies=tuple(definitions["antiresorptive_therapies"]),
        )


def grade_conditions(ki67: pd.Series, definitions: Definitions) -> list[pd.Series]:
    """WHO 2019 grade from Ki-67, one condition per grade: below the G1 cut-off → G1, up to
    the G2 maximum → G2, above → G3 (missing Ki-67 meets none)."""
    return [
        ki67 < definitions.ki67_g1_below,
        ki67 <= definitions.ki67_g2_max,
        ki67 > definitions.ki67_g2_max,
    ]


def derive_grade(ki67: pd.Series, definitions: Definitions) -> pd.Series:
    """The grade Ki-67 gives (see grade_conditions); missing Ki-67 gives no grade."""
    grade = select_text(grade_conditions(ki67, definitions), categories("patients", "grade"), None)
    return pd.Series(grade, index=ki67.index)


def select_text(conditions: list, choices: Sequence[str], default: str | None) -> np.ndarray:
    """`np.select` for text: per row the choice of the first true condition, as Python
    strings (a numpy string array would be converted to them row by row)."""
    which = np.select(conditions, list(range(len(choices))), default=len(choices))
    return np.array([*choices, default], dtype=object)[which]


def select_category(conditions: list, choices: Sequence[str], default: str) -> pd.Categorical:
    """`select_text` as a categorical: a code per row, no string per row."""
    which = np.select(conditions, list(range(len(choices))), default=len(choices))
    return pd.Categorical.from_codes(which, categories=[*choices, default])


def earliest(codes: np.ndarray, dates: np.ndarray, size: int) -> np.ndarray:
    """Per code below `size`, the earliest of its dates (NaT: none); rows without a code
    (-1) or a date do not count. One unbuffered pass, no sort and no group-by."""
    days = np.asarray(dates, dtype="datetime64[ns]").view(np.int64)
    counted = (codes >= 0) & (days != NAT)
    if not counted.all():
        codes, days = codes[counted], days[counted]
    first = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(first, codes, days)
    first[first == np.iinfo(np.int64).max] = NAT
    return first.view("datetime64[ns]")


def latest(codes: np.ndarray, dates: np.ndarray, size: int) -> np.ndarray:
    """Per code below `size`, the latest of its dates (NaT, the smallest int64: none)."""
    days = np.asarray(dates, dtype="datetime64[ns]").view(np.int64)
    counted = codes >= 0
    if not counted.all():
        codes, days = codes[counted], days[counted]
    last = np.full(size, NAT)
    np.maximum.at(last, codes, days)
    return last.view("datetime64[ns]")


def positive_exam(imaging: pd.DataFrame) -> np.ndarray:
    """Exams with bone uptake or a morphologic bone lesion."""
    uptake = imaging["bone_sstr_uptake"].to_numpy(dtype=bool, na_value=False)
    return uptake | imaging["bone_morphologic"].to_numpy(dtype=bool, na_value=False)


def first_positive_dates(imaging: pd.DataFrame, codes: np.ndarray, size: int) -> np.ndarray:
    """BM date per patient code (each exam's patient as a code below `size`): the first
    positive exam (validation needs it for SREs before any positive imaging, derivation
    for BM)."""
    positive = np.flatnonzero(positive_exam(imaging))
    return earliest(codes[positive], imaging["exam_date"].to_numpy()[positive], size)
