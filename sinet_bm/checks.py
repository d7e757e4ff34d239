"""The data contract's checks, as findings rather than exceptions.

Every problem becomes one row of a findings frame (see `sinet_bm.findings`), so that a data
manager sees all of them after one run. Per-column checks live in the pandera schemas in
`schemas/`; checks between columns and across tables are declared in `CROSS_CHECKS` and run
as vectorised masks over the typed frames. Messages are built only for the failing rows, so
a clean registry export costs no string work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from sinet_bm.contract import (
    CHILD_TABLES,
    SCHEMA_DIR,
    Definitions,
    categories,
    derive_grade,
    first_positive_exam,
    unique_key,
)
from sinet_bm.findings import cell_findings, concat_findings, findings_frame, no_findings

# ---------------------------------------------------------------------------------------
# per-column checks (pandera)


def load_schema(table: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema.from_yaml((SCHEMA_DIR / f"{table}.yaml").read_text())


def column_kind(column: pa.Column) -> str:
    """Parsing rule of a contract column, read off its pandera dtype and checks."""
    dtype = str(column.dtype)
    if dtype.startswith("datetime64"):
        return "date"
    if dtype == "float64":
        return "number"
    if dtype == "boolean":
        return "boolean"
    if any(check.name == "isin" for check in column.checks):
        return "category"
    return "text"


def allowed_values(column: pa.Column) -> list[str]:
    return next(
        list(check.statistics["allowed_values"]) for check in column.checks if check.name == "isin"
    )


CHECK_NAMES = {"isin": "category", "in_range": "range", "str_matches": "pattern"}


def describe_check(check: str, column: str) -> tuple[str, str, str]:
    """Contract name of a pandera check, and the text around the value in its message."""
    if check == "not_nullable":
        return "required", f"{column} is required but empty", ""
    if check.startswith("isin("):
        return "category", f"{column} '", f"' is not one of {check[len('isin(') : -1]}"
    if check.startswith("in_range("):
        bounds = check[len("in_range(") : -1].replace(", ", " to ")
        return "range", f"{column} ", f" is outside {bounds}"
    if check.startswith("str_matches("):
        return (
            "pattern",
            f"{column} '",
            (
                "' is not a valid pseudonym (letters, digits, _ . -; at most 64 characters, "
                "starting with a letter or digit)"
            ),
        )
    if check == "field_uniqueness":
        return "unique", f"{column} '", "' occurs more than once (first on an earlier line)"
    return check, f"{column} '", f"' fails {check}"


def check_columns(
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    schema: pa.DataFrameSchema,
    table: str,
    file: str,
    mistyped: pd.DataFrame,
) -> pd.DataFrame:
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return pandera_findings(errors.failure_cases, typed, raw, table, file, mistyped)
    return no_findings()


def pandera_findings(
    cases: pd.DataFrame,
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    table: str,
    file: str,
    mistyped: pd.DataFrame,
) -> pd.DataFrame:
    """Pandera's failure cases as findings: one per cell, mistyped cells reported once,
    a duplicate reported on its later line."""
    parts = [header_findings(cases, file)]
    cells = cases[cases["index"].notna() & (cases["check"] != "multiple_fields_uniqueness")]
    for (column, check), group in cells.groupby(["column", "check"], sort=True):
        failed = typed.index.isin(group["index"].astype(int))
        failed &= ~mistyped[column].to_numpy()
        if check == "field_uniqueness":
            failed &= typed[column].duplicated(keep="first").to_numpy()
        name, before, after = describe_check(check, column)
        parts.append(
            cell_findings(
                raw,
                pd.Series(failed, index=typed.index),
                file,
                column,
                name,
                lambda rows, c=column, b=before, a=after: b + raw.loc[rows, c].astype(str) + a,
            )
        )
    if (cases["check"] == "multiple_fields_uniqueness").any():
        parts.append(duplicate_key_findings(typed, raw, table, file))
    return concat_findings(parts)


def header_findings(cases: pd.DataFrame, file: str) -> pd.DataFrame:
    unknown = cases.loc[cases["check"] == "column_in_schema", "failure_case"].astype(str)
    missing = cases.loc[cases["check"] == "column_in_dataframe", "failure_case"].astype(str)
    return concat_findings(
        [
            findings_frame(
                file,
                "unknown_column",
                f"column '{name}' is not in the data contract; map it to a contract name under "
                "columns: or list it under ignore_columns: in the config",
                column=name,
                value=name,
            )
            for name in unknown
        ]
        + [
            findings_frame(
                file,
                "missing_column",
                f"column {name} is missing from the header (line 1); if the export calls it "
                "otherwise, map it under columns: in the config",
                column=name,
            )
            for name in missing
        ]
    )


def duplicate_key_findings(
    typed: pd.DataFrame, raw: pd.DataFrame, table: str, file: str
) -> pd.DataFrame:
    key = list(unique_key(table))
    later = typed.duplicated(subset=key, keep="first")

    def message(rows: pd.Index) -> pd.Series:
        text = raw.loc[rows, key].astype(str).agg(" / ".join, axis=1)
        return "(" + ", ".join(key) + ") = (" + text + ") occurs more than once"

    found = cell_findings(raw, later, file, key[0], "unique", message)
    found["column"] = ", ".join(key)
    if len(found):
        found["value"] = (
            raw.loc[typed.index[later.to_numpy()], key]
            .astype(str)
            .agg(" / ".join, axis=1)
            .to_numpy()
        )
    return found


# ---------------------------------------------------------------------------------------
# checks between columns and across tables


def iso(dates: pd.Series) -> pd.Series:
    return pd.to_datetime(dates).dt.strftime("%Y-%m-%d").fillna("(empty)")


@dataclass(frozen=True)
class CrossCheck:
    """A check between columns or tables: failing rows, and what to tell the data manager."""

    table: str
    column: str
    check: str
    description: str
    failed: Callable[[pd.DataFrame, Definitions], pd.Series]
    message: Callable[[pd.DataFrame, Definitions], pd.Series]
    severity: str = "error"


def age_years(frame: pd.DataFrame, definitions: Definitions) -> pd.Series:
    return (frame["diagnosis_date"] - frame["birth_date"]).dt.days / definitions.days_per_year


def grade_contradicts(frame: pd.DataFrame, definitions: Definitions) -> pd.Series:
    """Only valid grades are compared; an invalid one is already a category error."""
    derived = derive_grade(frame["ki67_percent"], definitions)
    valid = frame["grade"].isin(categories("patients", "grade"))
    return valid & derived.notna() & (frame["grade"] != derived)


def before(frame: pd.DataFrame, later: str, earlier: str) -> pd.Series:
    return frame[later] < frame[earlier]


def order_message(first: str, relation: str, second: str):
    def message(frame: pd.DataFrame, definitions: Definitions) -> pd.Series:
        return first + " " + iso(frame[first]) + f" is {relation} {second} " + iso(frame[second])

    return message


PATIENT_CHECKS = [
    CrossCheck(
        "patients",
        "birth_date",
        "date_order",
        "birth_date is before diagnosis_date",
        lambda f, d: f["birth_date"] >= f["diagnosis_date"],
        order_message("birth_date", "not before", "diagnosis_date"),
    ),
    CrossCheck(
        "patients",
        "birth_date",
        "age_range",
        "age at diagnosis is at most 120 years",
        lambda f, d: (f["birth_date"] < f["diagnosis_date"]) & (age_years(f, d) > 120),
        lambda f, d: (
            "age at diagnosis " + age_years(f, d).round(1).astype(str) + " years is more than 120"
        ),
    ),
    CrossCheck(
        "patients",
        "last_followup_date",
        "date_order",
        "last_followup_date is on or after diagnosis_date",
        lambda f, d: before(f, "last_followup_date", "diagnosis_date"),
        order_message("diagnosis_date", "after", "last_followup_date"),
    ),
    CrossCheck(
        "patients",
        "last_followup_date",
        "after_cutoff",
        "last_followup_date is on or before the data cutoff",
        lambda f, d: f["last_followup_date"] > d.data_cutoff,
        lambda f, d: (
            "last_followup_date "
            + iso(f["last_followup_date"])
            + " is after the data cutoff "
            + d.data_cutoff.strftime("%Y-%m-%d")
        ),
    ),
    CrossCheck(
        "patients",
        "grade",
        "grade_ki67",
        "a given grade agrees with Ki-67",
        grade_contradicts,
        lambda f, d: (
            "grade "
            + f["grade"].astype(str)
            + " contradicts Ki-67 "
            + f["ki67_percent"].astype(str)
            + "% (→ "
            + derive_grade(f["ki67_percent"], d)
            + "); the given grade is used"
        ),
        severity="warning",
    ),
]


def foreign_key(table: str) -> CrossCheck:
    return CrossCheck(
        table,
        "patient_id",
        "foreign_key",
        "patient_id exists in patients",
        lambda f, d: f["patient_id"].notna() & ~f["_known"],
        lambda f, d: "patient_id '" + f["patient_id"].astype(str) + "' is not in patients",
    )


def not_after_followup(table: str, column: str) -> CrossCheck:
    return CrossCheck(
        table,
        column,
        "date_order",
        f"{column} is on or before last_followup_date",
        lambda f, d: f[column] > f["last_followup_date"],
        order_message(column, "after", "last_followup_date"),
    )


def not_before(table: str, column: str, earlier: str) -> CrossCheck:
    return CrossCheck(
        table,
        column,
        "date_order",
        f"{column} is on or after {earlier}",
        lambda f, d: before(f, column, earlier),
        order_message(column, "before", earlier),
    )


CHILD_CHECKS = [
    foreign_key("imaging"),
    not_after_followup("imaging", "exam_date"),
    CrossCheck(
        "imaging",
        "exam_date",
        "exam_before_diagnosis",
        "exam_date is not long before diagnosis_date",
        lambda f, d: (
            f["exam_date"]
            < f["diagnosis_date"] - pd.Timedelta(days=d.exam_before_diagnosis_warning_days)
        ),
        lambda f, d: (
            "exam_date "
            + iso(f["exam_date"])
            + " is more than "
            + str(d.exam_before_diagnosis_warning_days)
            + " days before diagnosis_date "
            + iso(f["diagnosis_date"])
        ),
        severity="warning",
    ),
    CrossCheck(
        "imaging",
        "bone_sstr_uptake",
        "required",
        "bone_sstr_uptake is given for sstr_pet_ct",
        lambda f, d: (f["modality"] == "sstr_pet_ct") & f["bone_sstr_uptake"].isna(),
        lambda f, d: pd.Series("bone_sstr_uptake is required for sstr_pet_ct", index=f.index),
    ),
    CrossCheck(
        "imaging",
        "bone_sstr_uptake",
        "modality_rule",
        "bone_sstr_uptake is empty for ct, mri",
        lambda f, d: f["modality"].isin(["ct", "mri"]) & f["bone_sstr_uptake"].notna(),
        lambda f, d: (
            "bone_sstr_uptake must be empty for "
            + f["modality"].astype(str)
            + " (SSTR uptake is read on sstr_pet_ct only)"
        ),
    ),
    CrossCheck(
        "imaging",
        "lesion_type",
        "required",
        "lesion_type is given when bone_morphologic",
        lambda f, d: f["bone_morphologic"].eq(True) & f["lesion_type"].isna(),
        lambda f, d: pd.Series(
            "lesion_type is required when bone_morphologic is true", index=f.index
        ),
    ),
    CrossCheck(
        "imaging",
        "lesion_type",
        "lesion_type_rule",
        "lesion_type is empty when bone_morphologic is false",
        lambda f, d: f["bone_morphologic"].eq(False) & f["lesion_type"].notna(),
        lambda f, d: (
            "lesion_type '"
            + f["lesion_type"].astype(str)
            + "' must be empty when bone_morphologic is false"
        ),
    ),
    foreign_key("therapies"),
    not_after_followup("therapies", "start_date"),
    not_before("therapies", "end_date", "start_date"),
    not_after_followup("therapies", "end_date"),
    foreign_key("skeletal_events"),
    not_before("skeletal_events", "event_date", "diagnosis_date"),
    not_after_followup("skeletal_events", "event_date"),
    CrossCheck(
        "skeletal_events",
        "event_date",
        "sre_without_bm",
        "the patient has positive bone imaging (else: left out)",
        lambda f, d: f["_known"] & f["_has_imaging"] & f["_first_positive"].isna(),
        lambda f, d: pd.Series(
            "skeletal event of a patient who never has positive bone imaging; left out of "
            "the analysis",
            index=f.index,
        ),
        severity="warning",
    ),
    CrossCheck(
        "skeletal_events",
        "event_date",
        "sre_before_bm",
        "event_date is not before the first positive bone imaging (else: left out)",
        lambda f, d: f["event_date"] < f["_first_positive"],
        lambda f, d: (
            "event_date " + iso(f["event_date"]) + " is before the first positive "
            "bone imaging " + iso(f["_first_positive"]) + "; left out of the analysis"
        ),
        severity="warning",
    ),
]

CROSS_CHECKS = PATIENT_CHECKS + CHILD_CHECKS


def with_patient_dates(
    child: pd.DataFrame, patients: pd.DataFrame, first_positive: pd.Series | None
) -> pd.DataFrame:
    """The child rows with their patient's dates; `_known` marks ids found in patients."""
    known = patients.dropna(subset=["patient_id"]).drop_duplicates("patient_id")
    positions = pd.Index(known["patient_id"]).get_indexer(child["patient_id"])
    dates = known[["diagnosis_date", "last_followup_date"]].reset_index(drop=True)
    joined = child.copy()
    for name in dates.columns:
        values = dates[name].to_numpy()[np.maximum(positions, 0)]
        joined[name] = np.where(positions >= 0, values, np.datetime64("NaT"))
        joined[name] = joined[name].astype("datetime64[ns]")
    joined["_known"] = positions >= 0
    joined["_has_imaging"] = first_positive is not None
    if first_positive is not None:
        joined["_first_positive"] = child["patient_id"].map(first_positive)
    else:
        joined["_first_positive"] = pd.NaT
    return joined


def run_cross_checks(
    frame: pd.DataFrame,
    raw: pd.DataFrame,
    mistyped: pd.DataFrame,
    table: str,
    file: str,
    definitions: Definitions,
) -> pd.DataFrame:
    """A cell already reported as not of its type is not judged again."""
    parts = []
    for cross in CROSS_CHECKS:
        if cross.table != table:
            continue
        failed = cross.failed(frame, definitions).fillna(False).astype(bool)
        if cross.column in mistyped:
            failed &= ~mistyped[cross.column]
        parts.append(
            cell_findings(
                raw,
                failed,
                file,
                cross.column,
                cross.check,
                lambda rows, cross=cross: cross.message(frame.loc[rows], definitions),
                cross.severity,
            )
        )
    return concat_findings(parts)


def check_across(
    tables: Mapping[str, pd.DataFrame],
    raws: Mapping[str, pd.DataFrame],
    mistyped: Mapping[str, pd.DataFrame],
    schemas: Mapping[str, pa.DataFrameSchema],
    files: Mapping[str, str],
    definitions: Definitions,
) -> pd.DataFrame:
    """Cross-column and cross-table rules, on the tables whose columns are all there."""
    complete = {
        name: frame
        for name, frame in tables.items()
        if set(schemas[name].columns).issubset(frame.columns)
    }
    if "patients" not in complete:
        return no_findings()
    patients = complete["patients"]
    parts = [
        run_cross_checks(
            patients,
            raws["patients"],
            mistyped["patients"],
            "patients",
            files["patients"],
            definitions,
        )
    ]
    first_positive = first_positive_exam(complete["imaging"]) if "imaging" in complete else None
    for name in CHILD_TABLES:
        if name not in complete:
            continue
        positives = first_positive if name == "skeletal_events" else None
        frame = with_patient_dates(complete[name], patients, positives)
        parts.append(
            run_cross_checks(frame, raws[name], mistyped[name], name, files[name], definitions)
        )
    return concat_findings(parts)


# ---------------------------------------------------------------------------------------
# the catalogue of checks, for the findings page


def in_words(check: pa.Check) -> str:
    statistics = check.statistics
    if check.name == "isin":
        return "one of " + ", ".join(map(str, statistics["allowed_values"]))
    if check.name == "in_range":
        return f"from {statistics['min_value']} to {statistics['max_value']}"
    return f"matches {statistics['pattern']}"


def catalogue(schemas: Mapping[str, pa.DataFrameSchema]) -> pd.DataFrame:
    """Every check that validation runs, per file, in words."""
    rows = []
    for table, schema in schemas.items():
        rows.append((table, "", "columns", "error", "every contract column present, no unknown"))
        for name, column in schema.columns.items():
            kind = column_kind(column)
            if kind in ("date", "number", "boolean"):
                rows.append((table, name, "type", "error", f"is a {kind}"))
            if not column.nullable:
                rows.append((table, name, "required", "error", "is not empty"))
            for check in column.checks:
                rows.append((table, name, CHECK_NAMES[check.name], "error", in_words(check)))
            if column.unique:
                rows.append((table, name, "unique", "error", "occurs once"))
        if schema.unique:
            rows.append((table, ", ".join(schema.unique), "unique", "error", "key occurs once"))
    rows += [(r.table, r.column, r.check, r.severity, r.description) for r in CROSS_CHECKS]
    return pd.DataFrame(rows, columns=["table", "column", "check", "severity", "description"])
