"""Figures and the HTML study report.

The template only lays numbers out; every number it shows is read from a result file of the
pipeline (estimates.csv, Table 1, the validation summary). Published values are data
(`resources/published.csv`), compared with the reproduced ones here, never typed into the
template.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from sinet_bm.models import kaplan_meier, populations, read_result

TABLE1_LABELS = {
    "age_years": "Age at diagnosis, years",
    "ki67_percent": "Ki-67, %",
    "sex": "Sex",
    "primary_site": "Primary site",
    "grade": "Grade (WHO 2019)",
    "functioning": "Functioning tumour",
}
PALETTE = {"BM": "#D55E00", "no BM": "#0072B2"}
LINESTYLES = {"BM": "-", "no BM": "--"}


def figure_style() -> None:
    """One look for every figure; fixed SVG ids and no date so that files are reproducible."""
    sns.set_theme(context="paper", style="ticks", font="DejaVu Sans")
    plt.rcParams.update(
        {
            "svg.hashsalt": "sinet-bm",
            "svg.fonttype": "none",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
        }
    )


def km_curve_data(endpoints: pd.DataFrame, level: float) -> pd.DataFrame:
    """Step-function data of OS by BM status in stage IV, with band and numbers at risk."""
    stage_iv = populations(endpoints)["stage_iv"]
    parts = []
    for label, group in (("BM", stage_iv[stage_iv["bm"]]), ("no BM", stage_iv[~stage_iv["bm"]])):
        if group.empty:
            continue
        km = kaplan_meier(group["os_months"], group["dead"].astype(bool), level, label)
        table = km.fitter.event_table
        band = km.fitter.confidence_interval_survival_function_
        parts.append(
            pd.DataFrame(
                {
                    "group": label,
                    "months": km.fitter.survival_function_.index.to_numpy(),
                    "survival": km.fitter.survival_function_.iloc[:, 0].to_numpy(),
                    "lower": band.iloc[:, 0].to_numpy(),
                    "upper": band.iloc[:, 1].to_numpy(),
                    "at_risk": table["at_risk"].to_numpy(),
                    "deaths": table["observed"].to_numpy(),
                    "censored": table["censored"].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def at_risk(curve: pd.DataFrame, times: np.ndarray) -> list[int]:
    """Numbers at risk just after each time (patients with follow-up ≥ t)."""
    counts = []
    for t in times:
        later = curve[curve["months"] >= t]
        counts.append(int(later["at_risk"].iloc[0]) if len(later) else 0)
    return counts


def plot_os_by_bm(endpoints: pd.DataFrame, level: float, svg_path: str, csv_path: str) -> None:
    data = km_curve_data(endpoints, level)
    data.to_csv(csv_path, index=False, lineterminator="\n")
    figure_style()
    fig, (ax, risk) = plt.subplots(
        2, 1, figsize=(6.3, 4.4), height_ratios=[4, 1], sharex=True, layout="constrained"
    )
    horizon = float(np.ceil(data["months"].max() / 24) * 24) if len(data) else 24.0
    ticks = np.arange(0, horizon + 1, 24)
    for label, curve in data.groupby("group", sort=False):
        color = PALETTE[label]
        ax.step(
            curve["months"],
            curve["survival"],
            where="post",
            color=color,
            linestyle=LINESTYLES[label],
            label=label,
        )
        ax.fill_between(
            curve["months"],
            curve["lower"],
            curve["upper"],
            step="post",
            color=color,
            alpha=0.15,
            linewidth=0,
        )
        censored = curve[curve["censored"] > 0]
        ax.plot(
            censored["months"],
            censored["survival"],
            linestyle="none",
            marker="|",
            markersize=5,
            color=color,
        )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Overall survival")
    ax.legend(frameon=False, loc="lower left", title="Stage IV")
    risk.set_xlabel("Months since diagnosis")
    risk.set_xticks(ticks)
    risk.set_xlim(0, horizon)
    labels = list(data["group"].unique())
    risk.set_yticks(range(len(labels)), labels)
    risk.set_ylim(-0.5, len(labels) - 0.5)
    risk.tick_params(axis="y", length=0)
    risk.spines["left"].set_visible(False)
    for position, label in enumerate(labels):
        counts = at_risk(data[data["group"] == label], ticks)
        for t, n in zip(ticks, counts, strict=True):
            risk.text(
                t, position, str(n), ha="center", va="center", fontsize=8, color=PALETTE[label]
            )
    risk.set_title("Number at risk", fontsize=8, loc="left")
    fig.savefig(svg_path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


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
    if abs(value - item.published_value) <= item.rounding / 2 + 1e-12:
        return "within published rounding"
    if abs(value - item.published_value) <= 0.15 * abs(item.published_value):
        return "close (within 15%)"
    return "different"


def display(value: Any, kind: str) -> str:
    return {"percent": fmt_percent, "count": fmt_count, "p": fmt_p}.get(kind, fmt_number)(value)


# ---------------------------------------------------------------------------------------
# the page


def render_report(
    *,
    estimates: Path,
    table1: Path,
    km_figure: Path,
    validation: Path,
    published: Path,
    template: Path,
    config: Mapping[str, Any],
) -> str:
    frame = read_result(estimates)
    by_id = {row.estimate: row._asdict() for row in frame.itertuples(index=False)}
    summary = json.loads(validation.read_text())
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        number=fmt_number, percent=fmt_percent, p=fmt_p, count=fmt_count, display=display
    )
    svg = km_figure.read_text(encoding="utf-8")
    return environment.get_template(template.name).render(
        e=by_id,
        estimates=frame.to_dict("records"),
        table1=read_result(table1).to_dict("records"),
        labels=TABLE1_LABELS,
        reproduction=compare(read_result(published), frame).to_dict("records"),
        validation=summary,
        synthetic=summary["synthetic"],
        config=config,
        km_svg=svg[svg.index("<svg") :],
    )
