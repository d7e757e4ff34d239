"""Several centres (docs/estimates.md, section 6): their rows as one cohort, and the pooled
rows from their bundles.

The pooled rows are computed from the centres' bundles only, whether the bundles were
written a moment ago by this run's per-centre steps (rows may be pooled) or sent by the
centres to a coordinator (only aggregates may leave): one code path, so the two ways give
the same numbers. The union of the centres' rows is analysed by the single-centre steps
as if it were one centre; only the Cox models stratified by centre need it to be several.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sinet_bm.bundle import (
    HAZARD_RATIOS,
    PROPORTIONS,
    TABLES,
    Bundle,
    life_table_of,
    logrank_of,
)
from sinet_bm.pooling import (
    LifeTable,
    MantelHaenszel,
    MetaAnalysis,
    expit,
    log_hazard_ratios,
    logit_proportions,
    pool_life_tables,
    stratified_logrank,
)
from sinet_bm.results import Row, row

POPULATION = "pooled"
GROUPS = {"bm": "surv_os_bm", "no_bm": "surv_os_no_bm"}
# What each pooled quantity is, for the forest plots and the report.
QUANTITIES = {
    "hr_os_bm_crude": "HR of death, BM vs no BM (crude)",
    "hr_os_bm_adjusted": "HR of death, BM vs no BM (adjusted)",
    "hr_os_bm_timedep": "HR of death, BM as time-dependent",
    "prop_bm": "BM in stage IV",
    "prop_sstr_only": "SSTR-only BM at detection",
    "prop_sre": "Skeletal-related event in BM",
}
# The same, short, for the report's table.
SHORT_LABELS = {
    "hr_os_bm_crude": "HR, crude",
    "hr_os_bm_adjusted": "HR, adjusted",
    "hr_os_bm_timedep": "HR, time-dep.",
    "prop_bm": "BM",
    "prop_sstr_only": "SSTR-only",
    "prop_sre": "SRE",
}


# ---------------------------------------------------------------------------------------
# the union of the centres' rows


def union_endpoints(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """All centres' patients in one table: a patient is the pair centre + patient_id, so
    the same id in two centres stays two patients ("essen:P001", "kiel:P001")."""
    parts = []
    for centre, frame in frames.items():
        part = frame.copy()
        part["patient_id"] = centre + ":" + part["patient_id"].astype(str)
        part.insert(0, "centre", centre)
        parts.append(part)
    union = pd.concat(parts, ignore_index=True)
    union["centre"] = pd.Categorical(union["centre"], categories=list(frames))
    return union


def union_summary(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The validation summaries as one, each export named by its centre."""
    files = {
        f"{centre}/{table}": dict(record) | {"name": f"{centre}/{record['name']}"}
        for centre, summary in summaries.items()
        for table, record in summary["files"].items()
    }
    by_check: dict[str, int] = {}
    by_severity = {"error": 0, "warning": 0}
    for summary in summaries.values():
        for check, number in summary["findings"]["by_check"].items():
            by_check[check] = by_check.get(check, 0) + number
        for severity, number in summary["findings"]["by_severity"].items():
            by_severity[severity] = by_severity.get(severity, 0) + number
    first = next(iter(summaries.values()))
    return {
        "checks": first["checks"],
        "files": files,
        "findings": {"by_check": dict(sorted(by_check.items())), "by_severity": by_severity},
        "synthetic": all(summary["synthetic"] for summary in summaries.values()),
    }


# ---------------------------------------------------------------------------------------
# the centres' inputs to each pooling


@dataclass(frozen=True)
class Inputs:
    """One pooled quantity's inputs: per centre its estimate (y, v on the analysis scale,
    the reported value and CI), the patients it rests on, and why a centre is left out."""

    quantity: str
    frame: pd.DataFrame  # centre, n, value, ci_lower, ci_upper, y, v, left_out

    @property
    def used(self) -> pd.DataFrame:
        return self.frame[self.frame["left_out"] == ""]


def hazard_ratio_inputs(bundles: Sequence[Bundle], name: str) -> Inputs:
    """Each centre's log HR, its variance from the width of its Wald CI at its own level."""
    records = []
    for bundle in bundles:
        record = bundle.content["hazard_ratios"][name]
        entry = {"centre": bundle.centre, "n": record.get("n", 0), "left_out": ""}
        if "withheld" in record:
            entry["left_out"] = f"withheld by the centre ({record['withheld']})"
        elif "missing" in record:
            entry["left_out"] = f"no estimate ({record['missing']})"
        else:
            (y,), (v,) = log_hazard_ratios(
                [record["hr"]],
                [record["ci"][0]],
                [record["ci"][1]],
                bundle.content["confidence_level"],
            )
            entry |= {
                "value": record["hr"],
                "ci_lower": record["ci"][0],
                "ci_upper": record["ci"][1],
                "y": y,
                "v": v,
            }
            if not (np.isfinite(y) and np.isfinite(v) and v > 0):
                entry["left_out"] = "no finite estimate"
        records.append(entry)
    return Inputs(name, inputs_frame(records))


def proportion_inputs(bundles: Sequence[Bundle], name: str, level: float) -> Inputs:
    """Each centre's x of m on the logit scale; its CI, for the forest plot, is the Wald
    interval on that scale, the one the meta-analysis weighs it by."""
    z = float(stats.norm.ppf((1 + level) / 2))
    records = []
    for bundle in bundles:
        record = bundle.content["proportions"][name]
        entry = {"centre": bundle.centre, "n": record.get("m", 0), "left_out": ""}
        if "withheld" in record:
            entry["left_out"] = f"withheld by the centre ({record['withheld']})"
        elif record["m"] == 0:
            entry["left_out"] = "no patients in the denominator"
        else:
            (y,), (v,) = logit_proportions([record["x"]], [record["m"]])
            half = z * math.sqrt(v)
            entry |= {
                "value": record["x"] / record["m"],
                "ci_lower": float(expit(y - half)),
                "ci_upper": float(expit(y + half)),
                "y": y,
                "v": v,
            }
        records.append(entry)
    return Inputs(name, inputs_frame(records))


def inputs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["centre", "n", "value", "ci_lower", "ci_upper", "y", "v", "left_out"]
    frame = pd.DataFrame(records, columns=columns)
    frame["n"] = frame["n"].astype("int64")
    return frame


# ---------------------------------------------------------------------------------------
# the pooled rows


def meta_rows(inputs: Inputs, level: float, back: Any) -> tuple[list[Row], MetaAnalysis]:
    """The six rows of one quantity's meta-analysis, back-transformed by `back`."""
    used = inputs.used
    fit = MetaAnalysis.fit(used["y"].to_numpy(float), used["v"].to_numpy(float), level)
    name, n, k = inputs.quantity, int(used["n"].sum()), fit.k
    percent = f"{level:.0%}"
    out = inputs.frame[inputs.frame["left_out"] != ""]
    note = note_of(list(zip(out["centre"], out["left_out"], strict=True)))
    what = f"meta-analysis of {k} centre{'s' if k != 1 else ''}"
    rows = []
    if fit.fixed is None:
        reason = f"not computable: {fit.reason}{note}"
        return [
            row(f"{name}_{part}", POPULATION, n, method=reason)
            for part in ("fe", "re", "re_pi", "tau2", "i2", "q")
        ], fit
    estimate, lower, upper = fit.fixed.transformed(back)
    rows.append(
        row(
            f"{name}_fe",
            POPULATION,
            n,
            estimate,
            (lower, upper),
            fit.fixed.p,
            f"{what}, inverse-variance fixed effect; z {percent} CI and p{note}",
        )
    )
    if fit.random is None:
        reason = f"not computable: {fit.reason}{note}"
        rows += [
            row(f"{name}_{part}", POPULATION, n, method=reason)
            for part in ("re", "re_pi", "tau2", "i2")
        ]
    else:
        estimate, lower, upper = fit.random.transformed(back)
        rows.append(
            row(
                f"{name}_re",
                POPULATION,
                n,
                estimate,
                (lower, upper),
                fit.random.p,
                f"{what}, random effects, REML tau2; Knapp-Hartung {percent} CI and "
                f"p (t, {k - 1} df){note}",
            )
        )
        pi = (back(fit.prediction[0]), back(fit.prediction[1]))
        rows.append(
            row(
                f"{name}_re_pi",
                POPULATION,
                n,
                estimate,
                pi,
                method=f"{what}, random effects; {percent} prediction interval "
                f"(t, {k - 1} df){note}",
            )
        )
        rows.append(
            row(
                f"{name}_tau2",
                POPULATION,
                n,
                fit.tau2,
                method=f"{what}: between-centre variance tau2 (REML), on the "
                f"{'log' if back is math.exp else 'logit'} scale{note}",
            )
        )
        rows.append(
            row(
                f"{name}_i2",
                POPULATION,
                n,
                fit.i2,
                method=f"{what}: I2 = tau2 / (tau2 + s2), a fraction{note}",
            )
        )
    rows.append(
        row(
            f"{name}_q",
            POPULATION,
            k,
            fit.q,
            p_value=fit.q_p,
            method=f"{what}: Cochran's Q, p from chi-square ({max(k - 1, 0)} df){note}",
        )
    )
    return rows, fit


LeftOut = list[tuple[str, str]]  # (centre, why)


def note_of(out: LeftOut) -> str:
    return "; left out: " + ", ".join(f"{c} ({why})" for c, why in out) if out else ""


def logrank_row(bundles: Sequence[Bundle]) -> tuple[Row, LeftOut]:
    used, out, n = [], [], 0
    for bundle in bundles:
        contribution = logrank_of(bundle)
        if contribution is None:
            out.append(
                (bundle.centre, f"withheld by the centre ({bundle.content['logrank']['withheld']})")
            )
        else:
            used.append(contribution)
            n += bundle.content["logrank"]["n"]
    note = note_of(out)
    test = stratified_logrank(used)
    what = f"log-rank of BM stratified by centre ({len(used)} centres), (sum(O - E))^2 / sum V"
    if test.statistic is None:
        return row(
            "test_os_logrank_stratified", POPULATION, n, method=f"{what}: {test.reason}{note}"
        ), out
    return row(
        "test_os_logrank_stratified",
        POPULATION,
        n,
        test.statistic,
        p_value=test.p,
        method=f"{what}; chi-square, 1 df{note}",
    ), out


def mantel_haenszel_row(bundles: Sequence[Bundle], name: str, level: float) -> tuple[Row, LeftOut]:
    tables, out, n = [], [], 0
    for bundle in bundles:
        table = bundle.content["tables"][name]
        if isinstance(table, dict):
            out.append((bundle.centre, f"withheld by the centre ({table['withheld']})"))
        else:
            tables.append(table)
            n += int(np.sum(table))
    note = note_of(out)
    estimate = f"{name}_mh"
    if not tables:
        return row(estimate, POPULATION, n, method=f"not computable: no table{note}"), out
    fit = MantelHaenszel.fit(tables, level)
    what = (
        f"Mantel-Haenszel odds ratio over {fit.tables} centres' 2x2 tables, "
        f"Robins-Breslow-Greenland {level:.0%} CI; Cochran-Mantel-Haenszel test with "
        "continuity correction"
    )
    reason = f" ({fit.reason})" if fit.reason else ""
    return row(
        estimate,
        POPULATION,
        n,
        fit.odds_ratio,
        fit.ci or (None, None),
        fit.p,
        f"{what}{reason}{note}",
    ), out


def regular(record: Mapping[str, Any]) -> bool:
    """A life table on the fixed grid (not merged for disclosure control)."""
    return "disclosure" not in record or record["disclosure"] == "no interval merged"


def pooled_life_table(
    bundles: Sequence[Bundle], group: str
) -> tuple[LifeTable | None, int, LeftOut]:
    """The summed counts of the centres whose table is on the common grid."""
    tables, out, n = [], [], 0
    for bundle in bundles:
        record = life_table_of(bundle, group)
        if record is None:
            reason = bundle.content["life_tables"][group]["withheld"]
            out.append((bundle.centre, f"withheld by the centre ({reason})"))
        elif not regular(record):
            out.append(
                (bundle.centre, f"intervals merged for disclosure control ({record['disclosure']})")
            )
        else:
            tables.append(
                LifeTable(
                    float(record["width"]),
                    np.asarray(record["at_risk"]),
                    np.asarray(record["deaths"]),
                    np.asarray(record["censored"]),
                )
            )
            n += record["n"]
    return (pool_life_tables(tables) if tables else None), n, out


def life_table_rows(
    bundles: Sequence[Bundle], months: Sequence[float]
) -> tuple[list[Row], pd.DataFrame, dict[str, LeftOut]]:
    rows, frames, left_out = [], [], {}
    for group, prefix in GROUPS.items():
        table, n, out = pooled_life_table(bundles, group)
        left_out[f"{prefix}_*"] = out
        note = note_of(out)
        for m in months:
            estimate = f"{prefix}_{m:g}"
            if table is None:
                rows.append(
                    row(estimate, POPULATION, n, method=f"not computable: no life table{note}")
                )
                continue
            what = (
                f"pooled actuarial life table of {len(bundles) - len(out)} centres, "
                f"intervals of {table.width:g} months; S = prod(1 - d / (r - c/2))"
            )
            rows.append(row(estimate, POPULATION, n, table.survival_at(m), method=f"{what}{note}"))
        if table is not None:
            frames.append(
                pd.DataFrame(
                    {
                        "group": group,
                        "start": table.starts,
                        "end": table.starts + table.width,
                        "at_risk": table.at_risk,
                        "deaths": table.deaths,
                        "censored": table.censored,
                        "survival": table.survival,
                    }
                )
            )
    columns = ["group", "start", "end", "at_risk", "deaths", "censored", "survival"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return rows, table, left_out


@dataclass(frozen=True)
class PooledResults:
    rows: list[Row]
    inputs: pd.DataFrame  # quantity, centre, ..., weight_fe, weight_re
    life_table: pd.DataFrame
    centres: pd.DataFrame
    left_out: pd.DataFrame  # quantity, centre, reason


def weights(inputs: Inputs, fit: MetaAnalysis) -> pd.DataFrame:
    """Each centre's share of the fixed- and random-effects estimates, for the forest plot."""
    frame = inputs.frame.copy()
    frame.insert(0, "quantity", inputs.quantity)
    used = frame["left_out"] == ""
    v = frame["v"].where(used)
    frame["weight_fe"] = (1 / v) / (1 / v).sum() if used.any() else np.nan
    if fit.tau2 is not None:
        frame["weight_re"] = (1 / (v + fit.tau2)) / (1 / (v + fit.tau2)).sum()
    else:
        frame["weight_re"] = np.nan
    return frame


def pooled_results(
    bundles: Sequence[Bundle], level: float, survival_months: Sequence[float]
) -> PooledResults:
    """Section 6's pooled rows from the centres' bundles, with each centre's part in them."""
    counts = [bundle.content["counts"] for bundle in bundles]
    eligible = sum(c["n_eligible"] for c in counts if isinstance(c["n_eligible"], int))
    rows = [row("n_centres", POPULATION, eligible, len(bundles), method="count")]
    parts = []
    for name in HAZARD_RATIOS:
        inputs = hazard_ratio_inputs(bundles, name)
        meta, fit = meta_rows(inputs, level, math.exp)
        rows += meta
        parts.append(weights(inputs, fit))
    for name in PROPORTIONS:
        inputs = proportion_inputs(bundles, name, level)
        meta, fit = meta_rows(inputs, level, lambda x: float(expit(x)))
        rows += meta
        parts.append(weights(inputs, fit))
    inputs = pd.concat(parts, ignore_index=True)
    left_out = {
        name: list(zip(frame["centre"], frame["left_out"], strict=True))
        for name, frame in inputs[inputs["left_out"] != ""].groupby("quantity", sort=False)
    }
    logrank, left_out["test_os_logrank_stratified"] = logrank_row(bundles)
    rows.append(logrank)
    for name in TABLES:
        mh, left_out[f"{name}_mh"] = mantel_haenszel_row(bundles, name, level)
        rows.append(mh)
    life_rows, life_table, life_left_out = life_table_rows(bundles, survival_months)
    rows += life_rows
    left_out |= life_left_out
    listed = pd.DataFrame(
        [(q, c, why) for q, out in left_out.items() for c, why in out],
        columns=["quantity", "centre", "reason"],
    )
    return PooledResults(rows, inputs, life_table, centre_table(bundles), listed)


def centre_table(bundles: Sequence[Bundle]) -> pd.DataFrame:
    """One row per centre, as the report shows it; a withheld count stays empty."""

    def number(value: Any) -> Any:
        return value if isinstance(value, int | float) else None

    return pd.DataFrame(
        [
            {
                "centre": bundle.centre,
                "n_eligible": number(bundle.content["counts"]["n_eligible"]),
                "n_stage_iv": number(bundle.content["counts"]["n_stage_iv"]),
                "n_bm": number(bundle.content["counts"]["n_bm"]),
                "n_deaths": number(bundle.content["counts"]["n_deaths"]),
                "median_followup_months": number(bundle.content["median_followup_months"]),
                "source": bundle.content["source"],
                "synthetic": bundle.content["synthetic"],
                "withheld": len(bundle.content["withheld"]),
            }
            for bundle in bundles
        ]
    ).astype({name: "Int64" for name in ("n_eligible", "n_stage_iv", "n_bm", "n_deaths")})
