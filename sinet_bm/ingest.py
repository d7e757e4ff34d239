"""Read the four raw exports, check them against the data contract, keep typed tables.

Every problem becomes one row of a findings frame (`FINDING_COLUMNS`) instead of an
exception, so that a data manager sees all of them after one run. Per-column rules live in
the pandera schemas in `schemas/`; rules between columns and across tables live here, as
vectorised checks over the typed frames.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

TABLES = ("patients", "imaging", "therapies", "skeletal_events")
FINDING_COLUMNS = ["severity", "file", "line", "column", "check", "value", "message"]
KEYS = {
    "imaging": ["patient_id", "exam_date", "modality"],
    "skeletal_events": ["patient_id", "event_date", "event_type"],
}
CHILD_TABLES = ("imaging", "therapies", "skeletal_events")
SYNTHETIC_MARKER = "SYNTHETIC.txt"


@dataclass(frozen=True)
class ExportFormat:
    """How a centre's export deviates from the canonical dialect; declared, never guessed."""

    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    ignore_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)


def format_from_config(config: Mapping[str, Any]) -> ExportFormat:
    raw_format = config.get("raw_format") or {}
    return ExportFormat(
        delimiter=raw_format.get("delimiter", ","),
        decimal=raw_format.get("decimal", "."),
        encoding=raw_format.get("encoding", "utf-8"),
        date_format=raw_format.get("date_format", "%Y-%m-%d"),
        columns=config.get("columns") or {},
        values=config.get("values") or {},
        ignore_columns=config.get("ignore_columns") or {},
    )


@dataclass(frozen=True)
class Definitions:
    """The contract's section 2 constants that validation needs (all config values)."""

    data_cutoff: pd.Timestamp
    days_per_year: float
    exam_before_diagnosis_warning_days: int
    ki67_g1_below: float
    ki67_g2_max: float


def definitions_from_config(definitions: Mapping[str, Any]) -> Definitions:
    return Definitions(
        data_cutoff=pd.Timestamp(definitions["data_cutoff"]),
        days_per_year=float(definitions["days_per_year"]),
        exam_before_diagnosis_warning_days=int(definitions["exam_before_diagnosis_warning_days"]),
        ki67_g1_below=float(definitions["ki67_g1_below"]),
        ki67_g2_max=float(definitions["ki67_g2_max"]),
    )


@dataclass
class Validation:
    """Typed tables (only meaningful when there are no errors) and every finding."""

    tables: dict[str, pd.DataFrame]
    findings: pd.DataFrame
    rows: dict[str, int]
    paths: dict[str, Path]

    @property
    def has_errors(self) -> bool:
        return bool((self.findings["severity"] == "error").any())


# ---------------------------------------------------------------------------------------
# schemas


def load_schema(schema_dir: Path, table: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema.from_yaml(Path(schema_dir, f"{table}.yaml").read_text())


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


def categories(column: pa.Column) -> list[str]:
    return next(
        list(check.statistics["allowed_values"]) for check in column.checks if check.name == "isin"
    )


# ---------------------------------------------------------------------------------------
# findings


def findings_frame(
    file: str,
    check: str,
    message: pd.Series | str,
    *,
    severity: str = "error",
    line: pd.Series | None = None,
    column: str = "",
    value: pd.Series | str = "",
) -> pd.DataFrame:
    """One finding per element of `line` (or one about the whole file when line is None)."""
    index = line.index if line is not None else pd.RangeIndex(1)
    frame = pd.DataFrame(
        {
            "severity": severity,
            "file": file,
            "line": line.astype("Int64") if line is not None else pd.NA,
            "column": column,
            "check": check,
            "value": value,
            "message": message,
        },
        index=index,
    )
    frame["line"] = frame["line"].astype("Int64")
    return frame.reset_index(drop=True)


def no_findings() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in FINDING_COLUMNS})
    frame["line"] = frame["line"].astype("Int64")
    return frame


def concat_findings(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else no_findings()


def neutralise(values: pd.Series) -> pd.Series:
    """Prefix values that a spreadsheet would run as a formula (CSV injection)."""
    text = values.fillna("").astype(str)
    dangerous = text.str.match(r"^[=+\-@\t\r]")
    return text.where(~dangerous, "'" + text)


def write_issues(findings: pd.DataFrame, path: Path) -> None:
    out = findings.copy()
    out["value"] = neutralise(out["value"])
    order = {"error": 0, "warning": 1}
    out = out.assign(_severity=out["severity"].map(order)).sort_values(
        ["file", "line", "column", "check", "_severity"], kind="stable", na_position="first"
    )
    out[FINDING_COLUMNS].to_csv(path, index=False, lineterminator="\n")


# ---------------------------------------------------------------------------------------
# reading


def find_exports(raw_dir: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    """The one file per table in raw_dir; other files in the folder are not ours to judge."""
    found: dict[str, Path] = {}
    problems = []
    for table in TABLES:
        candidates = [Path(raw_dir, f"{table}.{ext}") for ext in ("csv", "xlsx")]
        present = [path for path in candidates if path.is_file()]
        if len(present) > 1:
            problems.append(
                findings_frame(
                    present[0].name,
                    "duplicate_file",
                    f"{table} is present both as {present[0].name} and {present[1].name}; "
                    "keep one of them",
                )
            )
        elif not present:
            problems.append(
                findings_frame(
                    f"{table}.csv",
                    "file_missing",
                    f"no {table}.csv or {table}.xlsx in {raw_dir}",
                )
            )
        else:
            found[table] = present[0]
    return found, concat_findings(problems)


def read_text(path: Path, fmt: ExportFormat) -> tuple[str | None, pd.DataFrame]:
    encoding = "utf-8-sig" if codecs.lookup(fmt.encoding).name == "utf-8" else fmt.encoding
    try:
        return path.read_bytes().decode(encoding), no_findings()
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        return None, findings_frame(
            path.name,
            "encoding",
            f"the file is not valid {fmt.encoding} text (byte {error.start}, line {line}); "
            "set raw_format.encoding to the export's encoding (e.g. cp1252)",
        )


def read_csv(path: Path, fmt: ExportFormat) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Every cell as stripped text; empty string = missing. Types come later, cell by cell."""
    text, problems = read_text(path, fmt)
    if text is None:
        return None, problems
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=fmt.delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            quoting=csv.QUOTE_MINIMAL,
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError:
        return None, findings_frame(path.name, "empty_file", "the file is empty (no header line)")
    except pd.errors.ParserError as error:
        return None, findings_frame(
            path.name, "unreadable", f"the file cannot be read as CSV: {error}"
        )
    raw.columns = [str(name).strip() for name in raw.columns]
    return raw.apply(lambda column: column.str.strip()), no_findings()


def rename_columns(raw: pd.DataFrame, table: str, fmt: ExportFormat) -> pd.DataFrame:
    ignored = set(fmt.ignore_columns.get(table, []))
    kept = raw[[name for name in raw.columns if name not in ignored]]
    return kept.rename(columns=dict(fmt.columns.get(table, {})))


# ---------------------------------------------------------------------------------------
# parsing cells


def parse_column(cells: pd.Series, kind: str, fmt: ExportFormat) -> tuple[pd.Series, pd.Series]:
    """Typed values and a mask of cells that are filled but not of the column's type."""
    filled = cells != ""
    if kind == "date":
        parsed = pd.to_datetime(cells.where(filled), format=fmt.date_format, errors="coerce")
        return parsed.astype("datetime64[ns]"), filled & parsed.isna()
    if kind == "number":
        text = cells.str.replace(fmt.decimal, ".", regex=False) if fmt.decimal != "." else cells
        parsed = pd.to_numeric(text.where(filled), errors="coerce").astype("float64")
        return parsed, filled & parsed.isna()
    if kind == "boolean":
        lowered = cells.str.lower()
        parsed = lowered.map({"true": True, "false": False}).astype("boolean")
        return parsed, filled & parsed.isna()
    return cells.where(filled, None).astype(object), pd.Series(False, index=cells.index)


TYPE_HINTS = {
    "date": "a date",
    "number": "a number",
    "boolean": "true or false",
}


def parse_table(
    raw: pd.DataFrame, table: str, schema: pa.DataFrameSchema, fmt: ExportFormat, file: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Typed frame, type findings, and the mask of cells already reported as mistyped."""
    typed = {}
    problems = []
    mistyped = pd.DataFrame(False, index=raw.index, columns=raw.columns)
    mappings = fmt.values.get(table, {})
    for name in raw.columns:
        cells = raw[name]
        if name in mappings:
            cells = cells.replace({str(k): str(v) for k, v in mappings[name].items()})
        if name not in schema.columns:
            typed[name] = cells
            continue
        kind = column_kind(schema.columns[name])
        typed[name], bad = parse_column(cells, kind, fmt)
        mistyped[name] = bad
        if bad.any():
            expected = TYPE_HINTS[kind]
            if kind == "date":
                expected += f" in the format {fmt.date_format}"
            problems.append(
                findings_frame(
                    file,
                    "type",
                    name + " '" + cells[bad] + "' is not " + expected,
                    line=pd.Series(cells.index[bad] + 2, index=cells.index[bad]),
                    column=name,
                    value=cells[bad],
                )
            )
    return pd.DataFrame(typed, index=raw.index), concat_findings(problems), mistyped


# ---------------------------------------------------------------------------------------
# per-column rules (pandera)


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
        return "unique", f"{column} '", "' occurs more than once"
    return check, f"{column} '", f"' fails {check}"


def check_columns(
    typed: pd.DataFrame, schema: pa.DataFrameSchema, table: str, file: str, mistyped: pd.DataFrame
) -> pd.DataFrame:
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return pandera_findings(errors.failure_cases, typed, table, file, mistyped)
    return no_findings()


def pandera_findings(
    cases: pd.DataFrame, typed: pd.DataFrame, table: str, file: str, mistyped: pd.DataFrame
) -> pd.DataFrame:
    """Pandera's failure cases as findings: one per cell, mistyped cells reported once."""
    parts = [whole_file_findings(cases, file)]
    cells = cases[cases["index"].notna() & (cases["check"] != "multiple_fields_uniqueness")]
    for (column, check), group in cells.groupby(["column", "check"], sort=True):
        rows = group["index"].astype(int).to_numpy()
        keep = ~mistyped[column].to_numpy()[rows]
        if check == "field_uniqueness":
            keep &= typed[column].duplicated(keep="first").to_numpy()[rows]
        group = group[keep]
        name, before, after = describe_check(check, column)
        values = group["failure_case"].map(format_value)
        parts.append(
            findings_frame(
                file,
                name,
                before + values + after,
                line=group["index"].astype(int) + 2,
                column=column,
                value=values,
            )
        )
    if (cases["check"] == "multiple_fields_uniqueness").any():
        parts.append(duplicate_key_findings(typed, table, file))
    return concat_findings(parts)


def whole_file_findings(cases: pd.DataFrame, file: str) -> pd.DataFrame:
    unknown = cases.loc[cases["check"] == "column_in_schema", "failure_case"].astype(str)
    missing = cases.loc[cases["check"] == "column_in_dataframe", "failure_case"].astype(str)
    return concat_findings(
        [
            findings_frame(
                file,
                "unknown_column",
                f"column '{name}' is not in the data contract; rename it (columns:) or list it "
                "under ignore_columns: in the config",
                column=name,
                value=name,
            )
            for name in unknown
        ]
        + [
            findings_frame(
                file,
                "missing_column",
                f"column {name} is missing from the header (line 1)",
                column=name,
            )
            for name in missing
        ]
    )


def duplicate_key_findings(typed: pd.DataFrame, table: str, file: str) -> pd.DataFrame:
    key = KEYS[table]
    later = typed.duplicated(subset=key, keep="first")
    text = typed.loc[later, key].astype(str).agg(" / ".join, axis=1)
    return findings_frame(
        file,
        "unique",
        "(" + ", ".join(key) + ") = (" + text + ") occurs more than once",
        line=pd.Series(typed.index[later] + 2, index=typed.index[later]),
        column=", ".join(key),
        value=text,
    )


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------
# rules between columns and across tables


def rule_findings(
    table: pd.DataFrame,
    failed: pd.Series,
    file: str,
    column: str,
    check: str,
    message: pd.Series,
    severity: str = "error",
) -> pd.DataFrame:
    failed = failed.fillna(False).astype(bool)
    if not failed.any():
        return no_findings()
    values = table.loc[failed, column].map(format_value)
    return findings_frame(
        file,
        check,
        message[failed],
        severity=severity,
        line=pd.Series(table.index[failed] + 2, index=table.index[failed]),
        column=column,
        value=values,
    )


def iso(dates: pd.Series) -> pd.Series:
    return dates.dt.strftime("%Y-%m-%d").fillna("(empty)")


def check_patients(patients: pd.DataFrame, file: str, rules: Definitions) -> pd.DataFrame:
    birth, diagnosis = patients["birth_date"], patients["diagnosis_date"]
    followup = patients["last_followup_date"]
    age = (diagnosis - birth).dt.days / rules.days_per_year
    grade_from_ki67 = derive_grade(patients["ki67_percent"], rules)
    contradicts = (
        patients["grade"].notna() & grade_from_ki67.notna() & (patients["grade"] != grade_from_ki67)
    )
    cutoff = rules.data_cutoff.strftime("%Y-%m-%d")
    return concat_findings(
        [
            rule_findings(
                patients,
                birth >= diagnosis,
                file,
                "birth_date",
                "date_order",
                "birth_date " + iso(birth) + " is not before diagnosis_date " + iso(diagnosis),
            ),
            rule_findings(
                patients,
                (birth < diagnosis) & (age > 120),
                file,
                "birth_date",
                "age_range",
                "age at diagnosis " + age.round(1).astype(str) + " years is more than 120",
            ),
            rule_findings(
                patients,
                followup < diagnosis,
                file,
                "last_followup_date",
                "date_order",
                "diagnosis_date "
                + iso(diagnosis)
                + " is after last_followup_date "
                + iso(followup),
            ),
            rule_findings(
                patients,
                followup > rules.data_cutoff,
                file,
                "last_followup_date",
                "after_cutoff",
                "last_followup_date " + iso(followup) + f" is after the data cutoff {cutoff}",
            ),
            rule_findings(
                patients,
                contradicts,
                file,
                "grade",
                "grade_ki67",
                "grade "
                + patients["grade"].astype(str)
                + " contradicts Ki-67 "
                + patients["ki67_percent"].map(format_value)
                + "% (→ "
                + grade_from_ki67.astype(str)
                + "); the given grade is used",
                severity="warning",
            ),
        ]
    )


def derive_grade(ki67: pd.Series, rules: Definitions | Any) -> pd.Series:
    """WHO 2019 grade from Ki-67: below g1 → G1, up to g2_max → G2, above → G3."""
    grade = np.select(
        [ki67 < rules.ki67_g1_below, ki67 <= rules.ki67_g2_max, ki67 > rules.ki67_g2_max],
        ["G1", "G2", "G3"],
        default="",
    )
    return pd.Series(grade, index=ki67.index).replace("", None)


def patient_dates(patients: pd.DataFrame, child: pd.DataFrame) -> pd.DataFrame:
    """Each child row's patient dates (NaT where the patient is unknown)."""
    known = patients.dropna(subset=["patient_id"]).drop_duplicates("patient_id")
    positions = pd.Index(known["patient_id"]).get_indexer(child["patient_id"])
    columns = ["diagnosis_date", "last_followup_date"]
    values = known[columns].reset_index(drop=True).reindex(positions)
    values.index = child.index
    values["known"] = positions >= 0
    return values


def check_child(
    name: str, child: pd.DataFrame, patients: pd.DataFrame, file: str, rules: Definitions
) -> pd.DataFrame:
    dates = patient_dates(patients, child)
    unknown = child["patient_id"].notna() & ~dates["known"]
    followup, diagnosis = dates["last_followup_date"], dates["diagnosis_date"]
    parts = [
        rule_findings(
            child,
            unknown,
            file,
            "patient_id",
            "foreign_key",
            "patient_id '" + child["patient_id"].astype(str) + "' is not in patients",
        )
    ]
    date_column = {
        "imaging": "exam_date",
        "therapies": "start_date",
        "skeletal_events": "event_date",
    }[name]
    when = child[date_column]
    parts.append(
        rule_findings(
            child,
            when > followup,
            file,
            date_column,
            "date_order",
            date_column + " " + iso(when) + " is after last_followup_date " + iso(followup),
        )
    )
    if name == "imaging":
        parts += check_imaging(child, diagnosis, file, rules)
    elif name == "therapies":
        end = child["end_date"]
        parts += [
            rule_findings(
                child,
                end < child["start_date"],
                file,
                "end_date",
                "date_order",
                "end_date " + iso(end) + " is before start_date " + iso(child["start_date"]),
            ),
            rule_findings(
                child,
                end > followup,
                file,
                "end_date",
                "date_order",
                "end_date " + iso(end) + " is after last_followup_date " + iso(followup),
            ),
        ]
    else:
        parts.append(
            rule_findings(
                child,
                when < diagnosis,
                file,
                "event_date",
                "date_order",
                "event_date " + iso(when) + " is before diagnosis_date " + iso(diagnosis),
            )
        )
    return concat_findings(parts)


def check_imaging(
    imaging: pd.DataFrame, diagnosis: pd.Series, file: str, rules: Definitions
) -> list[pd.DataFrame]:
    pet = imaging["modality"] == "sstr_pet_ct"
    uptake, morphologic = imaging["bone_sstr_uptake"], imaging["bone_morphologic"]
    lesion = imaging["lesion_type"]
    early = imaging["exam_date"] < diagnosis - pd.Timedelta(
        days=rules.exam_before_diagnosis_warning_days
    )
    modality = imaging["modality"].astype(str)
    return [
        rule_findings(
            imaging,
            pet & uptake.isna(),
            file,
            "bone_sstr_uptake",
            "required",
            pd.Series("bone_sstr_uptake is required for sstr_pet_ct", index=imaging.index),
        ),
        rule_findings(
            imaging,
            imaging["modality"].isin(["ct", "mri"]) & uptake.notna(),
            file,
            "bone_sstr_uptake",
            "modality_rule",
            "bone_sstr_uptake must be empty for " + modality + " (SSTR uptake is read only on "
            "sstr_pet_ct)",
        ),
        rule_findings(
            imaging,
            morphologic.eq(True) & lesion.isna(),
            file,
            "lesion_type",
            "required",
            pd.Series("lesion_type is required when bone_morphologic is true", index=imaging.index),
        ),
        rule_findings(
            imaging,
            morphologic.eq(False) & lesion.notna(),
            file,
            "lesion_type",
            "lesion_type_rule",
            "lesion_type '" + lesion.astype(str) + "' must be empty when bone_morphologic is false",
        ),
        rule_findings(
            imaging,
            early,
            file,
            "exam_date",
            "exam_before_diagnosis",
            "exam_date "
            + iso(imaging["exam_date"])
            + " is more than "
            + str(rules.exam_before_diagnosis_warning_days)
            + " days before diagnosis_date "
            + iso(diagnosis),
            severity="warning",
        ),
    ]


def first_positive_exam(imaging: pd.DataFrame) -> pd.Series:
    """Date of each patient's first exam with bone uptake or a morphologic bone lesion."""
    positive = imaging["bone_sstr_uptake"].fillna(False) | imaging["bone_morphologic"].fillna(False)
    return imaging.loc[positive.astype(bool)].groupby("patient_id")["exam_date"].min()


def check_sre_timing(events: pd.DataFrame, imaging: pd.DataFrame, file: str) -> pd.DataFrame:
    """SREs before any bone metastasis is seen cannot be BM complications: warn, leave out."""
    first = events["patient_id"].map(first_positive_exam(imaging))
    never = first.isna()
    before = events["event_date"] < first
    return concat_findings(
        [
            rule_findings(
                events,
                never,
                file,
                "event_date",
                "sre_without_bm",
                "skeletal event of a patient who never has positive bone imaging; left out of "
                "the analysis",
                severity="warning",
            ),
            rule_findings(
                events,
                before,
                file,
                "event_date",
                "sre_before_bm",
                "event_date " + iso(events["event_date"]) + " is before the first positive bone "
                "imaging " + iso(first) + "; left out of the analysis",
                severity="warning",
            ),
        ]
    )


# ---------------------------------------------------------------------------------------
# the whole export


def read_table(
    table: str, path: Path, schema: pa.DataFrameSchema, fmt: ExportFormat
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Typed table (None when the file itself is unusable) and its per-file findings."""
    raw, problems = read_csv(path, fmt)
    if raw is None:
        return None, problems
    if table == "patients" and raw.empty:
        return None, findings_frame(
            path.name, "empty_file", "patients has a header but no patient rows"
        )
    raw = rename_columns(raw, table, fmt)
    typed, type_problems, mistyped = parse_table(raw, table, schema, fmt, path.name)
    column_problems = check_columns(typed, schema, table, path.name, mistyped)
    return typed, concat_findings([type_problems, column_problems])


def empty_table(schema: pa.DataFrameSchema) -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype=str(column.dtype)) for name, column in schema.columns.items()}
    )


def validate_exports(
    paths: Mapping[str, Path],
    schema_dir: Path,
    fmt: ExportFormat,
    rules: Definitions,
    *,
    strict: bool = False,
) -> Validation:
    """Check everything that can be checked, in one pass, and return the typed tables."""
    schemas = {table: load_schema(schema_dir, table) for table in TABLES}
    tables: dict[str, pd.DataFrame] = {}
    parts = []
    for table, path in paths.items():
        typed, problems = read_table(table, path, schemas[table], fmt)
        parts.append(problems)
        if typed is not None:
            tables[table] = typed
    files = {table: path.name for table, path in paths.items()}
    parts.append(check_across(tables, schemas, files, rules))
    findings = concat_findings(parts)
    if strict:
        findings.loc[findings["severity"] == "warning", "severity"] = "error"
    rows = {table: len(frame) for table, frame in tables.items()}
    typed_tables = {
        table: finish_types(tables.get(table, empty_table(schemas[table])), schemas[table])
        for table in TABLES
    }
    return Validation(typed_tables, findings, rows, dict(paths))


def check_across(
    tables: Mapping[str, pd.DataFrame],
    schemas: Mapping[str, pa.DataFrameSchema],
    files: Mapping[str, str],
    rules: Definitions,
) -> pd.DataFrame:
    """Cross-column and cross-table rules, on the columns that the tables do have."""
    if "patients" not in tables:
        return no_findings()
    complete = {
        name: frame
        for name, frame in tables.items()
        if set(schemas[name].columns).issubset(frame.columns)
    }
    if "patients" not in complete:
        return no_findings()
    patients = complete["patients"]
    parts = [check_patients(patients, files["patients"], rules)]
    for name in CHILD_TABLES:
        if name in complete:
            parts.append(check_child(name, complete[name], patients, files[name], rules))
    if "skeletal_events" in complete and "imaging" in complete:
        parts.append(
            check_sre_timing(
                complete["skeletal_events"], complete["imaging"], files["skeletal_events"]
            )
        )
    return concat_findings(parts)


def finish_types(table: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Contract columns only, categories as pandas categoricals, ready for parquet."""
    out = table.reindex(columns=list(schema.columns)).reset_index(drop=True)
    for name, column in schema.columns.items():
        kind = column_kind(column)
        if kind == "category":
            out[name] = pd.Categorical(out[name], categories=categories(column))
        elif kind == "text":
            out[name] = out[name].astype("string")
        else:
            out[name] = out[name].astype(str(column.dtype))
    return out


def validate_folder(
    raw_dir: Path, schema_dir: Path, fmt: ExportFormat, rules: Definitions, *, strict: bool
) -> Validation:
    """Validate whatever of the four exports the folder holds; a missing one is a finding."""
    if not Path(raw_dir).is_dir():
        return Validation(
            {},
            findings_frame(str(raw_dir), "file_missing", f"raw_dir {raw_dir} is not a folder"),
            {},
            {},
        )
    paths, problems = find_exports(raw_dir)
    result = validate_exports(paths, schema_dir, fmt, rules, strict=strict)
    result.findings = concat_findings([problems, result.findings])
    return result


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_tables(tables: Mapping[str, pd.DataFrame], paths: Mapping[str, str]) -> None:
    for table in TABLES:
        tables[table].to_parquet(paths[table], index=False)


def count_findings(findings: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts by severity, and by file and check, for summaries."""
    by_check = findings.groupby(["severity", "file", "check"]).size()
    return {
        "by_severity": {s: int((findings["severity"] == s).sum()) for s in ("error", "warning")},
        "by_check": {" / ".join(key): int(n) for key, n in by_check.items()},
    }


def write_summary(result: Validation, raw_dir: Path, path: Path) -> None:
    """What was validated, for the report: file names, hashes, rows and finding counts."""
    summary = {
        "source": raw_dir.name,
        "synthetic": (raw_dir / SYNTHETIC_MARKER).is_file(),
        "files": {
            table: {"name": file.name, "sha256": sha256(file), "rows": result.rows.get(table, 0)}
            for table, file in sorted(result.paths.items())
        },
        "findings": count_findings(result.findings),
    }
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def terminal_summary(result: Validation, issues_path: str) -> str:
    counts = count_findings(result.findings)
    errors, warnings = counts["by_severity"]["error"], counts["by_severity"]["warning"]
    lines = [f"validation: {errors} error(s), {warnings} warning(s); all findings in {issues_path}"]
    lines += [f"  {n:6d}  {key}" for key, n in sorted(counts["by_check"].items())]
    if errors:
        lines.append(
            "validation failed: fix the errors above in the exports (or declare their "
            "format in the config) and run again; nothing was analysed."
        )
    return "\n".join(lines)
