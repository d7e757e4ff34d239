"""The study report as a reader and a reviewer see it: numbers, PDF, browser, audit trail."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from sinet_bm.figures import FIGURES
from sinet_bm.provenance import sha256
from sinet_bm.report import render_report

pytestmark = pytest.mark.slow  # real Snakemake runs

ARTIFACTS = REPO / "tests" / "artifacts"


class TaggedNumbers(HTMLParser):
    """Collects the text of every element tagged with data-estimate / data-field."""

    def __init__(self) -> None:
        super().__init__()
        self.tagged: list[tuple[str, str, str]] = []
        self.open: list[tuple[str, str]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "data-estimate" in attributes:
            self.open.append((attributes["data-estimate"], attributes["data-field"]))
            self.text = ""

    def handle_data(self, data):
        if self.open:
            self.text += data

    def handle_endtag(self, tag):
        if self.open and tag == "span":
            estimate, field = self.open.pop()
            self.tagged.append((estimate, field, self.text.strip()))


def shown_number_agrees(text: str, value: float) -> bool:
    """The text is the value rounded for display (percent, p < 0.0001, or a plain number)."""
    if text in ("–", "not reached"):
        return pd.isna(value)
    if text.startswith("< "):
        return value < float(text[2:])
    scale = 100 if text.endswith("%") else 1
    number = text.rstrip("%").replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return abs(float(number) - scale * value) <= 0.5 * 10**-decimals + 1e-12


@pytest.fixture(scope="module")
def outputs(small_run) -> Path:
    return small_run[0] / "out"


@pytest.fixture(scope="module")
def html(outputs) -> str:
    return (outputs / "report" / "report.html").read_text(encoding="utf-8")


def test_every_number_taken_from_estimates_equals_estimates_csv(outputs, html):
    estimates = pd.read_csv(outputs / "estimates.csv").set_index("estimate")
    parser = TaggedNumbers()
    parser.feed(html)
    assert len(parser.tagged) > 100
    wrong = [
        (estimate, field, text)
        for estimate, field, text in parser.tagged
        if not shown_number_agrees(text, estimates.at[estimate, field])
    ]
    assert wrong == []
    assert {estimate for estimate, _, _ in parser.tagged} == set(estimates.index)


def test_html_is_self_contained(html):
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?https?:""", html)
    assert html.count('<img src="data:image/svg+xml;base64,') == len(FIGURES)


def test_pdf_renders_with_the_headings_and_numbers(outputs):
    pdf = outputs / "report" / "report.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert pages >= 8
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in [
        "Methods",
        "Table 1. Baseline characteristics",
        "Overall survival",
        "Reproduction of the published results",
        "Appendix C. Audit trail",
    ]:
        assert heading in text
    estimates = pd.read_csv(outputs / "estimates.csv").set_index("estimate")
    assert f"n = {int(estimates.at['n_eligible', 'value'])}" in text
    assert f"Page 1 of {pages}" in text


def test_a_real_browser_loads_the_page_without_console_errors(outputs, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is installed by `make test` (Debian package chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,3000",
            f"--screenshot={screenshot}",
            (outputs / "report" / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    assert screenshot.stat().st_size > 50_000


def test_the_audit_appendix_lists_every_rule_with_the_hashes_on_disk(outputs, html, small_run):
    workdir, raw = small_run[0], small_run[1]
    folders = {"results": outputs, "exports": raw, "workflow": workdir}
    provenance = json.loads((outputs / "provenance.json").read_text())
    rules = [step["rule"] for step in provenance["steps"]]
    assert rules == [
        "validate_exports",
        "derive_endpoints",
        "bootstrap_shard (shard 1)",
        "bootstrap_shard (shard 2)",
        "bias_check_shard (shard 1)",
        "estimate_cohort",
        "estimate_survival",
        "estimate_sensitivity",
        "collect_estimates",
        "plot_figures",
    ]
    for step in provenance["steps"]:
        assert f"<h3>{step['rule']}</h3>" in html
        assert step["script_git_blob"] in html
        for record in step["inputs"] + step["outputs"]:
            folder = folders[record["folder"]]
            assert sha256(folder / record["path"]) == record["sha256"], record["path"]
            assert f"{record['folder']}/{record['path']}" in html
            assert record["sha256"] in html
        assert step["wall_seconds"] > 0
    assert "wall_seconds" not in html and "max_rss" not in html


def test_the_title_block_names_the_source_and_the_pipeline(outputs, html):
    provenance = json.loads((outputs / "provenance.json").read_text())
    assert provenance["config_sha256"] in html
    assert provenance["pipeline"]["commit"] in html
    assert "Run date</td><td>2024-06-30" in html  # SOURCE_DATE_EPOCH of the tests


def test_small_counts_are_masked_when_asked(outputs, small_run, config):
    workdir = small_run[0]
    html = render_report(
        estimates=outputs / "estimates.csv",
        table1=outputs / "tables" / "table1.csv",
        flow=outputs / "tables" / "flow.csv",
        bias=outputs / "tables" / "immortal_time_bias.csv",
        ph_tests=outputs / "tables" / "ph_tests.csv",
        changelog=outputs / "refresh" / "changelog.json",
        figures={p.stem: p for p in (outputs / "figures").glob("*.svg")},
        validation=outputs / "validated" / "summary.json",
        provenance=outputs / "provenance.json",
        published=workdir / "resources" / "published.csv",
        config=config,
        min_cell_count=5,
        run_date="2024-06-30",
    )
    flow = pd.read_csv(outputs / "tables" / "flow.csv")
    small = flow[(flow["patients"] > 0) & (flow["patients"] < 5)]
    assert len(small) > 0
    assert "&lt; 5" in html
    assert "Counts of fewer than 5 patients are masked" in html
