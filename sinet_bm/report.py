"""The study report, one HTML page and its PDF.

The template only lays numbers out; every number it shows is read from a result file of the
pipeline (estimates.csv, Table 1, the validation summary). Published values are data
(`resources/published.csv`), compared with the reproduced ones here, never typed into the
template.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from sinet_bm.provenance import without_timings
from sinet_bm.results import read_result

TEMPLATES = Path(__file__).parent / "templates"
CATALOGUE = Path(__file__).resolve().parent.parent / "schemas" / "estimates.yaml"
# Files this module reads: steps that use it rerun when one of them changes.
USES = (
    "sinet_bm/templates/report.html",
    "sinet_bm/templates/macros.html",
    "sinet_bm/templates/consortium.html",
    "sinet_bm/templates/pooled_report.html",
    "sinet_bm/templates/report.css",
    "schemas/estimates.yaml",
)
FLOW_LABELS = {
    "exported": "Exported",
    "excluded": "Excluded",
    "eligible": "Eligible",
    "stage_iv": "Stage IV",
    "bm": "With BM",
    "no_bm": "Without BM",
    "sre_counted": "SRE counted",
    "sre_left_out": "SRE left out",
}
TABLE1_LABELS = {
    "age_years": "Age at diagnosis, years",
    "ki67_percent": "Ki-67, %",
    "sex": "Sex",
    "primary_site": "Primary site",
    "grade": "Grade (WHO 2019)",
    "functioning": "Functioning tumour",
}


# ---------------------------------------------------------------------------------------
# the catalogue of estimates


# The files of the section on several centres (rules/common.smk, consortium_inputs).
CONSORTIUM_INPUTS = ("pooled", "pooled_inputs", "centres", "left_out", "pooled_figures")


def config_value(config: Mapping[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        config = config[key]
    return config


def run_mode(config: Mapping[str, Any]) -> str:
    """One centre, several centres' rows, or a coordinator's bundles."""
    if config.get("bundles"):
        return "bundles"
    return "centres" if config.get("centres") else "single"


# Which runs have a catalogue entry marked `only: ...` (unmarked: every run with rows).
ONLY = {"pooled": ("centres", "bundles"), "centres": ("centres",), None: ("single", "centres")}


def placeholder_values(key: Any, config: Mapping[str, Any]) -> list[str]:
    """The values an id's {placeholder} takes: a list of names, or a config key's numbers."""
    if isinstance(key, list):
        return [str(value) for value in key]
    return [f"{value:g}" for value in config_value(config, key)]


def estimate_catalogue(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every row estimates.csv has under this config, from schemas/estimates.yaml: id,
    section, population and definition, one row per value where an id has {m}."""
    import yaml

    mode = run_mode(config)
    rows = []
    for section in yaml.safe_load(CATALOGUE.read_text())["sections"]:
        if mode not in ONLY[section.get("only")]:
            continue
        for entry in section["estimates"]:
            if "only" in entry and mode not in ONLY[entry["only"]]:
                continue
            values = [{}]
            for name, key in (entry.get("each") or {}).items():
                values = [{name: value} for value in placeholder_values(key, config)]
            rows += [
                {
                    "estimate": entry["id"].format(**value),
                    "section": section["section"],
                    "population": entry["population"],
                    "definition": entry["definition"],
                }
                for value in values
            ]
    return rows


# ---------------------------------------------------------------------------------------
# number formatting (layout only: values are never changed, only rounded for display)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: Any, digits: int = 1) -> str:
    return "–" if is_missing(value) else f"{float(value):,.{digits}f}"


def fmt_percent(value: Any, digits: int = 1) -> str:
    return "–" if is_missing(value) else f"{100 * float(value):.{digits}f}%"


def fmt_p(value: Any) -> str:
    if is_missing(value):
        return "–"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def fmt_count(value: Any) -> str:
    return "–" if is_missing(value) else f"{int(value):d}"


# ---------------------------------------------------------------------------------------
# reproduction table


def compare(published: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """Published value beside the reproduced one, their difference and a plain verdict."""
    reproduced = estimates.set_index("estimate")
    rows = []
    for item in published.itertuples(index=False):
        estimate = reproduced.loc[item.estimate] if item.estimate in reproduced.index else None
        value = None if estimate is None else estimate[item.field]
        rows.append(
            {
                "label": item.label,
                "estimate": item.estimate,
                "field": item.field,
                "published": item.published_text,
                "published_value": item.published_value,
                "reproduced": value,
                "ci_lower": None if estimate is None else estimate["ci_lower"],
                "ci_upper": None if estimate is None else estimate["ci_upper"],
                "difference": None
                if is_missing(value) or item.comparison != "value"
                else value - item.published_value,
                "verdict": verdict(item, value),
                "kind": item.kind,
            }
        )
    return pd.DataFrame(rows)


def verdict(item: Any, value: Any) -> str:
    if is_missing(value):
        return "not computable"
    if item.comparison == "below":
        return "consistent" if value < item.published_value else "different"
    if item.comparison == "above":
        return "consistent" if value > item.published_value else "different"
    if abs(value - item.published_value) <= item.rounding / 2 + 1e-12:
        return "within published rounding"
    if abs(value - item.published_value) <= 0.15 * abs(item.published_value):
        return "close (within 15%)"
    return "different"


def display(value: Any, kind: str, digits: int = 1) -> str:
    if kind == "percent":
        return fmt_percent(value, digits)
    if kind == "count":
        return fmt_count(value)
    if kind == "p":
        return fmt_p(value)
    return fmt_number(value, digits)


def environment(folder: Path) -> jinja2.Environment:
    """Autoescaping on: category values and file names from exports are shown as text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=fmt_number, percent=fmt_percent, p=fmt_p, count=fmt_count, display=display
    )
    return env


def masked(value: Any, min_cell_count: int) -> bool:
    """A count of patients too small to show (privacy), 0 excepted: it identifies no one."""
    return not is_missing(value) and 0 < float(value) < min_cell_count


def run_date(source_date_epoch: str | None) -> str:
    """The one date the report shows: SOURCE_DATE_EPOCH when set, so that builds reproduce."""
    if source_date_epoch:
        return datetime.fromtimestamp(int(source_date_epoch), tz=UTC).date().isoformat()
    return datetime.now(tz=UTC).date().isoformat()


def svg_source(path: Path) -> str:
    """The figure as a data URI: still vector in the page and the PDF, and kept out of the
    page's own DOM, whose thousands of SVG nodes the PDF renderer would otherwise style one
    by one with the page's stylesheet (0.7 s of a 3.3 s PDF)."""
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(
    *,
    estimates: Path,
    table1: Path,
    flow: Path,
    bias: Path,
    ph_tests: Path,
    figures: Mapping[str, Path],
    validation: Path,
    provenance: Path,
    changelog: Path,
    published: Path,
    config: Mapping[str, Any],
    min_cell_count: int,
    run_date: str,
    consortium: Mapping[str, Path] | None = None,
) -> str:
    frame = read_result(estimates)
    by_id = {row.estimate: row._asdict() for row in frame.itertuples(index=False)}
    summary = json.loads(validation.read_text())
    env = environment(TEMPLATES)
    env.filters["masked"] = lambda value, fmt=fmt_count: (
        f"< {min_cell_count}" if masked(value, min_cell_count) else fmt(value)
    )
    env.tests["masked"] = lambda value: masked(value, min_cell_count)
    return env.get_template("report.html").render(
        e=by_id,
        estimates=frame.to_dict("records"),
        table1=read_result(table1).to_dict("records"),
        flow=read_result(flow).fillna({"reason": ""}).to_dict("records"),
        bias=read_result(bias).iloc[-1].to_dict(),
        ph_tests=read_result(ph_tests).to_dict("records"),
        labels=TABLE1_LABELS,
        flow_labels=FLOW_LABELS,
        reproduction=compare(read_result(published), frame).to_dict("records"),
        validation=summary,
        synthetic=summary["synthetic"],
        provenance=without_timings(json.loads(provenance.read_text())),
        changelog=json.loads(changelog.read_text()),
        config=config,
        min_cell_count=min_cell_count,
        run_date=run_date,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        svg={name: svg_source(path) for name, path in figures.items()}
        | consortium_figures(consortium),
        consortium=consortium_context(consortium, config, rows_pooled=True),
    )


def consortium_figures(files: Mapping[str, Any] | None) -> dict[str, str]:
    if not files:
        return {}
    return {Path(path).stem: svg_source(Path(path)) for path in files["pooled_figures"]}


def consortium_context(
    files: Mapping[str, Any] | None, config: Mapping[str, Any], rows_pooled: bool
) -> dict[str, Any] | None:
    """What the section on several centres shows, from the pooling's own tables."""
    if not files:
        return None
    from sinet_bm.consortium import QUANTITIES, SHORT_LABELS

    stratified = [
        ("test_os_logrank_stratified", "Log-rank of BM stratified by centre (χ²)"),
        ("test_functioning_bm_mh", "Functioning by BM, Mantel–Haenszel odds ratio"),
        ("test_sre_antiresorptive_mh", "SRE by antiresorptive therapy, Mantel–Haenszel OR"),
    ]
    if rows_pooled:
        stratified += [
            ("hr_os_bm_crude", "HR of BM, crude, all centres' rows as one"),
            ("hr_os_bm_crude_stratified", "HR of BM, crude, Cox stratified by centre"),
            ("hr_os_bm_adjusted", "HR of BM, adjusted, all centres' rows as one"),
            ("hr_os_bm_adjusted_stratified", "HR of BM, adjusted, Cox stratified by centre"),
        ]
    return {
        "rows_pooled": rows_pooled,
        "centres": read_result(files["centres"]).to_dict("records"),
        "left_out": read_result(files["left_out"]).to_dict("records"),
        "quantities": QUANTITIES,
        "short_labels": SHORT_LABELS,
        "stratified": stratified,
        "survival_months": config["pooling"]["survival_months"],
        "life_table_months": config["pooling"]["life_table_months"],
    }


def render_pooled_report(
    *,
    estimates: Path,
    consortium: Mapping[str, Any],
    provenance: Path,
    config: Mapping[str, Any],
    min_cell_count: int,
    run_date: str,
) -> str:
    """A coordinator's report: the pooled rows of the centres' bundles, nothing else."""
    frame = read_result(estimates)
    by_id = {row.estimate: row._asdict() for row in frame.itertuples(index=False)}
    env = environment(TEMPLATES)
    env.filters["masked"] = lambda value, fmt=fmt_count: (
        f"< {min_cell_count}" if masked(value, min_cell_count) else fmt(value)
    )
    context = consortium_context(consortium, config, rows_pooled=False)
    return env.get_template("pooled_report.html").render(
        e=by_id,
        estimates=frame.to_dict("records"),
        consortium=context,
        synthetic=all(r["synthetic"] for r in context["centres"]),
        provenance=without_timings(json.loads(provenance.read_text())),
        config=config,
        level=round(config["analysis"]["confidence_level"] * 100),
        run_date=run_date,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        svg=consortium_figures(consortium),
    )


def render_pdf(html: Path, pdf: Path) -> None:
    """Print the HTML page with its print stylesheet; no network, fonts from the system."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    local_only = URLFetcher(allowed_protocols={"file", "data"}, fail_on_errors=True)
    HTML(filename=str(html), base_url=str(html.parent), url_fetcher=local_only).write_pdf(str(pdf))
