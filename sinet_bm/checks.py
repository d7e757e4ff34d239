"""The data contract's checks, as findings rather than exceptions.

Every problem becomes one row of a findings frame (see `sinet_bm.findings`), so that a data
manager sees all of them after one run. Per-column checks live in the pandera schemas in
`schemas/`; checks between columns and across tables are declared in `CROSS_CHECKS` and run
as vectorised masks over the typed frames. Messages are built only for the failing rows, so
a clean registry export costs no string work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from sinet_bm.contract import (
    CHILD_TABLES,
    SCHEMA_DIR,
    Definitions,
    categories,
    derive_grade,
    first_positive_dates,
)
from sinet_bm.findings import Cells, cell_findings, concat_findings, findings_frame, no_findings

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


@dataclass(frozen=True)
class Distinct:
    """A column as its distinct typed values and, per row, the position of its value among
    them (-1: empty). A check judges each distinct value once and its rows take the verdict,
    so that a million rows with a few thousand distinct dates cost a few thousand checks.

    With `dtype` (categories and text) the values are unique and non-null, and the rows are
    a categorical of them; otherwise they are one typed value per distinct exported text
    (values may repeat or be null)."""

    values: pd.Series
    codes: np.ndarray
    mistyped: np.ndarray  # per value: its text is filled but not of the column's type
    dtype: pd.CategoricalDtype | None = None

    def rows(self, verdict: np.ndarray, empty: bool = False) -> np.ndarray | None:
        """Per row, the verdict on its value (`empty` for rows without one); None when it
        holds for no value, so that a clean column costs no pass over its rows."""
        verdict = np.asarray(verdict, dtype=bool)
        if not verdict.any() and not empty:
            return None
        return np.append(verdict, empty)[self.codes]

    def null(self) -> np.ndarray | None:
        if self.dtype is not None:
            empty = self.codes < 0
            return empty if empty.any() else None
        return self.rows(self.values.isna().to_numpy())

    def unreported(self, failed: np.ndarray) -> np.ndarray:
        """Failing rows, without those already reported as not of the column's type."""
        mistyped = self.rows(self.mistyped) if failed.any() else None
        return failed if mistyped is None else failed & ~mistyped

    def column(self) -> pd.Series:
        """The typed column, one value per row (only categoricals have empty codes)."""
        if self.dtype is not None:
            return pd.Series(pd.Categorical.from_codes(self.codes, dtype=self.dtype))
        return pd.Series(self.values.array[self.codes])

    def key(self) -> np.ndarray:
        """Per row, a code that equal values share (-1: null), for uniqueness; codes follow
        the values' order, so that an export sorted by a key has sorted key codes."""
        if self.dtype is not None:
            return self.codes
        positions, _ = pd.factorize(self.values, sort=True)
        return np.append(positions, -1)[self.codes]


@dataclass
class TableRead:
    """One export as typed values, as exported text, and each contract column's distinct
    values (what its checks judge, and which of them are not of their type)."""

    typed: pd.DataFrame
    raw: Cells
    distinct: dict[str, Distinct]


def later_duplicates(keys: Sequence[np.ndarray]) -> np.ndarray:
    """Rows whose key (one code per row and column, nulls equal) occurred on an earlier row.

    Equal keys share their leading columns, so when the rows are sorted by the first
    columns of the key (exports are sorted by patient, then date), equal keys stand in one
    run of equal leading columns: only the rows of such runs are sorted (stably, by the
    whole key) to find them. An export in no order sorts all its rows."""
    later = np.zeros(len(keys[0]), dtype=bool)
    if len(later) < 2:
        return later
    packed = np.zeros(len(later), dtype=np.int64)
    boundaries = np.zeros(len(later) - 1, dtype=bool)  # between runs of sorted leading keys
    in_order, size = True, 1
    for key in keys:
        width = int(key.max(initial=-1)) + 2
        if size * width >= 2**62:
            _, inverse = np.unique(packed, return_inverse=True)
            packed, size = inverse.astype(np.int64), int(inverse.max(initial=0)) + 1
        packed *= width  # in place: a fresh array of 10^7 rows costs more than the arithmetic
        packed += key
        packed += 1
        size *= width
        in_order = in_order and bool((packed[1:] >= packed[:-1]).all())
        if in_order:
            boundaries = packed[1:] != packed[:-1]
    starts = np.r_[True, boundaries]
    rows = np.flatnonzero(~(starts & np.r_[boundaries, True]))
    order = rows[np.argsort(packed[rows], kind="stable")]
    later[order[1:]] = packed[order[1:]] == packed[order[:-1]]
    return later


def column_failures(distinct: Distinct, column: pa.Column) -> dict[str, np.ndarray]:
    """Failing rows per pandera check of a column, as pandera's failure cases name it: its
    checks skip nulls, a duplicate is a later row of a filled value."""
    failures = {}
    if not column.nullable:
        failures["not_nullable"] = distinct.null()
    if column.unique:
        key = distinct.key()
        failures["field_uniqueness"] = (key >= 0) & later_duplicates([key])
    filled = distinct.values.dropna()
    for check in column.checks:
        verdict = check(filled).check_output.reindex(distinct.values.index, fill_value=True)
        failures[check.error] = distinct.rows(~verdict.to_numpy(dtype=bool))
    return {check: failed for check, failed in failures.items() if failed is not None}


def check_columns(read: TableRead, schema: pa.DataFrameSchema, file: str) -> pd.DataFrame:
    """The contract's per-column checks (the pandera schema: columns, required, categories,
    ranges, patterns, uniqueness) with pandera's verdicts, judged on distinct values: one
    finding per cell, mistyped cells reported once, a duplicate reported on its later line."""
    raw = read.raw
    parts = [header_findings(list(raw.columns), schema, file)]
    failures = {
        (name, check): failed
        for name, distinct in read.distinct.items()
        for check, failed in column_failures(distinct, schema.columns[name]).items()
    }
    for (name, check), failed in sorted(failures.items()):
        contract_name, before, after = describe_check(check, name)
        parts.append(
            cell_findings(
                raw,
                read.distinct[name].unreported(failed),
                file,
                name,
                contract_name,
                lambda rows, c=name, b=before, a=after: b + raw.text(c, rows) + a,
            )
        )
    key = list(schema.unique or ())
    if key and set(key).issubset(read.distinct):
        parts.append(duplicate_key_findings(read, key, file))
    return concat_findings(parts)


def header_findings(names: Sequence[str], schema: pa.DataFrameSchema, file: str) -> pd.DataFrame:
    unknown = [name for name in names if name not in schema.columns]
    missing = [name for name in schema.columns if name not in names]
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


def duplicate_key_findings(read: TableRead, key: list[str], file: str) -> pd.DataFrame:
    """Later rows of a repeated key (nulls equal), when some repeated key has a filled cell
    (pandera leaves out keys that are all empty)."""
    keys = [read.distinct[name].key() for name in key]
    later = later_duplicates(keys)
    if not (later & np.logical_or.reduce([k >= 0 for k in keys])).any():
        return no_findings()
    raw = read.raw

    def text(rows: np.ndarray) -> pd.Series:
        return pd.concat([raw.text(name, rows) for name in key], axis=1).agg(" / ".join, axis=1)

    def message(rows: np.ndarray) -> pd.Series:
        return "(" + ", ".join(key) + ") = (" + text(rows) + ") occurs more than once"

    found = cell_findings(raw, later, file, key[0], "unique", message)
    found["column"] = ", ".join(key)
    if len(found):
        found["value"] = text(np.flatnonzero(later)).to_numpy()
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


NAT = np.datetime64("NaT", "ns")


def first_rows(codes: np.ndarray, size: int) -> np.ndarray:
    """Per code below `size`, the first row that holds it (-1: none)."""
    first = np.full(size, -1, dtype=np.int64)
    filled = np.flatnonzero(codes >= 0)
    values, rows = np.unique(codes[filled], return_index=True)
    first[values] = filled[rows]
    return first


def with_patient_dates(child: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """The child rows with their patient's dates; `_known` marks ids found in patients.
    Patient ids are categoricals of one shared set of categories, so that a join is one
    take by code of per-patient values (the last: for rows without an id)."""
    size = len(child["patient_id"].cat.categories)
    first = first_rows(patients["patient_id"].cat.codes.to_numpy(), size)
    known = first >= 0
    joined = {name: child[name] for name in child.columns}
    for name in ("diagnosis_date", "last_followup_date"):
        dates = patients[name].to_numpy(dtype="datetime64[ns]")[np.maximum(first, 0)]
        joined[name] = per_row(child, np.where(known, dates, NAT), NAT)
    joined["_known"] = per_row(child, known, False)
    return pd.DataFrame(joined, copy=False)


def with_first_positive(events: pd.DataFrame, first_positive: np.ndarray | None) -> pd.DataFrame:
    """The events with their patient's first positive exam (`_has_imaging`: whether there
    is an imaging table to find it in)."""
    size = len(events["patient_id"].cat.categories)
    first = first_positive if first_positive is not None else np.full(size, NAT)
    return events.assign(
        _has_imaging=first_positive is not None, _first_positive=per_row(events, first, NAT)
    )


def per_row(child: pd.DataFrame, values: np.ndarray, empty: Any) -> pd.Series:
    """Per child row, the value of its patient code (`empty` for a row without an id)."""
    codes = child["patient_id"].cat.codes.to_numpy()
    return pd.Series(np.append(values, empty)[codes], index=child.index)


def run_cross_checks(
    frame: pd.DataFrame, read: TableRead, table: str, file: str, definitions: Definitions
) -> pd.DataFrame:
    """A cell already reported as not of its type is not judged again."""
    parts = []
    for cross in CROSS_CHECKS:
        if cross.table != table:
            continue
        failed = cross.failed(frame, definitions).to_numpy(dtype=bool, na_value=False)
        if cross.column in read.distinct:
            failed = read.distinct[cross.column].unreported(failed)
        parts.append(
            cell_findings(
                read.raw,
                failed,
                file,
                cross.column,
                cross.check,
                lambda rows, cross=cross: cross.message(frame.iloc[rows], definitions),
                cross.severity,
            )
        )
    return concat_findings(parts)


def check_across(
    reads: Mapping[str, TableRead],
    schemas: Mapping[str, pa.DataFrameSchema],
    files: Mapping[str, str],
    definitions: Definitions,
) -> pd.DataFrame:
    """Cross-column and cross-table rules, on the tables whose columns are all there."""
    complete = {
        name: read
        for name, read in reads.items()
        if set(schemas[name].columns).issubset(read.typed.columns)
    }
    if "patients" not in complete:
        return no_findings()
    patients = complete["patients"]
    parts = [run_cross_checks(patients.typed, patients, "patients", files["patients"], definitions)]
    first_positive = None
    if "imaging" in complete:
        imaging = complete["imaging"].typed
        ids = imaging["patient_id"].cat
        first_positive = first_positive_dates(imaging, ids.codes.to_numpy(), len(ids.categories))
    for name in CHILD_TABLES:
        if name not in complete:
            continue
        read = complete[name]
        frame = with_patient_dates(read.typed, patients.typed)
        if name == "skeletal_events":
            frame = with_first_positive(frame, first_positive)
        parts.append(run_cross_checks(frame, read, name, files[name], definitions))
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
