"""Figures: one shared style, reproducible SVG, and the data behind each figure as CSV.

Colours are the Okabe-Ito palette (safe for colour-blind readers) and every contrast is
doubled by a line style or hatch, so that a greyscale print still tells groups apart.
Bar and forest plots are drawn from the estimate rows that estimates.csv gathers, so a
figure can never disagree with the table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sinet_bm.endpoints import populations
from sinet_bm.estimators import KaplanMeier, aalen_johansen, scaled_schoenfeld
from sinet_bm.sensitivity import sre_times
from sinet_bm.survival import COLUMNS as SURVIVAL_COLUMNS
from sinet_bm.survival import stored_adjusted_model

BLUE, ORANGE, VERMILLION, GREEN, GREY = "#0072B2", "#E69F00", "#D55E00", "#009E73", "#555555"
GROUPS = {"BM": (VERMILLION, "-", "//"), "no BM": (BLUE, "--", "")}
WIDTH_INCHES = 6.3  # A4 text width with 2 cm margins
# Beyond this many marks (censoring ticks, residuals) an artist is drawn as an embedded
# 300 dpi image: at registry scale vector marks made 10 MB figures and a 66 s PDF render.
MAX_VECTOR_MARKS = 2000
# A confidence band is drawn through the steps at which it moves by this much or more (of a
# survival axis from 0 to 1): a registry's band of 8000 steps made each curve's figure
# megabytes, and most of the report's PDF rendering.
BAND_TOLERANCE = 0.001
# Residuals drawn per panel of the β(t) figure: beyond this a registry's points only
# overlap into the same grey band, and took seconds to draw and write.
SHOWN_RESIDUALS = 20_000
# The endpoints' columns the figures draw from.
COLUMNS = (
    *SURVIVAL_COLUMNS,
    "sstr_only",
    "morphologic_visible",
    "months_to_morphologic",
    "bm_date",
    "sre",
    "first_sre_date",
    "last_followup_date",
    "antiresorptive",
    "antiresorptive_start",
)
# The report's figures, in its order, with their category in Snakemake's own report (whose
# captions are report/<figure>.rst); the workflow reads this list from here.
FIGURES = {
    "cohort_flow": "Cohort",
    "km_os_bm": "Overall survival",
    "km_os_functioning": "Overall survival",
    "morphologic_visibility": "Bone metastases",
    "bm_types": "Bone metastases",
    "sre": "Skeletal-related events",
    "cox_forest": "Overall survival",
    "subgroup_forest": "Overall survival",
    "bm_hazard_ratios": "Sensitivity analyses",
    "cif_sre": "Sensitivity analyses",
    "schoenfeld": "Overall survival",
}
# Several centres: a forest plot of each pooled quantity (consortium.QUANTITIES), and the
# pooled life table.
POOLED_FIGURES = (
    "forest_hr_os_bm_crude",
    "forest_hr_os_bm_adjusted",
    "forest_hr_os_bm_timedep",
    "forest_prop_bm",
    "forest_prop_sstr_only",
    "forest_prop_sre",
    "pooled_life_table",
)


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
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
        }
    )


def save(fig: Figure, data: pd.DataFrame, folder: Path, name: str) -> None:
    """The SVG and the numbers drawn in it, side by side."""
    data.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    fig.savefig(
        folder / f"{name}.svg", format="svg", dpi=300, metadata={"Date": None, "Creator": None}
    )
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# Kaplan-Meier curves


def km_curves(groups: dict[str, pd.DataFrame], time: str, event: str, level: float) -> pd.DataFrame:
    """Step-function data per group, with the log-log band and numbers at risk."""
    parts = []
    for label, group in groups.items():
        if group.empty:
            continue
        km = KaplanMeier(level, label).fit(group[time], group[event].astype(bool))
        table = km.event_table_
        parts.append(
            pd.DataFrame(
                {
                    "group": label,
                    "months": km.timeline_,
                    "survival": km.survival_,
                    "lower": km.lower_,
                    "upper": km.upper_,
                    "at_risk": table["at_risk"].to_numpy(),
                    "events": table["observed"].to_numpy(),
                    "censored": table["censored"].to_numpy(),
                }
            )
        )
    columns = ["group", "months", "survival", "lower", "upper", "at_risk", "events", "censored"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def visible_steps(steps: pd.DataFrame, tolerance: float = BAND_TOLERANCE) -> np.ndarray:
    """Which rows of a step table to draw: the first, the last, and each row at which a
    column moves to another `tolerance`-wide level. Every row left out shares its levels
    with the row drawn before it, so the steps drawn stay within `tolerance` of all."""
    levels = np.floor(steps.to_numpy(dtype=float) / tolerance)
    keep = np.ones(len(levels), dtype=bool)
    keep[1:-1] = (levels[1:-1] != levels[:-2]).any(axis=1)
    return keep


def step_band(
    ax: Axes, curve: pd.DataFrame, value: str, band: tuple[str, str], color: str, **line: Any
) -> None:
    """A step curve over months with its pointwise band, the band thinned by visible_steps
    (a band of every step of a large cohort would be thousands of SVG nodes)."""
    lower, upper = band
    ax.step(curve["months"], curve[value], where="post", color=color, **line)
    steps = curve[visible_steps(curve[[lower, upper]])]
    ax.fill_between(
        steps["months"],
        steps[lower],
        steps[upper],
        step="post",
        color=color,
        alpha=0.15,
        linewidth=0,
    )


def at_risk(curve: pd.DataFrame, times: np.ndarray) -> list[int]:
    """Patients still followed at each time (the risk set of the first time ≥ t)."""
    months = curve["months"].to_numpy()
    positions = np.searchsorted(months, times, side="left")
    risk = curve["at_risk"].to_numpy()
    return [int(risk[p]) if p < len(risk) else 0 for p in positions]


def os_curves_by_bm(stage_iv: pd.DataFrame, level: float) -> pd.DataFrame:
    return km_curves(
        {"BM": stage_iv[stage_iv["bm"]], "no BM": stage_iv[~stage_iv["bm"]]},
        "os_months",
        "dead",
        level,
    )


def draw_os_by_bm(ax, risk, data: pd.DataFrame, horizon: float, title: str, step: int = 24) -> None:
    """One panel of OS curves by BM status (bands, censoring ticks) over its at-risk table,
    with ticks and numbers at risk every `step` months."""
    ticks = np.arange(0, horizon + 1, step)
    for label, curve in data.groupby("group", sort=False):
        color, style, _ = GROUPS[label]
        step_band(ax, curve, "survival", ("lower", "upper"), color, linestyle=style, label=label)
        censored = curve[curve["censored"] > 0]
        ax.plot(
            censored["months"],
            censored["survival"],
            linestyle="none",
            marker="|",
            markersize=5,
            color=color,
            rasterized=len(censored) > MAX_VECTOR_MARKS,
        )
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, loc="lower left", title=title)
    labels = list(data["group"].unique())
    risk.set_xlabel("Months since diagnosis")
    risk.set_xticks(ticks)
    risk.set_xlim(-0.05 * horizon, horizon)
    risk.set_yticks(range(len(labels)), labels)
    risk.set_ylim(-0.5, len(labels) - 0.5)
    risk.tick_params(axis="y", length=0)
    risk.spines["left"].set_visible(False)
    risk.set_title("Number at risk", loc="left")
    for position, label in enumerate(labels):
        counts = at_risk(data[data["group"] == label], ticks)
        for t, n in zip(ticks, counts, strict=True):
            risk.text(
                t, position, str(n), ha="center", va="center", fontsize=8, color=GROUPS[label][0]
            )


def horizon_of(data: pd.DataFrame) -> float:
    """The x range: the last time, up to the next multiple of 24 months."""
    return float(np.ceil(max(data["months"].max(), 1) / 24) * 24) if len(data) else 24.0


def km_os_bm(endpoints: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """OS by BM status in stage IV: curves, bands, censoring ticks, numbers at risk."""
    data = os_curves_by_bm(populations(endpoints)["stage_iv"], level)
    fig, (ax, risk) = plt.subplots(
        2, 1, figsize=(WIDTH_INCHES, 4.4), height_ratios=[4, 1], sharex=True, layout="constrained"
    )
    draw_os_by_bm(ax, risk, data, horizon_of(data), "Stage IV")
    ax.set_ylabel("Overall survival")
    return fig, data


def km_os_functioning(endpoints: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """OS by BM status within functioning and non-functioning stage IV tumours, side by side
    on one time axis (section 5, the paper's title claim)."""
    pop = populations(endpoints)
    subgroups = {
        "Functioning": "stage_iv_functioning",
        "Non-functioning": "stage_iv_nonfunctioning",
    }
    parts = [
        os_curves_by_bm(pop[name], level).assign(subgroup=title)
        for title, name in subgroups.items()
    ]
    data = pd.concat(parts, ignore_index=True)
    horizon = horizon_of(data)
    fig, axes = plt.subplots(
        2,
        2,
        figsize=(WIDTH_INCHES, 4.4),
        height_ratios=[4, 1],
        sharex=True,
        sharey="row",
        layout="constrained",
    )
    for column, title in enumerate(subgroups):
        panel = data[data["subgroup"] == title]
        draw_os_by_bm(axes[0][column], axes[1][column], panel, horizon, title, step=48)
    axes[0][0].set_ylabel("Overall survival")
    return fig, data


def morphologic_visibility(endpoints: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """Cumulative share of SSTR-only BM that became morphologically visible (1 - KM)."""
    bm = populations(endpoints)["bm"]
    sstr_only = bm[bm["sstr_only"]].assign(
        visible=lambda f: f["morphologic_visible"].fillna(False).astype(bool)
    )
    data = km_curves({"SSTR-only BM": sstr_only}, "months_to_morphologic", "visible", level)
    data = data.assign(
        visible_share=1 - data["survival"],
        lower_share=1 - data["upper"],
        upper_share=1 - data["lower"],
    )
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES * 0.62, 2.8), layout="constrained")
    if len(data):
        step_band(ax, data, "visible_share", ("lower_share", "upper_share"), BLUE)
        ax.axhline(0.5, color=GREY, linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Months since BM were first seen on SSTR imaging")
    ax.set_ylabel("Morphologically visible")
    return fig, data


# ---------------------------------------------------------------------------------------
# from estimates.csv


def estimate_rows(estimates: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The estimates a figure shows, in the figure's order, with their labels."""
    rows = estimates.set_index("estimate").reindex(list(labels))
    return rows.assign(label=list(labels.values())).reset_index()


def share_bars(data: pd.DataFrame, xlabel: str, colors: list[str], hatches: list[str]) -> Figure:
    """Horizontal bars of proportions with their exact CIs, labelled n."""
    fig, ax = plt.subplots(
        figsize=(WIDTH_INCHES * 0.75, 0.45 * len(data) + 0.9), layout="constrained"
    )
    positions = np.arange(len(data))[::-1]
    values = data["value"].fillna(0).to_numpy()
    errors = np.vstack([values - data["ci_lower"].fillna(0), data["ci_upper"].fillna(0) - values])
    ax.barh(
        positions,
        values,
        color=colors,
        hatch=hatches,
        edgecolor="black",
        linewidth=0.5,
        xerr=errors,
        error_kw={"elinewidth": 0.8, "capsize": 2},
    )
    ax.set_yticks(
        positions, [f"{label} (n = {n})" for label, n in zip(data["label"], data["n"], strict=True)]
    )
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel(xlabel)
    return fig


def ci_label(what: str, level: float, scale: str = "") -> str:
    """An axis label that names the interval drawn, at the configured level; long ones on
    two lines, so that a narrow figure does not cut them off."""
    interval = f"({level:.0%} CI{', ' + scale if scale else ''})"
    return f"{what} {interval}" if len(what) + len(interval) < 42 else f"{what}\n{interval}"


def bm_types(estimates: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    data = estimate_rows(
        estimates,
        {
            "prop_osteoblastic": "Osteoblastic",
            "prop_osteolytic": "Osteolytic",
            "prop_mixed": "Mixed",
        },
    )
    fig = share_bars(
        data, ci_label("Share of BM patients", level), [BLUE, VERMILLION, ORANGE], ["", "//", ".."]
    )
    return fig, data


def sre(estimates: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    data = estimate_rows(
        estimates,
        {
            "prop_sre_osteoblastic": "Osteoblastic",
            "prop_sre_osteolytic": "Osteolytic",
            "prop_sre_mixed": "Mixed",
            "prop_sre_antiresorptive": "Antiresorptive therapy",
            "prop_sre_no_antiresorptive": "No antiresorptive therapy",
        },
    )
    fig = share_bars(
        data,
        ci_label("BM patients with an SRE", level),
        [BLUE, VERMILLION, ORANGE, GREEN, GREY],
        ["", "//", "..", "xx", "\\\\"],
    )
    return fig, data


def forest(data: pd.DataFrame, xlabel: str) -> Figure:
    """Hazard ratios with their CIs on a log axis; rows without an estimate stay labelled."""
    fig, ax = plt.subplots(
        figsize=(WIDTH_INCHES * 0.75, 0.35 * len(data) + 0.8), layout="constrained"
    )
    shown = data.dropna(subset=["value"])
    positions = np.arange(len(data))[::-1][data["value"].notna().to_numpy()]
    ax.errorbar(
        shown["value"],
        positions,
        xerr=[shown["value"] - shown["ci_lower"], shown["ci_upper"] - shown["value"]],
        fmt="s",
        color="black",
        markersize=4,
        elinewidth=0.8,
        capsize=2,
    )
    ax.axvline(1, color=GREY, linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(plt.FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8, 16]))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_yticks(np.arange(len(data))[::-1], data["label"])
    # at the axis' right end: long row labels push the axis right, and a centred label
    # would then run off the figure
    ax.set_xlabel(xlabel, loc="right")
    return fig


def cox_forest(estimates: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """Hazard ratios of OS, crude and adjusted, on a log axis."""
    data = estimate_rows(
        estimates,
        {
            "hr_os_bm_crude": "BM (crude)",
            "hr_os_bm_adjusted": "BM (adjusted)",
            "hr_os_age_adjusted": "Age, per year",
            "hr_os_male_adjusted": "Male",
            "hr_os_g2_adjusted": "G2 vs G1",
            "hr_os_g3_adjusted": "G3 vs G1",
        },
    )
    return forest(data, ci_label("Hazard ratio of death", level, "log scale")), data


def bm_hazard_ratios(estimates: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """The BM hazard ratio under each design: from diagnosis, time-dependent, by landmark."""
    landmarks = sorted(
        (e for e in estimates["estimate"] if e.startswith("hr_os_bm_landmark_")),
        key=lambda e: float(e.rsplit("_", 1)[1]),
    )
    labels = {
        "hr_os_bm_crude": "BM ever, crude",
        "hr_os_bm_adjusted": "BM ever, adjusted",
        "hr_os_bm_timedep": "BM time-dependent, adjusted",
        **{e: f"Landmark {e.rsplit('_', 1)[1]} months" for e in landmarks},
    }
    data = estimate_rows(estimates, labels)
    return forest(data, ci_label("Hazard ratio of death for BM", level, "log scale")), data


def subgroup_forest(estimates: pd.DataFrame, level: float) -> tuple[Figure, pd.DataFrame]:
    """The adjusted BM hazard ratio in all stage IV patients and within functioning and
    non-functioning tumours, and their ratio from the interaction model."""
    data = estimate_rows(
        estimates,
        {
            "hr_os_bm_adjusted": "Stage IV, all",
            "hr_os_bm_adjusted_functioning": "Functioning tumours",
            "hr_os_bm_adjusted_nonfunctioning": "Non-functioning tumours",
            "test_bm_functioning_interaction": "Ratio, functioning / non-functioning",
        },
    )
    data["label"] = [
        f"{label} (n = {n})" if pd.notna(n) else label
        for label, n in zip(data["label"], data["n"], strict=True)
    ]
    xlabel = ci_label("Adjusted hazard ratio of death for BM", level, "log scale")
    return forest(data, xlabel), data


def cif_sre(endpoints: pd.DataFrame, days_per_month: float) -> tuple[Figure, pd.DataFrame]:
    """Cumulative incidence of a first SRE from the BM date, death competing."""
    times = sre_times(populations(endpoints)["bm"], days_per_month)
    parts = []
    for arm, label in ((True, "Antiresorptive therapy"), (False, "No antiresorptive therapy")):
        group = times[times["antiresorptive"] == arm]
        curve = aalen_johansen(group["time"].to_numpy(), group["cause"].to_numpy())
        start = pd.DataFrame({"time": [0.0], "cif": [0.0], "at_risk": [len(group)]})
        parts.append(pd.concat([start, curve], ignore_index=True).assign(group=label))
    data = pd.concat(parts, ignore_index=True)
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES * 0.62, 2.8), layout="constrained")
    for (label, curve), (color, style) in zip(
        data.groupby("group", sort=False), ((GREEN, "--"), (VERMILLION, "-")), strict=True
    ):
        ax.step(
            curve["time"], curve["cif"], where="post", color=color, linestyle=style, label=label
        )
    ax.set_ylim(0, max(0.1, float(data["cif"].max()) * 1.2))
    ax.set_xlabel("Months since the BM date")
    ax.set_ylabel("Cumulative incidence of SRE")
    ax.legend(frameon=False, loc="upper left")
    return fig, data


def schoenfeld(endpoints: pd.DataFrame, model: Mapping[str, Any]) -> tuple[Figure, pd.DataFrame]:
    """β(t) of each covariate of the adjusted model (`model`, as estimate_survival fitted
    it) against KM-transformed time: a flat band of decile means around β is what
    proportional hazards look like. The decile means are of every death; of the residuals
    themselves at most SHOWN_RESIDUALS are drawn, evenly spaced in time order."""
    fit = stored_adjusted_model(model, populations(endpoints)["stage_iv"])
    if fit.fitter is None:
        fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 1.0), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, f"No adjusted model: {fit.failure}", ha="center", va="center")
        return fig, pd.DataFrame()
    data = scaled_schoenfeld(fit)
    terms = list(fit.fitter.params_.index)
    columns = 3
    rows = int(np.ceil(len(terms) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(WIDTH_INCHES, 2.0 * rows), layout="constrained", squeeze=False
    )
    bins = pd.qcut(data["km_time"].rank(method="first"), q=min(10, len(data)), labels=False)
    shown = data.iloc[evenly_spaced(len(data), SHOWN_RESIDUALS)]
    for ax, term in zip(axes.flat, terms, strict=False):
        means = data.groupby(bins).agg(x=("km_time", "mean"), y=(term, "mean"))
        ax.scatter(
            shown["km_time"],
            shown[term],
            s=4,
            color=GREY,
            alpha=0.4,
            linewidths=0,
            rasterized=len(shown) > MAX_VECTOR_MARKS,
        )
        ax.plot(means["x"], means["y"], color=BLUE, marker="o", markersize=3)
        ax.axhline(float(fit.fitter.params_[term]), color=VERMILLION, linestyle="--", linewidth=0.8)
        ax.set_title(term)
        ax.set_xlabel("1 - KM(t)")
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("β(t)")
    return fig, shown


def evenly_spaced(size: int, most: int) -> np.ndarray:
    """Positions of at most `most` of `size` items, evenly spaced, first and last kept."""
    if size <= most:
        return np.arange(size)
    return np.unique(np.round(np.linspace(0, size - 1, most)).astype(int))


# ---------------------------------------------------------------------------------------
# the cohort flow diagram


TOP, BOTTOM = (0.5, 1.0), (0.5, 0.0)


def cohort_flow(flow: pd.DataFrame) -> tuple[Figure, pd.DataFrame]:
    """Exported → excluded → eligible → stage IV → BM / no BM, and SREs left out."""
    flow = flow.fillna({"reason": ""})
    count = {(row.step, row.reason): int(row.patients) for row in flow.itertuples()}
    excluded = flow[flow["step"] == "excluded"]
    left_out = flow[flow["step"] == "sre_left_out"]
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.4), layout="constrained")
    ax.set_xlim(0, 10)
    ax.set_ylim(1.5, 10)
    ax.axis("off")
    box = {
        "boxstyle": "round,pad=0.4",
        "facecolor": "white",
        "edgecolor": "black",
        "linewidth": 0.8,
    }
    side = {**box, "facecolor": "#f2f2f2", "linestyle": "--"}
    arrow = {"arrowstyle": "-|>", "color": "black", "linewidth": 0.8, "shrinkA": 0, "shrinkB": 0}

    def node(x: float, y: float, text: str, style: dict, size: float = 9) -> Artist:
        label = ax.text(x, y, text, ha="center", va="center", bbox=style, fontsize=size, zorder=3)
        return label.get_bbox_patch()

    def link(start: Artist, at: tuple[float, float], end: Artist, to: tuple[float, float]):
        """An arrow between two points given as fractions of two boxes' extents, placed when
        the figure is drawn, so that it meets the box whatever the text's size."""
        ax.annotate("", to, at, xycoords=end, textcoords=start, arrowprops=arrow, zorder=1)

    column = 3.0
    exported = node(column, 9.2, f"Patients exported\nn = {count[('exported', '')]}", box)
    eligible = node(column, 6.6, f"Eligible\nn = {count[('eligible', '')]}", box)
    stage_iv = node(column, 4.5, f"Stage IV at diagnosis\nn = {count[('stage_iv', '')]}", box)
    link(exported, BOTTOM, eligible, TOP)
    link(eligible, BOTTOM, stage_iv, TOP)
    reasons = "\n".join(f"{row.reason}: {int(row.patients)}" for row in excluded.itertuples())
    excluded_box = node(7.3, 7.9, f"Excluded\n{reasons}", side, 8.5)
    # from the line between the first two boxes to the left edge of the exclusions' box
    ax.annotate(
        "",
        (0, 0.5),
        (column, 7.9),
        xycoords=excluded_box,
        textcoords="data",
        arrowprops=arrow,
        zorder=1,
    )
    for x, key, label in ((1.6, "bm", "With BM"), (4.4, "no_bm", "Without BM")):
        group = node(x, 2.3, f"{label}\nn = {count[(key, '')]}", box)
        link(stage_iv, BOTTOM, group, TOP)
    lines = "\n".join(f"{row.reason}: {int(row.events)}" for row in left_out.itertuples())
    node(7.6, 4.0, f"SREs left out (events)\n{lines}", side, 8)
    return fig, flow


def figure_makers(
    endpoints: pd.DataFrame,
    estimates: pd.DataFrame,
    flow: pd.DataFrame,
    model: Mapping[str, Any],
    level: float,
    days_per_month: float,
) -> dict[str, Callable[[], tuple[Figure, pd.DataFrame]]]:
    """How to draw each figure of FIGURES from the study's data and estimates."""
    return {
        "cohort_flow": lambda: cohort_flow(flow),
        "km_os_bm": lambda: km_os_bm(endpoints, level),
        "km_os_functioning": lambda: km_os_functioning(endpoints, level),
        "morphologic_visibility": lambda: morphologic_visibility(endpoints, level),
        "bm_types": lambda: bm_types(estimates, level),
        "sre": lambda: sre(estimates, level),
        "cox_forest": lambda: cox_forest(estimates, level),
        "subgroup_forest": lambda: subgroup_forest(estimates, level),
        "bm_hazard_ratios": lambda: bm_hazard_ratios(estimates, level),
        "cif_sre": lambda: cif_sre(endpoints, days_per_month),
        "schoenfeld": lambda: schoenfeld(endpoints, model),
    }


def plot_figures(
    endpoints: pd.DataFrame,
    estimates: pd.DataFrame,
    flow: pd.DataFrame,
    model: Mapping[str, Any],
    level: float,
    days_per_month: float,
    folder: Path,
) -> None:
    """Every figure of the report, each as SVG plus the CSV of what it draws."""
    figure_style()
    folder.mkdir(parents=True, exist_ok=True)
    makers = figure_makers(endpoints, estimates, flow, model, level, days_per_month)
    for name in FIGURES:
        fig, data = makers[name]()
        save(fig, data, folder, name)


# ---------------------------------------------------------------------------------------
# several centres


def diamond(ax, y: float, centre: float, lower: float, upper: float, color: str) -> None:
    ax.fill([lower, centre, upper, centre], [y, y + 0.3, y, y - 0.3], color=color, linewidth=0)


def meta_forest(
    inputs: pd.DataFrame, pooled: pd.DataFrame, quantity: str, label: str, level: float
) -> tuple[Figure, pd.DataFrame]:
    """Each centre's estimate and CI (square sized by its random-effects weight, else its
    fixed-effect one), then the fixed- and random-effects diamonds and the prediction
    interval; centres left out stay listed with the reason."""
    centres = inputs[inputs["quantity"] == quantity].reset_index(drop=True)
    by_id = pooled.set_index("estimate")
    weight = centres["weight_re"].fillna(centres["weight_fe"])
    rows = [
        f"{c}  ({w:.0%})" if pd.notna(w) else f"{c}  (left out)"
        for c, w in zip(centres["centre"], weight, strict=True)
    ]
    summary = {"fe": "Fixed effect", "re": "Random effects", "re_pi": "Prediction interval"}
    labels = rows + list(summary.values())
    fig, ax = plt.subplots(
        figsize=(WIDTH_INCHES * 0.8, 0.32 * len(labels) + 1.0), layout="constrained"
    )
    ys = np.arange(len(labels))[::-1].astype(float)
    used = weight.notna().to_numpy()
    ax.errorbar(
        centres.loc[used, "value"],
        ys[: len(rows)][used],
        xerr=[
            (centres["value"] - centres["ci_lower"])[used],
            (centres["ci_upper"] - centres["value"])[used],
        ],
        fmt="none",
        ecolor="black",
        elinewidth=0.8,
        capsize=2,
    )
    ax.scatter(
        centres.loc[used, "value"],
        ys[: len(rows)][used],
        s=20 + 200 * weight[used].to_numpy(),
        marker="s",
        color="black",
        zorder=3,
    )
    drawn = []
    for offset, (part, name) in enumerate(summary.items()):
        y = ys[len(rows) + offset]
        record = by_id.loc[f"{quantity}_{part}"]
        drawn.append({"row": name, **record[["value", "ci_lower", "ci_upper"]].to_dict()})
        if pd.isna(record["value"]):
            continue
        if part == "re_pi":
            ax.hlines(y, record["ci_lower"], record["ci_upper"], color=ORANGE, linewidth=2)
        else:
            color = BLUE if part == "fe" else VERMILLION
            diamond(ax, y, record["value"], record["ci_lower"], record["ci_upper"], color)
    ratio = quantity.startswith("hr_")
    if ratio:
        ax.axvline(1, color=GREY, linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(plt.FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32]))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(plt.NullLocator())
    else:
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_yticks(ys, labels)
    tau2, i2 = by_id.loc[f"{quantity}_tau2", "value"], by_id.loc[f"{quantity}_i2", "value"]
    q, q_p = by_id.loc[f"{quantity}_q", ["value", "p_value"]]
    heterogeneity = (
        f"τ² {tau2:.3g}, I² {i2:.0%}, Q {q:.2f} (p {q_p:.2g})"
        if pd.notna(tau2)
        else "heterogeneity not estimable"
    )
    ax.set_title(f"{label}\n{heterogeneity}", loc="left")
    what = "Hazard ratio" if ratio else "Proportion"
    ax.set_xlabel(ci_label(what, level, "log scale" if ratio else ""), loc="right")
    data = pd.concat(
        [centres.assign(row=centres["centre"], weight=weight), pd.DataFrame(drawn)],
        ignore_index=True,
    )
    return fig, data[["row", "value", "ci_lower", "ci_upper", "weight"]]


def pooled_life_table(life_table: pd.DataFrame) -> tuple[Figure, pd.DataFrame]:
    """Pooled actuarial survival by BM: S at the end of each interval, as steps."""
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES * 0.8, 3.2), layout="constrained")
    names = {"bm": "BM", "no_bm": "no BM"}
    for group, part in life_table.groupby("group", sort=False):
        color, style, _ = GROUPS[names[group]]
        months = np.concatenate([[0.0], part["end"].to_numpy(float)])
        survival = np.concatenate([[1.0], part["survival"].to_numpy(float)])
        ax.step(months, survival, where="post", color=color, linestyle=style, label=names[group])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Months since diagnosis")
    ax.set_ylabel("Overall survival (pooled life table)")
    ax.legend(frameon=False)
    return fig, life_table


def plot_pooled(
    inputs: pd.DataFrame,
    pooled: pd.DataFrame,
    life_table: pd.DataFrame,
    labels: Mapping[str, str],
    level: float,
    folder: Path,
) -> None:
    """The forest plot of every pooled quantity and the pooled life table."""
    figure_style()
    folder.mkdir(parents=True, exist_ok=True)
    for quantity, label in labels.items():
        fig, data = meta_forest(inputs, pooled, quantity, label, level)
        save(fig, data, folder, f"forest_{quantity}")
    fig, data = pooled_life_table(life_table)
    save(fig, data, folder, "pooled_life_table")
