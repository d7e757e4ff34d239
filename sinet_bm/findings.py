"""What validation found, in the two forms a data manager reads: `issues.csv` and a page.

Every problem is one row of a findings frame (`FINDING_COLUMNS`): the file, the line of the
source file (header = line 1), the column, the check, the offending value and a message.
All findings are collected in one pass, so that one run lists every problem of an export.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import pyarrow as arrow

FINDING_COLUMNS = ["severity", "file", "line", "column", "check", "value", "message"]
FIRST_DATA_LINE = 2  # line 1 is the header
TEMPLATES = Path(__file__).parent / "templates"
# Files this module reads: steps that use it rerun when one of them changes.
USES = ("sinet_bm/templates/validation.html", "sinet_bm/templates/page.css")


def findings_frame(
    file: str,
    check: str,
    message: pd.Series | str,
    *,
    severity: str = "error",
    line: pd.Series | int | None = None,
    column: str = "",
    value: pd.Series | str = "",
) -> pd.DataFrame:
    """One finding per element of `line`, or one about the whole file (line None or int)."""
    index = line.index if isinstance(line, pd.Series) else pd.RangeIndex(1)
    lines = line if isinstance(line, pd.Series) else pd.Series(line, index=index, dtype="Int64")
    frame = pd.DataFrame(
        {
            "severity": severity,
            "file": file,
            "line": lines.astype("Int64"),
            "column": column,
            "check": check,
            "value": value,
            "message": message,
        },
        index=index,
    )
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


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    order = {"error": 0, "warning": 1}
    return (
        findings.assign(_severity=findings["severity"].map(order))
        .sort_values(
            ["file", "line", "column", "check", "_severity"], kind="stable", na_position="first"
        )
        .drop(columns="_severity")
        .reset_index(drop=True)
    )


def write_issues(findings: pd.DataFrame, path: Path) -> None:
    out = sort_findings(findings)
    out["value"] = neutralise(out["value"])
    out["message"] = neutralise(out["message"])
    out[FINDING_COLUMNS].to_csv(path, index=False, lineterminator="\n")


@dataclass
class Cells:
    """An export's cells as exported text, dictionary-encoded: per column the codes of its
    rows into its distinct texts. Rows are positions; a cell's text, and the source line of
    a row, are looked up only when a finding quotes them (a clean export never needs its
    lines, which cost another pass over the file)."""

    columns: dict[str, tuple[np.ndarray, arrow.Array]]
    rows: int
    source_lines: Callable[[], np.ndarray]

    def __len__(self) -> int:
        return self.rows

    @cached_property
    def lines(self) -> np.ndarray:
        return self.source_lines()

    def texts(self, column: str) -> pd.Series:
        """The distinct texts of a column (what its codes point into)."""
        return pd.Series(self.columns[column][1].to_numpy(zero_copy_only=False), dtype=object)

    def text(self, column: str, rows: np.ndarray) -> pd.Series:
        codes, texts = self.columns[column]
        values = texts.take(arrow.array(codes[rows])).to_numpy(zero_copy_only=False)
        return pd.Series(values, index=rows, dtype=object)

    def line(self, rows: np.ndarray) -> pd.Series:
        return pd.Series(self.lines[rows], index=rows)


def cell_findings(
    raw: Cells,
    failed: pd.Series | np.ndarray,
    file: str,
    column: str,
    check: str,
    message: Callable[[np.ndarray], pd.Series] | str,
    severity: str = "error",
) -> pd.DataFrame:
    """Findings for the failing rows of one column; the value is the cell as exported."""
    rows = np.flatnonzero(np.asarray(failed, dtype=bool))
    if not len(rows):
        return no_findings()
    values = raw.text(column, rows) if column in raw.columns else pd.Series("", index=rows)
    text = message if isinstance(message, str) else message(rows)
    return findings_frame(
        file,
        check,
        text,
        severity=severity,
        line=raw.line(rows),
        column=column,
        value=values.fillna("").astype(str),
    )


# ---------------------------------------------------------------------------------------
# the readable page


FIX_HINTS = {
    "file_missing": "Export the table into raw_dir as <table>.csv or <table>.xlsx.",
    "duplicate_file": "Keep one file per table: remove the .csv or the .xlsx.",
    "empty_file": "Re-export the table; patients needs at least one row.",
    "file_type": "Export as CSV text, or use the .xlsx ending for Excel workbooks.",
    "unreadable": "Re-export the file; check the separator and quoting.",
    "encoding": "Declare the export's encoding under raw_format.encoding.",
    "delimiter": "Declare the separator under raw_format.delimiter.",
    "duplicate_column": "Give every column of the header a distinct name.",
    "field_count": "The line has more or fewer cells than the header; check quoting.",
    "sheet": "Name an existing sheet under raw_format.sheet.",
    "missing_column": "Add the column, or map the export's name to it under columns:.",
    "unknown_column": "Map the column to a contract name (columns:) or drop it (ignore_columns:).",
    "type": "Correct the cell, or declare the export's format (raw_format.decimal, date_format).",
    "required": "Fill in the cell; the contract needs it.",
    "category": "Use a contract category, or map the export's spelling under values:.",
    "range": "Correct the value; it is outside the contract's range.",
    "pattern": "Use pseudonyms of letters, digits, _ . - (no names or spaces).",
    "unique": "Remove or correct the duplicate; each key may occur once.",
    "foreign_key": "Add the patient to patients, or correct the patient_id.",
    "date_order": "Correct one of the two dates; their order is impossible.",
    "age_range": "Check birth_date; the age at diagnosis is implausible.",
    "after_cutoff": "Follow-up may not run past definitions.data_cutoff; cut it there.",
    "modality_rule": "Leave bone_sstr_uptake empty for ct and mri exams.",
    "lesion_type_rule": "Leave lesion_type empty when no lesion is visible morphologically.",
    "grade_ki67": "Check grade and Ki-67; the given grade is used.",
    "exam_before_diagnosis": "Check the exam date; it is long before diagnosis.",
    "sre_before_bm": "Check the event date or the imaging; the event is left out.",
    "sre_without_bm": "Check the imaging of this patient; the event is left out.",
}
EXAMPLES_PER_PROBLEM = 10


def findings_groups(findings: pd.DataFrame) -> list[dict[str, Any]]:
    """Findings grouped by file and check: counts, the first rows, and a fix hint."""
    groups = []
    for (file, check, severity), group in findings.groupby(
        ["file", "check", "severity"], sort=True
    ):
        groups.append(
            {
                "file": file,
                "check": check,
                "severity": severity,
                "count": len(group),
                "hint": FIX_HINTS.get(check, ""),
                "examples": group.head(EXAMPLES_PER_PROBLEM).to_dict("records"),
            }
        )
    return sorted(groups, key=lambda g: (g["severity"] != "error", g["file"], g["check"]))


def render_validation_page(
    findings: pd.DataFrame,
    checks: pd.DataFrame,
    rows: Mapping[str, int],
    source: str,
    synthetic: bool,
    centre: str = "",
) -> str:
    """The findings page; with several centres its title names the centre."""
    errors = int((findings["severity"] == "error").sum())
    warnings = int((findings["severity"] == "warning").sum())
    catalogue = checks.assign(rows=checks["table"].map(rows).fillna(0).astype(int))
    # Autoescaping on: values and file names from exports are shown as text.
    page = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    ).get_template("validation.html")
    return page.render(
        centre=centre,
        errors=errors,
        warnings=warnings,
        groups=findings_groups(findings),
        checks=catalogue.to_dict("records"),
        rows=dict(rows),
        source=source,
        synthetic=synthetic,
    )
