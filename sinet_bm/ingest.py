"""Read the four raw exports as declared in the config, and validate them in one pass.

Cells are read as text (pyarrow for CSV, openpyxl for .xlsx), so that a bad cell becomes a
finding with its line and value instead of a parser exception; types are then parsed
column by column. Dialects (separator, decimal comma, encoding, date format, sheet, column
names, category spellings) are declared in the config and never guessed; an undeclared one
gets a hint in the finding's message.

A column is held dictionary-encoded, as codes into its distinct texts: a registry export
has a million patients but only thousands of distinct dates and a handful of categories, so
trimming, declared spellings, parsing and the contract's checks run once per distinct text,
and a cell's text is looked up only when a finding quotes it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq

from sinet_bm.checks import (
    Distinct,
    TableRead,
    allowed_values,
    catalogue,
    check_across,
    check_columns,
    column_kind,
    load_schema,
)
from sinet_bm.contract import TABLES, Definitions
from sinet_bm.findings import FIRST_DATA_LINE, Cells, concat_findings, findings_frame, no_findings
from sinet_bm.provenance import sha256

SYNTHETIC_MARKER = "SYNTHETIC.txt"
ENCODINGS = {"utf-8": "utf-8-sig", "cp1252": "cp1252", "latin-1": "latin-1"}
SIGNATURES = {
    b"PK\x03\x04": "an Excel or zip file",
    b"%PDF": "a PDF file",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) file",
}
TEXT = arrow.dictionary(arrow.int32(), arrow.string())
# Bytes of CSV per parsed block: fewer, larger blocks have fewer dictionaries to unify.
BLOCK_SIZE = 4 << 20


@dataclass(frozen=True)
class ExportFormat:
    """How a centre's export deviates from the canonical dialect; declared, never guessed."""

    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"
    sheet: str | None = None
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    ignore_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)


def format_from_config(config: Mapping[str, Any]) -> ExportFormat:
    raw_format = config.get("raw_format") or {}
    return ExportFormat(
        delimiter=raw_format.get("delimiter", ","),
        decimal=raw_format.get("decimal", "."),
        encoding=raw_format.get("encoding", "utf-8"),
        date_format=raw_format.get("date_format", "%Y-%m-%d"),
        sheet=raw_format.get("sheet"),
        columns=config.get("columns") or {},
        values=config.get("values") or {},
        ignore_columns=config.get("ignore_columns") or {},
    )


@dataclass
class Validation:
    """Typed tables (meaningful only without errors), every finding, and what was checked."""

    tables: dict[str, pd.DataFrame]
    findings: pd.DataFrame
    rows: dict[str, int]
    paths: dict[str, Path]
    checks: pd.DataFrame
    # The exports' SHA-256 for the summary, computed while they were validated.
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return bool((self.findings["severity"] == "error").any())


# ---------------------------------------------------------------------------------------
# finding the files


def find_exports(raw_dir: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    """The one file per table in raw_dir; other files in the folder are not ours to judge."""
    found: dict[str, Path] = {}
    problems = []
    for table in TABLES:
        present = [
            path for path in (raw_dir / f"{table}.csv", raw_dir / f"{table}.xlsx") if path.is_file()
        ]
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
                    f"{table}.csv", "file_missing", f"no {table}.csv or {table}.xlsx in {raw_dir}"
                )
            )
        else:
            found[table] = present[0]
    return found, concat_findings(problems)


# ---------------------------------------------------------------------------------------
# reading cells as text


def file_problem(path: Path, check: str, message: str) -> tuple[None, pd.DataFrame]:
    return None, findings_frame(path.name, check, message)


def read_cells(
    path: Path, fmt: ExportFormat, ids: Collection[str] = ()
) -> tuple[Cells | None, pd.DataFrame]:
    """Every cell as stripped text (empty = missing), with the source line of each row;
    `ids` names the columns of identifiers (see `encoded_text`)."""
    if path.suffix == ".xlsx":
        return read_xlsx(path, fmt)
    return read_csv(path, fmt, ids)


def read_csv(
    path: Path, fmt: ExportFormat, ids: Collection[str]
) -> tuple[Cells | None, pd.DataFrame]:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature):
            return file_problem(
                path,
                "file_type",
                f"{path.name} is {kind}, not CSV text; export it as CSV "
                "(or, for Excel, give it the .xlsx ending)",
            )
    if not head.strip():
        return file_problem(path, "empty_file", "the file is empty (no header line)")
    header, problem = read_header(path, fmt)
    if problem is not None:
        return None, problem
    bad_rows: list[tuple[int | None, str]] = []

    def keep_bad_row(row: Any) -> str:
        bad_rows.append(
            (row.number, f"{row.actual_columns} fields where the header has {row.expected_columns}")
        )
        return "skip"

    try:
        table = arrow_csv.read_csv(
            path,
            read_options=arrow_csv.ReadOptions(
                encoding=ENCODINGS[fmt.encoding] if fmt.encoding != "utf-8" else "utf8",
                block_size=BLOCK_SIZE,
            ),
            parse_options=arrow_csv.ParseOptions(
                delimiter=fmt.delimiter, invalid_row_handler=keep_bad_row
            ),
            convert_options=arrow_csv.ConvertOptions(
                column_types={name: TEXT for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (arrow.ArrowInvalid, UnicodeDecodeError) as error:
        if "UTF8" in str(error) or isinstance(error, UnicodeDecodeError):
            return None, encoding_problem(path, fmt)
        return file_problem(path, "unreadable", f"the file cannot be read as CSV: {error}")
    columns = {
        name.strip(): encoded_text(table.column(i), unify=name.strip() not in ids)
        for i, name in enumerate(table.column_names)
    }
    if bad_rows:
        bad_rows = malformed_lines(path, fmt, len(header))
    rows, skipped = table.num_rows, [number for number, _ in bad_rows]
    lines = lambda: data_line_index(path, rows, skipped)  # noqa: E731
    return Cells(columns, rows, lines), bad_row_findings(path, bad_rows)


def encoded_text(column: arrow.ChunkedArray, unify: bool) -> tuple[np.ndarray, arrow.Array]:
    """Codes and trimmed texts of a dictionary-encoded column. Its chunks' dictionaries are
    unified, so that each distinct text is parsed once, except for identifiers: they are
    made unique across all tables in one pass anyway, and unifying a million of them per
    file costs as much again, so their chunks' dictionaries are only put one after another.
    The codes are combined by arrow, whose memory pool reuses what parsing freed (a fresh
    numpy array of a column costs ten times as much here, in page faults)."""
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), arrow.array([], arrow.string())
    if unify:
        combined = column.unify_dictionaries().combine_chunks()
        return combined.indices.to_numpy(), pc.utf8_trim_whitespace(combined.dictionary)
    offsets = np.cumsum([0] + [len(chunk.dictionary) for chunk in column.chunks[:-1]])
    codes = arrow.chunked_array(
        [
            pc.add(chunk.indices, int(offset))
            for chunk, offset in zip(column.chunks, offsets, strict=True)
        ]
    ).combine_chunks()
    texts = arrow.concat_arrays([chunk.dictionary for chunk in column.chunks])
    return codes.to_numpy(), pc.utf8_trim_whitespace(texts)


def read_header(path: Path, fmt: ExportFormat) -> tuple[list[str], pd.DataFrame | None]:
    """Column names of line 1, with hints when the declared dialect does not fit."""
    try:
        with open(path, encoding=ENCODINGS[fmt.encoding], newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError:
        return [], encoding_problem(path, fmt)
    header = next(csv.reader(io.StringIO(first), delimiter=fmt.delimiter), [])
    names = [name.strip() for name in header]
    header = [name.rstrip("\r\n") for name in header]
    if len(names) == 1:
        for other, label in ((";", "semicolon"), ("\t", "tab"), (",", "comma"), ("|", "pipe")):
            if other != fmt.delimiter and other in first:
                return names, findings_frame(
                    path.name,
                    "delimiter",
                    f"the file looks {label}-separated; set raw_format.delimiter: "
                    f"{json.dumps(other)} in the config",
                    line=1,
                )
        return header, None
    problem = duplicate_column_problem(path.name, names)
    return (names, problem) if problem is not None else (header, None)


def duplicate_column_problem(file: str, names: Sequence[str]) -> pd.DataFrame | None:
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if not duplicated:
        return None
    return findings_frame(
        file,
        "duplicate_column",
        f"the header names {', '.join(duplicated)} twice",
        line=1,
        column=", ".join(duplicated),
    )


def encoding_problem(path: Path, fmt: ExportFormat) -> pd.DataFrame:
    data = path.read_bytes()
    try:
        data.decode(ENCODINGS[fmt.encoding])
        where = ""
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        where = f" (byte {error.start}, line {line})"
    hint = (
        "set raw_format.encoding: cp1252 (or latin-1) in the config if the export comes from "
        "Windows"
        if fmt.encoding == "utf-8"
        else "check raw_format.encoding"
    )
    return findings_frame(
        path.name, "encoding", f"the file's encoding is not {fmt.encoding}{where}; {hint}"
    )


def data_line_index(path: Path, rows: int, skipped: Sequence[int | None]) -> np.ndarray:
    """Source line of each data row: pyarrow skips blank and malformed lines, findings must
    still name the line of the file."""
    data = path.read_bytes()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines == rows + 1 and not skipped:
        return np.arange(FIRST_DATA_LINE, rows + FIRST_DATA_LINE)
    buffer = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buffer == ord("\n"))
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, len(buffer)]
    if starts[-1] == len(buffer):
        starts, ends = starts[:-1], ends[:-1]
    length = ends - starts
    length -= (length > 0) & (buffer[np.maximum(ends - 1, 0)] == ord("\r"))
    numbers = np.flatnonzero(length > 0) + 1
    numbers = numbers[~np.isin(numbers, [n for n in skipped if n is not None])]
    return numbers[1 : rows + 1]


def malformed_lines(path: Path, fmt: ExportFormat, width: int) -> list[tuple[int, str]]:
    """Lines whose cell count differs from the header's (pyarrow does not say which)."""
    with open(path, encoding=ENCODINGS[fmt.encoding], newline="") as handle:
        reader = csv.reader(handle, delimiter=fmt.delimiter)
        return [
            (reader.line_num, f"{len(row)} fields where the header has {width}")
            for row in reader
            if row and len(row) != width
        ]


def bad_row_findings(path: Path, bad_rows: list[tuple[int | None, str]]) -> pd.DataFrame:
    return concat_findings(
        [
            findings_frame(path.name, "field_count", f"the line has {text}", line=number)
            for number, text in bad_rows
        ]
    )


def read_xlsx(path: Path, fmt: ExportFormat) -> tuple[Cells | None, pd.DataFrame]:
    """First (or the declared) sheet; real date and boolean cells are accepted."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as error:
        return file_problem(path, "unreadable", f"the file cannot be read as .xlsx: {error}")
    if fmt.sheet is not None and fmt.sheet not in book.sheetnames:
        return file_problem(
            path,
            "sheet",
            f"no sheet named {fmt.sheet!r}; the workbook has {', '.join(book.sheetnames)}",
        )
    sheet = book[fmt.sheet] if fmt.sheet is not None else book.worksheets[0]
    rows = [
        tuple(xlsx_text(value, fmt) for value in row) for row in sheet.iter_rows(values_only=True)
    ]
    book.close()
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        return file_problem(path, "empty_file", "the sheet is empty (no header row)")
    header = [name.strip() for name in rows[0]]
    width = len(header)
    while width and not header[width - 1]:
        width -= 1
    problem = duplicate_column_problem(path.name, header[:width])
    if problem is not None:
        return None, problem
    body = [row[:width] + ("",) * (width - len(row)) for row in rows[1:]]
    frame = pd.DataFrame(body, columns=header[:width], dtype=object)
    columns = {name: encoded_series(frame[name].str.strip()) for name in frame.columns}
    lines = np.arange(len(frame)) + FIRST_DATA_LINE
    return Cells(columns, len(frame), lambda: lines), no_findings()


def encoded_series(texts: pd.Series) -> tuple[np.ndarray, arrow.Array]:
    codes, distinct = pd.factorize(texts)
    return codes.astype(np.int32), arrow.array(distinct, arrow.string())


def xlsx_text(value: Any, fmt: ExportFormat) -> str:
    """A cell as the text a CSV export would hold (dates in the declared format)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.strftime(fmt.date_format)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------
# parsing cells


TYPE_NAMES = {"date": "a date", "number": "a number", "boolean": "true or false"}


def parse_column(texts: pd.Series, kind: str, fmt: ExportFormat) -> tuple[pd.Series, np.ndarray]:
    """Typed values of distinct texts, and a mask of those filled but not of the column's
    type. Every rule is element-wise, so it judges a text the same wherever it stands."""
    filled = (texts != "").to_numpy()
    if kind == "date":
        parsed = pd.to_datetime(texts.where(filled), format=fmt.date_format, errors="coerce")
        return parsed.astype("datetime64[ns]"), filled & parsed.isna().to_numpy()
    if kind == "number":
        text = texts.str.replace(fmt.decimal, ".", regex=False) if fmt.decimal != "." else texts
        parsed = pd.to_numeric(text.where(filled), errors="coerce").astype("float64")
        return parsed, filled & parsed.isna().to_numpy()
    if kind == "boolean":
        lowered = texts.str.lower()
        is_true, is_false = (lowered == "true").to_numpy(), (lowered == "false").to_numpy()
        parsed = pd.arrays.BooleanArray(is_true, ~(is_true | is_false))
        return pd.Series(parsed, index=texts.index), filled & ~(is_true | is_false)
    return texts.where(filled, None).astype(object), np.zeros(len(texts), dtype=bool)


def type_hint(kind: str, values: pd.Series, fmt: ExportFormat) -> str:
    """Why a column's cells may not parse: a dialect that the config has not declared."""
    sample = values.head(50)
    if kind == "number" and fmt.decimal == "." and sample.str.fullmatch(r"-?\d+,\d+").any():
        return '; the export seems to use a decimal comma: set raw_format.decimal: ","'
    if kind == "date" and sample.str.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{4}").any():
        return '; the export seems to use DD.MM.YYYY: set raw_format.date_format: "%d.%m.%Y"'
    if kind == "date" and sample.str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").any():
        return '; set raw_format.date_format to the export\'s format (e.g. "%d/%m/%Y")'
    if kind == "boolean":
        return "; map other spellings (e.g. ja/nein) under values: in the config"
    return ""


def map_values(cells: pd.Series, mapping: Mapping[str, Any]) -> pd.Series:
    """Declared spellings (M -> male, ja -> true); booleans in the config become true/false."""
    text = {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in mapping.items()}
    mapped = cells.copy()
    for source, target in text.items():
        mapped = mapped.mask(cells == source, target)
    return mapped


def mapped_texts(cells: Cells, mappings: Mapping[str, Mapping[str, Any]]) -> dict[str, arrow.Array]:
    """Each column's distinct texts in the contract's spelling (the declared values:)."""
    return {
        name: (
            arrow.array(map_values(cells.texts(name), mappings[name]), arrow.string())
            if name in mappings
            else cells.columns[name][1]
        )
        for name in cells.columns
    }


def shared_categories(
    texts: Mapping[str, Mapping[str, arrow.Array]], schemas: Mapping[str, pa.DataFrameSchema]
) -> dict[str, tuple[pd.CategoricalDtype, dict[str, np.ndarray]]]:
    """Per text column (patient_id): the distinct filled values across all tables, in the
    order of the tables and their rows, and per table the position of each of its distinct
    texts among them (-1: empty). One code per patient for every cross-table join, patients'
    own ids first, in their order; one hash pass over all tables' texts."""
    shared: dict[str, dict[str, arrow.Array]] = {}
    for table, columns in texts.items():
        for name, values in columns.items():
            column = schemas[table].columns.get(name)
            if column is not None and column_kind(column) == "text":
                shared.setdefault(name, {})[table] = values
    return {name: shared_codes(parts) for name, parts in shared.items()}


def shared_codes(
    parts: Mapping[str, arrow.Array],
) -> tuple[pd.CategoricalDtype, dict[str, np.ndarray]]:
    encoded = pc.dictionary_encode(arrow.concat_arrays(list(parts.values())))
    distinct, positions = encoded.dictionary, encoded.indices.to_numpy().astype(np.int64)
    empty = pc.index(distinct, "").as_py()
    if empty >= 0:
        distinct = pc.filter(distinct, pc.not_equal(distinct, ""))
        positions[positions == empty] = -1
        positions[positions > empty] -= 1
    bounds = np.cumsum([0] + [len(part) for part in parts.values()])
    dtype = pd.CategoricalDtype(distinct.to_numpy(zero_copy_only=False))
    return dtype, {
        table: positions[start:end]
        for table, start, end in zip(parts, bounds[:-1], bounds[1:], strict=True)
    }


def distinct_values(
    codes: np.ndarray,
    texts: arrow.Array,
    kind: str,
    fmt: ExportFormat,
    shared: tuple[pd.CategoricalDtype, np.ndarray] | None,
) -> tuple[Distinct, np.ndarray]:
    """The column's distinct typed values with each row's position among them, and which
    texts are mistyped. Categories and text come as unique values (-1: empty), text as the
    categories shared by all tables."""
    if shared is not None:
        dtype, positions = shared
        unique = dtype.categories.to_series()
        return Distinct(unique, positions[codes], np.zeros(len(unique), bool), dtype), np.zeros(
            len(texts), dtype=bool
        )
    typed, bad = parse_column(
        pd.Series(texts.to_numpy(zero_copy_only=False), dtype=object), kind, fmt
    )
    if kind == "category":
        positions, categories = pd.factorize(typed)
        unique = categories.to_series()
        dtype = pd.CategoricalDtype(categories)
        return Distinct(unique, positions[codes], np.zeros(len(unique), bool), dtype), bad
    return Distinct(typed, codes, bad), bad


def parse_table(
    cells: Cells,
    texts: Mapping[str, arrow.Array],
    schema: pa.DataFrameSchema,
    fmt: ExportFormat,
    file: str,
    shared: Mapping[str, tuple[pd.CategoricalDtype, np.ndarray]],
) -> tuple[TableRead, pd.DataFrame]:
    """Typed contract columns, their distinct values (and which are mistyped), and the
    type findings."""
    distinct: dict[str, Distinct] = {}
    problems = []
    for name, (codes, _) in cells.columns.items():
        if name not in schema.columns:
            continue
        kind = column_kind(schema.columns[name])
        distinct[name], bad_texts = distinct_values(codes, texts[name], kind, fmt, shared.get(name))
        if bad_texts.any():
            bad = bad_texts[codes]
            expected = TYPE_NAMES[kind]
            if kind == "date":
                expected += f" in the format {fmt.date_format}"
            rows = np.flatnonzero(bad)
            mapped = pd.Series(texts[name].take(codes[rows[:50]]).to_pylist(), dtype=object)
            hint = type_hint(kind, mapped, fmt)
            value = cells.text(name, rows)
            problems.append(
                findings_frame(
                    file,
                    "type",
                    name + " '" + value + "' is not " + expected + hint,
                    line=cells.line(rows),
                    column=name,
                    value=value,
                )
            )
    typed = pd.DataFrame({name: values.column() for name, values in distinct.items()}, copy=False)
    return TableRead(typed, cells, distinct), concat_findings(problems)


def category_hint(findings: pd.DataFrame) -> pd.DataFrame:
    """Point undeclared spellings of a category to the config's values: mapping."""
    spelled = findings["check"] == "category"
    findings.loc[spelled, "message"] += (
        "; if this is the export's spelling, map it under values: in the config"
    )
    return findings


# ---------------------------------------------------------------------------------------
# the whole export


def read_export(
    table: str, path: Path, fmt: ExportFormat, schema: pa.DataFrameSchema
) -> tuple[Cells | None, pd.DataFrame]:
    """The export's cells under contract names (None when the file itself is unusable)."""
    names = dict(fmt.columns.get(table, {}))
    text = {name for name, column in schema.columns.items() if column_kind(column) == "text"}
    ids = {export for export, name in names.items() if name in text} | (text - set(names))
    raw, problems = read_cells(path, fmt, ids)
    if raw is None:
        return None, problems
    if table == "patients" and not len(raw):
        message = "patients has a header but no patient rows"
        return None, findings_frame(path.name, "empty_file", message, line=1)
    ignored = set(fmt.ignore_columns.get(table, []))
    kept = [name for name in raw.columns if name not in ignored]
    renamed = [names.get(name, name) for name in kept]
    problem = duplicate_column_problem(path.name, renamed)
    if problem is not None:
        return None, concat_findings([problems, problem])
    columns = {new: raw.columns[old] for old, new in zip(kept, renamed, strict=True)}
    return Cells(columns, raw.rows, raw.source_lines), problems


def validate_exports(
    paths: Mapping[str, Path],
    fmt: ExportFormat,
    definitions: Definitions,
    *,
    strict: bool = False,
) -> Validation:
    """Check everything that can be checked, in one pass, and return the typed tables.
    The files are hashed meanwhile, by a thread of their own: at 10^6 patients that is
    0.4 s, mostly while validation runs Python on one core."""
    hashing = ThreadPoolExecutor(max_workers=1)
    digests = {table: hashing.submit(sha256, path) for table, path in paths.items()}
    hashing.shutdown(wait=False)
    schemas = {table: load_schema(table) for table in TABLES}
    cells: dict[str, Cells] = {}
    read_problems = {}
    for table, path in paths.items():
        raw, read_problems[table] = read_export(table, path, fmt, schemas[table])
        if raw is not None:
            cells[table] = raw
    texts = {table: mapped_texts(raw, fmt.values.get(table, {})) for table, raw in cells.items()}
    shared = shared_categories(texts, schemas)
    reads: dict[str, TableRead] = {}
    parts = []
    for table, path in paths.items():
        parts.append(read_problems[table])
        if table not in cells:
            continue
        own = {
            name: (dtype, codes[table]) for name, (dtype, codes) in shared.items() if table in codes
        }
        read, type_problems = parse_table(
            cells[table], texts[table], schemas[table], fmt, path.name, own
        )
        reads[table] = read
        column_problems = check_columns(read, schemas[table], path.name)
        parts += [type_problems, category_hint(column_problems)]
    files = {table: path.name for table, path in paths.items()}
    parts.append(check_across(reads, schemas, files, definitions))
    findings = concat_findings(parts)
    if strict:
        findings.loc[findings["severity"] == "warning", "severity"] = "error"
    tables = {table: read.typed for table, read in reads.items()}
    return Validation(
        tables={
            table: finish_types(tables.get(table, empty_table(schemas[table])), schemas[table])
            for table in TABLES
        },
        findings=findings,
        rows={table: len(frame) for table, frame in tables.items()},
        paths=dict(paths),
        checks=catalogue(schemas),
        digests={table: digest.result() for table, digest in digests.items()},
    )


def validate_folder(
    raw_dir: Path, fmt: ExportFormat, definitions: Definitions, *, strict: bool
) -> Validation:
    """Validate whatever of the four exports the folder holds; a missing one is a finding."""
    if not Path(raw_dir).is_dir():
        problem = findings_frame(str(raw_dir), "file_missing", f"raw_dir {raw_dir} is not a folder")
        schemas = {table: load_schema(table) for table in TABLES}
        return Validation({}, problem, {}, {}, catalogue(schemas))
    paths, problems = find_exports(Path(raw_dir))
    result = validate_exports(paths, fmt, definitions, strict=strict)
    result.findings = concat_findings([problems, result.findings])
    return result


def empty_table(schema: pa.DataFrameSchema) -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype=str(column.dtype)) for name, column in schema.columns.items()}
    )


def finish_types(table: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Contract columns only, ready for parquet: categories as categoricals of the
    contract's categories, patient ids as categoricals of the ids of all four tables (so
    that derivation joins tables by code)."""
    out = {}
    for name, column in schema.columns.items():
        values = table[name] if name in table else pd.Series(np.nan, index=table.index)
        kind = column_kind(column)
        if kind == "category":
            out[name] = pd.Categorical(values, categories=allowed_values(column))
        elif kind == "text":
            out[name] = values.astype("category")
        else:
            out[name] = values.astype(str(column.dtype), copy=False)
    return pd.DataFrame(out, index=table.index, copy=False)


# ---------------------------------------------------------------------------------------
# what validation leaves behind


def write_tables(tables: Mapping[str, pd.DataFrame], paths: Mapping[str, str]) -> None:
    """One row group per table and one dictionary page per column, so that a patient_id
    dictionary is written (and read) once rather than falling back to plain pages that the
    reader encodes again; no column statistics (nothing filters on them, and min and max of
    a million ids cost as much as writing them). The files are written side by side: each
    file's id dictionary is encoded by one thread."""

    def write(table: str) -> None:
        frame = arrow.Table.from_pandas(tables[table], preserve_index=False)
        pq.write_table(
            frame,
            paths[table],
            row_group_size=max(frame.num_rows, 1),
            dictionary_pagesize_limit=1 << 30,
            write_statistics=False,
        )

    with ThreadPoolExecutor() as pool:
        list(pool.map(write, TABLES))


def count_findings(findings: pd.DataFrame) -> dict[str, Any]:
    """Counts by severity, and by severity, file and check, for summaries."""
    by_check = findings.groupby(["severity", "file", "check"]).size()
    return {
        "by_severity": {s: int((findings["severity"] == s).sum()) for s in ("error", "warning")},
        "by_check": {" / ".join(key): int(n) for key, n in by_check.items()},
    }


def summary(result: Validation, raw_dir: Path) -> dict[str, Any]:
    """What was validated: file names, hashes, rows, checks and finding counts."""
    return {
        "synthetic": (Path(raw_dir) / SYNTHETIC_MARKER).is_file(),
        "files": {
            table: {
                "name": path.name,
                "sha256": result.digests.get(table) or sha256(path),
                "rows": result.rows.get(table, 0),
            }
            for table, path in sorted(result.paths.items())
        },
        "checks": len(result.checks),
        "findings": count_findings(result.findings),
    }


def write_summary(result: Validation, raw_dir: Path, path: Path) -> None:
    path.write_text(json.dumps(summary(result, raw_dir), indent=2, sort_keys=True) + "\n")


def terminal_summary(result: Validation, issues_path: str, page_path: str) -> str:
    counts = count_findings(result.findings)
    errors, warnings = counts["by_severity"]["error"], counts["by_severity"]["warning"]
    lines = [
        f"validation: {errors} error(s), {warnings} warning(s) from {len(result.checks)} "
        f"checks on {sum(result.rows.values())} rows"
    ]
    lines += [f"  {n:8d}  {key}" for key, n in sorted(counts["by_check"].items())]
    lines.append(f"  findings: {issues_path}; readable page: {page_path}")
    if errors:
        lines.append(
            "validation failed: nothing was analysed. Fix the errors in the exports (or "
            "declare their format in the config) and run again."
        )
    return "\n".join(lines)
