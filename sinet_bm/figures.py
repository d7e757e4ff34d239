"""Figures: one shared style, reproducible SVG, and the data behind each figure as CSV."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from sinet_bm.models import kaplan_meier, populations

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
