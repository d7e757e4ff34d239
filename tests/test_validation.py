"""Validation against the corpus of invalid exports (tests/data/invalid_exports.yaml)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sinet_bm import checks, contract, findings, ingest
from sinet_bm.contract import Definitions

DATA = Path(__file__).parent / "data"
CORPUS = yaml.safe_load((DATA / "invalid_exports.yaml").read_text())
CASES = CORPUS["cases"]
REPO = Path(__file__).resolve().parent.parent


def edit_export(folder: Path, edit: dict) -> None:
    """Apply one corpus edit to the CSV files in folder."""
    ((operation, arguments),) = edit.items()
    if operation == "remove":
        (folder / arguments).unlink()
        return
    file, *rest = arguments
    path = folder / file
    if operation == "copy_to":
        shutil.copy(path, folder / rest[0])
    elif operation == "content":
        path.write_bytes(rest[0].encode("utf-8"))
    elif operation == "encode":
        path.write_bytes(path.read_text(encoding="utf-8").encode(rest[0]))
    elif operation == "append":
        path.write_text(path.read_text() + rest[0] + "\n")
    elif operation == "duplicate_line":
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines, lines[rest[0] - 1]]) + "\n")
    else:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if operation == "set":
            line, column, value = rest
            table.loc[line - 2, column] = value
        elif operation == "drop_column":
            table = table.drop(columns=rest[0])
        elif operation == "add_column":
            table[rest[0]] = rest[1]
        table.to_csv(path, index=False)


def validate(folder: Path, config: dict, **format_overrides) -> ingest.Validation:
    fmt = ingest.format_from_config({**config, **format_overrides})
    definitions = Definitions.from_config(config["definitions"])
    return ingest.validate_folder(folder, fmt, definitions, strict=False)


def found(result: ingest.Validation) -> list[list]:
    rows = result.findings[["severity", "file", "line", "column", "check"]].astype(object)
    rows = rows.where(rows.notna(), None)
    return sorted(rows.values.tolist(), key=lambda r: [str(x) for x in r])


def expected(case: dict) -> list[list]:
    return sorted(case["findings"], key=lambda r: [str(x) for x in r])


def clean_export(tmp_path: Path) -> Path:
    """The tiny export without its one warning: the base every corpus case edits."""
    folder = tmp_path / "export"
    shutil.copytree(DATA / "tiny", folder)
    for edit in CORPUS["base_edits"]:
        edit_export(folder, edit)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_corpus_case_gives_exactly_its_findings(case, config, tmp_path):
    folder = clean_export(tmp_path)
    for edit in case["edits"]:
        edit_export(folder, edit)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = validate(folder, config)
    assert found(result) == expected(case)
    assert all(isinstance(m, str) and m for m in result.findings["message"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_every_contract_rule_is_broken_by_some_case():
    schemas = {t: checks.load_schema(t) for t in contract.TABLES}
    catalogue = checks.catalogue(schemas)
    covered = {
        (finding[1].split(".")[0], finding[3], finding[4])
        for case in CASES
        for finding in case["findings"]
    }
    missing = [
        (row.table, row.column, row.check)
        for row in catalogue.itertuples()
        if row.check != "columns" and (row.table, row.column, row.check) not in covered
    ]
    assert missing == []


def test_strict_turns_warnings_into_errors(config, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(DATA / "tiny", folder)
    result = ingest.validate_folder(
        folder,
        ingest.format_from_config(config),
        Definitions.from_config(config["definitions"]),
        strict=True,
    )
    assert found(result) == [["error", "skeletal_events.csv", 3, "event_date", "sre_before_bm"]]
    assert result.has_errors


def test_messages_say_what_is_wrong_in_words(config, tmp_path):
    folder = clean_export(tmp_path)
    edit_export(folder, {"set": ["patients.csv", 9, "last_followup_date", "2018-01-01"]})
    (message,) = validate(folder, config).findings["message"]
    assert message == "diagnosis_date 2018-03-01 is after last_followup_date 2018-01-01"


def test_undeclared_dialects_get_a_hint(config, tmp_path):
    folder = clean_export(tmp_path)
    edit_export(folder, {"set": ["patients.csv", 2, "ki67_percent", "2,5"]})
    edit_export(folder, {"set": ["patients.csv", 3, "birth_date", "10.03.1955"]})
    messages = " ".join(validate(folder, config).findings["message"])
    assert 'raw_format.decimal: ","' in messages
    assert 'raw_format.date_format: "%d.%m.%Y"' in messages


def test_blank_lines_do_not_shift_reported_lines(config, tmp_path):
    folder = clean_export(tmp_path)
    lines = (folder / "patients.csv").read_text().splitlines()
    lines.insert(3, "")
    (folder / "patients.csv").write_text("\n".join(lines) + "\n")
    edit_export(folder, {"set": ["patients.csv", 5, "sex", "X"]})  # pandas drops the blank line
    text = (folder / "patients.csv").read_text().splitlines()
    text.insert(3, "")
    (folder / "patients.csv").write_text("\n".join(text) + "\n")
    assert found(validate(folder, config)) == [["error", "patients.csv", 6, "sex", "category"]]


def test_issues_csv_neutralises_formulas_and_keeps_the_format(tmp_path):
    frame = findings.findings_frame(
        "patients.csv",
        "category",
        "sex '=HYPERLINK(\"x\")' is not one of",
        line=pd.Series([3]),
        column="sex",
        value='=HYPERLINK("x")',
    )
    findings.write_issues(frame, tmp_path / "issues.csv")
    written = pd.read_csv(tmp_path / "issues.csv", dtype=str)
    assert list(written.columns) == findings.FINDING_COLUMNS
    assert written.loc[0, "value"] == '\'=HYPERLINK("x")'
    assert not written.loc[0, "message"].startswith("=")


def test_the_findings_page_escapes_values_from_exports(config, tmp_path):
    from sinet_bm.findings import render_validation_page

    folder = clean_export(tmp_path)
    edit_export(folder, {"set": ["patients.csv", 3, "sex", "<script>alert(1)</script>"]})
    result = validate(folder, config)
    page = render_validation_page(result.findings, result.checks, result.rows, "x", False)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Validation failed" in page


def test_the_findings_page_lists_the_checks_when_all_pass(config):
    from sinet_bm.findings import render_validation_page

    result = validate(DATA / "tiny", config)
    page = render_validation_page(result.findings, result.checks, result.rows, "tiny", False)
    assert "Validation passed with 1 warning" in page
    assert page.count("<tr><td>patients</td>") >= 20
