"""The floor: the core section 3 estimates of an export in one plain Python process.

    python benchmarks/floor.py EXPORT_DIR [--config config.yaml] [--out estimates.csv]

What a hand-written script needs to answer the study's main questions, as fast as the
libraries allow: read the four canonical CSVs with pyarrow (typed, dates as dates), derive
eligibility, stage IV, bone metastases from imaging, SREs after BM, antiresorptive therapy,
grade and OS in months as whole-array operations on integer patient codes, then compute
proportions with Clopper-Pearson CIs, Kaplan-Meier medians of OS by BM (log-log band, R's
median rule), the log-rank test and crude and adjusted Cox models (lifelines, Efron ties).

It is the yardstick for the workflow (benchmarks/run.py reports wall / floor), not a second
implementation of the study: no validation, no sensitivity analyses, no report. It uses
only pyarrow, numpy, pandas, scipy and lifelines (and yaml for the shared config.yaml),
never the sinet_bm package, so that refactoring the package cannot move the floor. The
estimates carry the pipeline's ids so that run.py can check both give the same numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml
from lifelines import CoxPHFitter
from scipy import stats

# Column types of the canonical exports; everything else is read as text.
DATES = {
    "patients": ["birth_date", "diagnosis_date", "last_followup_date"],
    "imaging": ["exam_date"],
    "therapies": ["start_date", "end_date"],
    "skeletal_events": ["event_date"],
}
TYPES = {
    "patients": {"ki67_percent": pa.float64(), "functioning": pa.bool_()},
    "imaging": {"bone_sstr_uptake": pa.bool_(), "bone_morphologic": pa.bool_()},
    "therapies": {},
    "skeletal_events": {},
}
EPOCH = date(1970, 1, 1)
# Same closeness as R survival's quantile rule (sqrt of machine epsilon).
TOLERANCE = float(np.sqrt(np.finfo(float).eps))
ADJUSTED = {
    "hr_os_bm_adjusted": "bm",
    "hr_os_age_adjusted": "age_years",
    "hr_os_male_adjusted": "male",
    "hr_os_g2_adjusted": "g2",
    "hr_os_g3_adjusted": "g3",
}


@dataclass(frozen=True)
class Definitions:
    """The section 2 definitions the floor needs, from config.yaml."""

    study_start: int
    study_end: int
    min_age_years: float
    days_per_month: float
    days_per_year: float
    ki67_g1_below: float
    ki67_g2_max: float
    antiresorptive: tuple[str, ...]
    level: float


def definitions(config: Mapping[str, Any]) -> Definitions:
    d = config["definitions"]
    return Definitions(
        study_start=day_number(d["study_start"]),
        study_end=day_number(d["study_end"]),
        min_age_years=float(d["min_age_years"]),
        days_per_month=float(d["days_per_month"]),
        days_per_year=float(d["days_per_year"]),
        ki67_g1_below=float(d["ki67_g1_below"]),
        ki67_g2_max=float(d["ki67_g2_max"]),
        antiresorptive=tuple(d["antiresorptive_therapies"]),
        level=float(config["analysis"]["confidence_level"]),
    )


def day_number(value: str | date) -> int:
    return (date.fromisoformat(str(value)) - EPOCH).days


# ---------------------------------------------------------------------------------------
# reading and endpoints


def read_table(folder: Path, name: str) -> pa.Table:
    """One canonical CSV, typed at parse time (dates as date32, empty cells as nulls)."""
    types = {column: pa.date32() for column in DATES[name]} | TYPES[name]
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pacsv.read_csv(folder / f"{name}.csv", convert_options=options)


def days(column: pa.ChunkedArray) -> np.ndarray:
    """Days since 1970 of a date column without nulls."""
    return pc.cast(column, pa.int32()).to_numpy()


def flag(column: pa.ChunkedArray) -> np.ndarray:
    """A boolean column as numpy, missing = false."""
    return pc.fill_null(column, False).to_numpy(zero_copy_only=False)


def patient_codes(child: pa.Table, ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of each child row's patient (one hash join), and which rows have one."""
    codes = pc.index_in(child["patient_id"], value_set=ids)
    known = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    return pc.fill_null(codes, -1).to_numpy(), known


def grade_codes(patients: pa.Table, d: Definitions) -> np.ndarray:
    """1-3 for G1-G3, 0 where unknown; the given grade wins over the one from Ki-67."""
    given = pc.fill_null(pc.index_in(patients["grade"], value_set=pa.array(["G1", "G2", "G3"])), -1)
    given = given.to_numpy() + 1
    ki67 = patients["ki67_percent"].to_numpy(zero_copy_only=False)
    derived = np.select(
        [ki67 < d.ki67_g1_below, ki67 <= d.ki67_g2_max, ki67 > d.ki67_g2_max], [1, 2, 3], 0
    )
    return np.where(given > 0, given, derived)


def endpoints(tables: Mapping[str, pa.Table], d: Definitions) -> pd.DataFrame:
    """One row per exported patient with the endpoints the core estimates need."""
    patients = tables["patients"]
    ids = patients["patient_id"]
    n = len(patients)
    birth, diagnosis = days(patients["birth_date"]), days(patients["diagnosis_date"])
    age_years = (diagnosis - birth) / d.days_per_year
    in_period = (diagnosis >= d.study_start) & (diagnosis <= d.study_end)

    imaging = tables["imaging"]
    code, known = patient_codes(imaging, ids)
    positive = known & (flag(imaging["bone_sstr_uptake"]) | flag(imaging["bone_morphologic"]))
    never = np.iinfo(np.int32).max
    bm_day = np.full(n, never, dtype=np.int32)
    np.minimum.at(bm_day, code[positive], days(imaging["exam_date"])[positive])

    events = tables["skeletal_events"]
    code, known = patient_codes(events, ids)
    counted = known & (days(events["event_date"]) >= bm_day[np.where(known, code, 0)])
    sre = np.zeros(n, dtype=bool)
    sre[code[counted]] = True

    therapies = tables["therapies"]
    code, known = patient_codes(therapies, ids)
    chosen = pc.is_in(therapies["therapy"], value_set=pa.array(d.antiresorptive))
    antiresorptive = np.zeros(n, dtype=bool)
    antiresorptive[code[known & flag(chosen)]] = True

    grade = grade_codes(patients, d)
    followup = days(patients["last_followup_date"])
    return pd.DataFrame(
        {
            "eligible": in_period & (age_years >= d.min_age_years),
            "stage_iv": flag(pc.equal(patients["uicc_stage"], "IV")),
            "bm": bm_day != never,
            "age_years": age_years,
            "male": flag(pc.equal(patients["sex"], "male")),
            "functioning": flag(patients["functioning"]),
            "grade": grade,
            "g2": grade == 2,
            "g3": grade == 3,
            "sre": sre,
            "antiresorptive": antiresorptive,
            "dead": flag(pc.equal(patients["vital_status"], "dead")),
            "os_months": (followup - diagnosis) / d.days_per_month,
        }
    )


# ---------------------------------------------------------------------------------------
# estimates


def row(
    estimate: str,
    n: int,
    value: float,
    ci: tuple[float, float] = (np.nan, np.nan),
    p_value: float = np.nan,
) -> dict[str, Any]:
    return {
        "estimate": estimate,
        "n": n,
        "value": value,
        "ci_lower": ci[0],
        "ci_upper": ci[1],
        "p_value": p_value,
    }


def proportion(estimate: str, successes: np.ndarray, level: float) -> dict[str, Any]:
    """Share with its Clopper-Pearson (exact) interval."""
    n, k = len(successes), int(np.sum(successes))
    alpha = 1 - level
    lower = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    upper = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    return row(estimate, n, k / n if n else np.nan, (lower, upper))


def r_median(times: np.ndarray, curve: np.ndarray, last_time: float) -> float:
    """First time the curve reaches 0.5; where it sits at exactly 0.5, the midpoint of that
    stretch (up to last_time if it ends there), as R survival's quantile rule."""
    ok = ~np.isnan(curve)
    times, curve = times[ok], curve[ok]
    reached = np.flatnonzero(curve <= 0.5 + TOLERANCE)
    if not reached.size:
        return np.nan
    first = times[reached[0]]
    below = np.flatnonzero(curve <= 0.5 - TOLERANCE)
    if abs(curve[reached[0]] - 0.5) >= TOLERANCE:
        return float(first)
    if abs(curve[-1] - 0.5) < TOLERANCE:
        return float((first + last_time) / 2)
    return float((first + times[below[0]]) / 2) if below.size else np.nan


def km_median(estimate: str, time: np.ndarray, event: np.ndarray, level: float) -> dict:
    """Kaplan-Meier median with the log-log (exponential Greenwood) pointwise band."""
    times, inverse = np.unique(time, return_inverse=True)
    deaths = np.bincount(inverse, weights=event.astype(float))
    exits = np.bincount(inverse).astype(float)
    at_risk = len(time) - np.cumsum(exits) + exits
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1 - deaths / at_risk)
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        log_s = np.log(surv)
        z = stats.norm.ppf(1 - (1 - level) / 2)
        spread = z * np.sqrt(greenwood) / log_s
        upper = np.exp(-np.exp(np.log(-log_s) + spread))
        lower = np.exp(-np.exp(np.log(-log_s) - spread))
    lower[surv <= 0], upper[surv <= 0] = np.nan, np.nan
    last = float(time.max())
    return row(
        estimate,
        len(time),
        r_median(times, surv, last),
        (r_median(times, lower, last), r_median(times, upper, last)),
    )


def logrank(estimate: str, time: np.ndarray, event: np.ndarray, group: np.ndarray) -> dict:
    """Two-group log-rank chi-square (hypergeometric variance), 1 df."""
    _, inverse = np.unique(time, return_inverse=True)
    deaths = np.bincount(inverse, weights=event.astype(float))
    deaths_1 = np.bincount(inverse, weights=(event & group).astype(float))
    exits = np.bincount(inverse).astype(float)
    exits_1 = np.bincount(inverse, weights=group.astype(float))
    at_risk = len(time) - np.cumsum(exits) + exits
    at_risk_1 = group.sum() - np.cumsum(exits_1) + exits_1
    share = at_risk_1 / at_risk
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = deaths * share * (1 - share) * (at_risk - deaths) / (at_risk - 1)
    variance = np.where(at_risk > 1, variance, 0.0)
    statistic = (deaths_1.sum() - (deaths * share).sum()) ** 2 / variance.sum()
    return row(estimate, len(time), statistic, p_value=stats.chi2.sf(statistic, 1))


def cox(frame: pd.DataFrame, terms: Mapping[str, str], level: float) -> list[dict]:
    """Efron-ties Cox model (lifelines), one row per term: HR, Wald CI and p."""
    data = frame[["os_months", "dead", *terms.values()]].astype(float)
    fitter = CoxPHFitter(alpha=1 - level)
    fitter.fit(data, duration_col="os_months", event_col="dead", batch_mode=True)
    summary = fitter.summary
    lower, upper = f"exp(coef) lower {level:.0%}", f"exp(coef) upper {level:.0%}"
    return [
        row(
            estimate,
            len(data),
            summary.loc[term, "exp(coef)"],
            (summary.loc[term, lower], summary.loc[term, upper]),
            summary.loc[term, "p"],
        )
        for estimate, term in terms.items()
    ]


def estimates(patients: pd.DataFrame, level: float) -> pd.DataFrame:
    """The core section 3 estimates: cohort, BM, SRE proportions; OS by BM in stage IV."""
    eligible = patients[patients["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    bm = stage_iv[stage_iv["bm"]]
    time, dead, has_bm = (stage_iv[c].to_numpy() for c in ("os_months", "dead", "bm"))
    treated = bm["antiresorptive"].to_numpy()
    rows = [
        row("n_exported", len(patients), len(patients)),
        row("n_eligible", len(eligible), len(eligible)),
        row("n_stage_iv", len(eligible), len(stage_iv)),
        proportion("prop_stage_iv", eligible["stage_iv"].to_numpy(), level),
        row("n_bm", len(stage_iv), len(bm)),
        proportion("prop_bm", stage_iv["bm"].to_numpy(), level),
        proportion("prop_male", eligible["male"].to_numpy(), level),
        row("median_age_years", len(eligible), float(np.median(eligible["age_years"]))),
        proportion("prop_functioning", eligible["functioning"].to_numpy(), level),
        proportion("prop_functioning_bm", bm["functioning"].to_numpy(), level),
        proportion("prop_sre", bm["sre"].to_numpy(), level),
        proportion("prop_sre_antiresorptive", bm["sre"].to_numpy()[treated], level),
        proportion("prop_sre_no_antiresorptive", bm["sre"].to_numpy()[~treated], level),
        km_median("median_os_bm", time[has_bm], dead[has_bm], level),
        km_median("median_os_no_bm", time[~has_bm], dead[~has_bm], level),
        logrank("test_os_logrank", time, dead, has_bm),
        *cox(stage_iv, {"hr_os_bm_crude": "bm"}, level),
        *cox(stage_iv[stage_iv["grade"] > 0], ADJUSTED, level),
    ]
    return pd.DataFrame(rows)


def main(folder: Path, config_path: Path, out: Path | None) -> None:
    start = time.perf_counter()
    d = definitions(yaml.safe_load(config_path.read_text()))
    tables = {name: read_table(folder, name) for name in DATES}
    read = time.perf_counter()
    patients = endpoints(tables, d)
    derived = time.perf_counter()
    result = estimates(patients, d.level)
    done = time.perf_counter()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(out, index=False)
    else:
        print(result.to_string(index=False))
    rows = ", ".join(f"{name} {len(table):,}" for name, table in tables.items())
    print(
        f"floor: read {read - start:.2f} s ({rows}), endpoints {derived - read:.2f} s, "
        f"estimates {done - derived:.2f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="folder with the four canonical CSVs")
    parser.add_argument("--config", type=Path, default=Path(__file__).parents[1] / "config.yaml")
    parser.add_argument("--out", type=Path, help="write the estimates here (default: print)")
    arguments = parser.parse_args()
    main(arguments.export, arguments.config, arguments.out)
