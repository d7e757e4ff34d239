"""Sensitivity analyses beyond the published design (docs/estimates.md, section 4).

"BM vs no BM from diagnosis" credits patients with metachronous BM with the time they
survived before their BM were found (immortal time); so does "ever had antiresorptive
therapy" for SREs, where death also competes with the event. Here BM and antiresorptive
therapy enter as time-dependent covariates (counting process), by landmark, and SREs as a
competing-risks cumulative incidence; RMST summarises OS without relying on a median near
the end of follow-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sinet_bm.endpoints import populations, stage_iv_of
from sinet_bm.estimators import (
    ConvergenceError,
    FrequencyWeightedCox,
    WeightedRestrictedMean,
    aalen_johansen,
    fit_cox,
    fit_time_varying,
    rmst,
)
from sinet_bm.replicates import (
    BIAS_COLUMNS,
    ORIGINAL,
    STATISTICS,
    BiasCheck,
    BootstrapSettings,
    replicate_rng,
    replicate_seed,
)
from sinet_bm.results import Row, row, term_rows
from sinet_bm.survival import ADJUSTED_TERMS, cox_data
from sinet_bm.survival import COLUMNS as SURVIVAL_COLUMNS

Z_975 = 1.959964
# The endpoints' columns read: those of the survival analyses, the BM and SRE dates for the
# time-dependent and competing-risks analyses; a resample needs only the former.
COLUMNS = (
    *SURVIVAL_COLUMNS,
    "bm_months",
    "bm_date",
    "sre",
    "first_sre_date",
    "last_followup_date",
    "antiresorptive",
    "antiresorptive_start",
)
BOOTSTRAP_COLUMNS = SURVIVAL_COLUMNS


# ---------------------------------------------------------------------------------------
# counting-process data


def bm_intervals(stage_iv: pd.DataFrame) -> pd.DataFrame:
    """(start, stop] intervals with BM switching on at the BM date; zero-length dropped."""
    data = cox_data(stage_iv, keep=["bm_months"]).reset_index(names="id")
    switch = data["bm"] & (data["bm_months"] > 0) & (data["bm_months"] < data["os_months"])
    from_start = data["bm"] & (data["bm_months"] <= 0)
    before = data[switch].assign(start=0.0, stop=lambda f: f["bm_months"], bm=False, dead=False)
    after = data[switch].assign(start=lambda f: f["bm_months"], stop=lambda f: f["os_months"])
    whole = data[~switch].assign(start=0.0, stop=lambda f: f["os_months"], bm=from_start[~switch])
    intervals = pd.concat([before, after, whole], ignore_index=True)
    intervals = intervals[intervals["stop"] > intervals["start"]]
    columns = ["id", "start", "stop", "dead", "bm", "age_years", "male", "g2", "g3"]
    return intervals[columns].sort_values(["id", "start"], kind="stable").reset_index(drop=True)


TIMEDEP_TERMS = {
    "hr_os_bm_timedep": "bm",
    "hr_os_age_timedep": "age_years",
    "hr_os_male_timedep": "male",
    "hr_os_g2_timedep": "g2",
    "hr_os_g3_timedep": "g3",
}


def time_dependent_bm(stage_iv: pd.DataFrame, level: float) -> list[Row]:
    intervals = bm_intervals(stage_iv)
    fit = fit_time_varying(intervals, list(TIMEDEP_TERMS.values()), "dead", level)
    what = "Cox with BM time-dependent from the BM date, adjusted for age, sex, grade"
    return term_rows(fit, TIMEDEP_TERMS, "stage_iv", level, what)


# ---------------------------------------------------------------------------------------
# landmarks


def landmark(stage_iv: pd.DataFrame, months: float, level: float) -> list[Row]:
    """Patients alive and followed at the landmark; BM = seen by then; time from it."""
    alive = stage_iv[stage_iv["os_months"] > months]
    data = pd.DataFrame(
        {
            "time": alive["os_months"] - months,
            "dead": alive["dead"],
            "bm": alive["bm"] & (alive["bm_months"] <= months),
        }
    )
    label = f"{months:g}"
    fit = fit_cox(data, ["bm"], "time", "dead", level)
    what = f"landmark at {label} months: Cox, BM by then only, time from the landmark"
    return [
        row(
            f"n_landmark_{label}",
            "stage_iv",
            len(stage_iv),
            len(alive),
            method=f"count of patients with OS time > {label} months",
        ),
        *term_rows(fit, {f"hr_os_bm_landmark_{label}": "bm"}, "stage_iv", level, what),
    ]


# ---------------------------------------------------------------------------------------
# restricted mean survival time


# ---------------------------------------------------------------------------------------
# restricted mean survival time


def rmst_rows(stage_iv: pd.DataFrame, horizon: float) -> list[Row]:
    what = f"Kaplan-Meier restricted mean OS up to {horizon:g} months; R survival standard error"
    results = {}
    rows = []
    for estimate, group in (
        ("rmst_os_bm", stage_iv[stage_iv["bm"]]),
        ("rmst_os_no_bm", stage_iv[~stage_iv["bm"]]),
    ):
        if group.empty:
            rows.append(row(estimate, "stage_iv", 0, method=f"{what}: not computable, empty group"))
            continue
        mean, se = rmst(group["os_months"], group["dead"].astype(bool), horizon)
        results[estimate] = (mean, se)
        rows.append(
            row(
                estimate,
                "stage_iv",
                len(group),
                mean,
                (mean - Z_975 * se, mean + Z_975 * se),
                method=f"{what}; CI ± 1.959964 se",
            )
        )
    if len(results) == 2:
        (bm, se_bm), (no_bm, se_no_bm) = results["rmst_os_bm"], results["rmst_os_no_bm"]
        half_width = 1.96 * np.sqrt(se_bm**2 + se_no_bm**2)
        difference = bm - no_bm
        rows.append(
            row(
                "rmst_os_diff",
                "stage_iv",
                len(stage_iv),
                difference,
                (difference - half_width, difference + half_width),
                method=f"difference BM - no BM of {what}; CI ± 1.96 √(se₁² + se₂²)",
            )
        )
    else:
        rows.append(
            row(
                "rmst_os_diff",
                "stage_iv",
                len(stage_iv),
                method="difference of restricted means: not computable, a group is empty",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# skeletal-related events: competing risks and time-dependent antiresorptive therapy


def sre_times(bm: pd.DataFrame, days_per_month: float) -> pd.DataFrame:
    """From the BM date: first SRE (cause 1), death without SRE (cause 2), or censoring."""
    end = bm["first_sre_date"].where(bm["sre"], bm["last_followup_date"])
    cause = np.select([bm["sre"], bm["dead"]], [1, 2], default=0)
    return pd.DataFrame(
        {
            "time": (end - bm["bm_date"]).dt.days / days_per_month,
            "cause": cause,
            "antiresorptive": bm["antiresorptive"].to_numpy(),
            "exposure_start": (bm["antiresorptive_start"] - bm["bm_date"]).dt.days / days_per_month,
        },
        index=bm.index,
    )


def cif_at(curve: pd.DataFrame, month: float, last_time: float) -> float | None:
    """The step function at a time; beyond the group's last follow-up it is unknown."""
    if month > last_time:
        return None
    reached = curve[curve["time"] <= month]
    return float(reached["cif"].iloc[-1]) if len(reached) else 0.0


def cif_rows(times: pd.DataFrame, months: Sequence[float]) -> list[Row]:
    rows = []
    what = (
        "Aalen-Johansen cumulative incidence of a first SRE from the BM date, death "
        "without SRE competing"
    )
    for arm, label in ((True, "antiresorptive"), (False, "no_antiresorptive")):
        group = times[times["antiresorptive"] == arm]
        curve = aalen_johansen(group["time"].to_numpy(), group["cause"].to_numpy())
        last = float(group["time"].max()) if len(group) else -np.inf
        for month in months:
            estimate = f"cif_sre_{month:g}_{label}"
            value = cif_at(curve, month, last) if len(group) else None
            reason = "" if value is not None else "; not computable, beyond the last follow-up"
            rows.append(row(estimate, "bm", len(group), value, method=what + reason))
    return rows


def exposure_intervals(times: pd.DataFrame) -> pd.DataFrame:
    """Antiresorptive exposure switching on at its first start (on or before BM: from 0)."""
    data = times.reset_index(names="id").assign(event=lambda f: f["cause"] == 1)
    start = data["exposure_start"].clip(lower=0)
    switch = data["antiresorptive"] & (start > 0) & (start < data["time"])
    from_zero = data["antiresorptive"] & (start == 0)
    before = data[switch].assign(start=0.0, stop=start[switch], exposed=False, event=False)
    after = data[switch].assign(start=start[switch], stop=lambda f: f["time"], exposed=True)
    whole = data[~switch].assign(start=0.0, stop=lambda f: f["time"], exposed=from_zero[~switch])
    intervals = pd.concat([before, after, whole], ignore_index=True)
    intervals = intervals[intervals["stop"] > intervals["start"]]
    return (
        intervals[["id", "start", "stop", "event", "exposed"]]
        .sort_values(["id", "start"], kind="stable")
        .reset_index(drop=True)
    )


def sre_antiresorptive_timedep(times: pd.DataFrame, level: float) -> Row:
    intervals = exposure_intervals(times)
    what = (
        "cause-specific Cox for a first SRE from the BM date (deaths censored), "
        "antiresorptive therapy time-dependent from its first start"
    )
    patients = int(intervals["id"].nunique())
    events_by_arm = intervals.groupby("exposed")["event"].sum().reindex([True, False], fill_value=0)
    if (events_by_arm == 0).any():
        arm = "with" if events_by_arm[True] == 0 else "without"
        return row(
            "hr_sre_antiresorptive_timedep",
            "bm",
            patients,
            method=f"{what}: not computable, no SRE {arm} antiresorptive exposure, so "
            "the hazard ratio has no finite estimate",
        )
    fit = fit_time_varying(intervals, ["exposed"], "event", level)
    (result,) = term_rows(fit, {"hr_sre_antiresorptive_timedep": "exposed"}, "bm", level, what)
    return result


# ---------------------------------------------------------------------------------------
# all of section 4


@dataclass(frozen=True)
class SensitivitySettings:
    landmarks_months: tuple[float, ...]
    rmst_horizon_months: float
    cif_months: tuple[float, ...]
    days_per_month: float


def sensitivity_estimates(
    endpoints: pd.DataFrame, settings: SensitivitySettings, level: float
) -> list[Row]:
    pop = populations(endpoints)
    stage_iv = pop["stage_iv"].reset_index(drop=True)
    rows = time_dependent_bm(stage_iv, level)
    for months in settings.landmarks_months:
        rows += landmark(stage_iv, months, level)
    rows += rmst_rows(stage_iv, settings.rmst_horizon_months)
    times = sre_times(pop["bm"].reset_index(drop=True), settings.days_per_month)
    rows += cif_rows(times, settings.cif_months)
    rows.append(sre_antiresorptive_timedep(times, level))
    return rows


# ---------------------------------------------------------------------------------------
# what one bootstrap resample computes


COVARIATES = tuple(ADJUSTED_TERMS.values())


class Resampling:
    """The stage IV patients, prepared once for the statistics of many bootstrap resamples.

    A resample is a vector of frequency weights (how often each patient was drawn), not a
    copy of rows: the adjusted Cox model and the Kaplan–Meier areas count a patient drawn w
    times as w patients, and the Cox fit starts from the full data's estimate.
    """

    def __init__(self, stage_iv: pd.DataFrame, horizon: float) -> None:
        self.patients = len(stage_iv)
        self.complete = stage_iv["grade"].notna().to_numpy()
        data = cox_data(stage_iv)
        self.time = data["os_months"].to_numpy(dtype=float)
        self.dead = data["dead"].to_numpy(dtype=bool)
        self.covariates = data[list(COVARIATES)].to_numpy(dtype=float)
        self.by_covariate = np.ascontiguousarray(self.covariates.T)
        self.models: dict[tuple[str, ...], FrequencyWeightedCox] = {}
        self.bm = stage_iv["bm"].to_numpy(dtype=bool)
        time, dead = stage_iv["os_months"].to_numpy(float), stage_iv["dead"].to_numpy(bool)
        self.areas = [
            WeightedRestrictedMean(time[group], dead[group], horizon)
            for group in (self.bm, ~self.bm)
        ]
        # every resample starts from the data's own estimate (zero if it has none), so that
        # a resample's result does not depend on which shard computed it
        self.start = np.zeros(len(COVARIATES))
        self.start = np.nan_to_num(self.coefficients(np.ones(self.patients)), nan=0.0)

    def statistics(self, weights: np.ndarray) -> dict[str, float]:
        """The two bootstrapped statistics on the patients weighted `weights`."""
        return {
            "hr_os_bm_adjusted_bootstrap": float(np.exp(self.adjusted_bm_log_hr(weights))),
            "rmst_os_diff_bootstrap": self.rmst_difference(weights),
        }

    def adjusted_bm_log_hr(self, weights: np.ndarray) -> float:
        """log HR of BM in the adjusted model; NaN where a resample leaves it undefined (BM
        or another covariate without variation, no events, a fit that still diverges)."""
        return float(self.coefficients(weights)[COVARIATES.index("bm")])

    def coefficients(self, weights: np.ndarray) -> np.ndarray:
        """The adjusted model's coefficients (NaN for covariates left out, or all NaN)."""
        w, covariates = without_deathless_levels(
            weights[self.complete].astype(float), self.dead, self.covariates
        )
        drawn = w > 0
        columns = [COVARIATES.index(name) for name in covariates]
        beta = np.full(len(COVARIATES), np.nan)
        if not (self.dead & drawn).any() or constant_among(self.by_covariate, drawn)[columns].any():
            return beta
        model = self.models.get(covariates)
        if model is None:
            x = self.covariates[:, columns]
            model = self.models[covariates] = FrequencyWeightedCox(self.time, self.dead, x)
        no_maximum = suppress(ConvergenceError, np.linalg.LinAlgError)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"), no_maximum:
            beta[columns] = model.fit(w, self.start[columns])
        return beta

    def rmst_difference(self, weights: np.ndarray) -> float:
        drawn = weights > 0
        if not (self.bm & drawn).any() or not (~self.bm & drawn).any():
            return np.nan
        with_bm, without = self.areas
        return with_bm.area(weights[self.bm]) - without.area(weights[~self.bm])


def constant_among(by_covariate: np.ndarray, patients: np.ndarray) -> np.ndarray:
    """Which covariates (rows of `by_covariate`, one column per patient) take one value only
    among the given patients. Compressing this layout is 5x faster than gathering the rows
    of (patients, covariates), which took a fifth of a resample's time."""
    chosen = np.compress(patients, by_covariate, axis=1)
    if chosen.shape[1] == 0:
        return np.ones(len(by_covariate), dtype=bool)
    return np.ptp(chosen, axis=1) == 0


def without_deathless_levels(
    weights: np.ndarray, dead: np.ndarray, covariates: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The limit of the model when a grade or sex level has no deaths in a resample.

    Its coefficient then runs to minus infinity, and in that limit the level's patients
    weigh nothing in any risk set: the partial likelihood is that of the other patients
    without the covariate. R's coxph reports the same BM coefficient with a warning; leaving
    such resamples out instead would bias the interval.
    """
    kept = list(COVARIATES)
    for name in ("male", "g2", "g3"):
        level = covariates[:, COVARIATES.index(name)].astype(bool) & (weights > 0)
        if level.any() and not (dead & level).any():
            weights = np.where(level, 0.0, weights)
            kept.remove(name)
    return weights, tuple(kept)


def bootstrap_replicates(
    stage_iv: pd.DataFrame, replicates: range, settings: BootstrapSettings
) -> pd.DataFrame:
    """The statistics on resamples (with replacement, of stage IV patients) `replicates`,
    and on the data itself (replicate 0, first: it is the resamples' starting point)."""
    resampling = Resampling(stage_iv, settings.rmst_horizon_months)
    n = len(stage_iv)
    point = {"replicate": ORIGINAL} | resampling.statistics(np.ones(n))
    rows = [point] if replicates.start == 0 and len(replicates) else []
    for replicate in replicates:
        draw = replicate_rng(settings.seed, replicate).integers(0, n, n)
        weights = np.bincount(draw, minlength=n).astype(float)
        rows.append({"replicate": replicate + 1} | resampling.statistics(weights))
    columns = ["replicate", *STATISTICS]
    return pd.DataFrame(rows, columns=columns).astype({"replicate": int})


# ---------------------------------------------------------------------------------------
# how large is immortal-time bias? A check on simulated cohorts


def redraw_bm_onset(stage_iv: pd.DataFrame, rng: np.random.Generator, check: BiasCheck):
    """BM that do not change the hazard: onset drawn independently of survival, and seen
    only by patients still followed when it happens (as in any registry)."""
    synchronous = rng.random(len(stage_iv)) < check.synchronous_share
    onset = np.where(synchronous, 0.0, rng.exponential(check.onset_mean_months, len(stage_iv)))
    seen = onset < stage_iv["os_months"].to_numpy()
    return stage_iv.assign(bm=seen, bm_months=np.where(seen, onset, np.nan))


def bias_check_replicates(
    endpoints_of: Callable[[int], pd.DataFrame],
    replicates: range,
    check: BiasCheck,
    level: float,
) -> pd.DataFrame:
    """Naive 'BM ever' and time-dependent hazard ratios when the true BM effect is none.

    `endpoints_of(seed)` gives the endpoints of one simulated cohort; replicate k's seed is
    child k of the check's seed, so a shard of replicates gives the rows the whole would.
    """
    rows = []
    for replicate in replicates:
        seed = replicate_seed(check.seed, replicate)
        stage_iv = stage_iv_of(endpoints_of(seed))
        stage_iv = redraw_bm_onset(stage_iv, np.random.default_rng(seed), check)
        naive = fit_cox(stage_iv, ["bm"], "os_months", "dead", level)
        timedep = fit_time_varying(bm_intervals(stage_iv), ["bm"], "dead", level)
        rows.append(
            {
                "replicate": replicate + 1,
                "seed": seed,
                "patients": len(stage_iv),
                "with_bm": int(stage_iv["bm"].sum()),
                "hr_naive": float(naive.fitter.hazard_ratios_["bm"]) if naive.fitter else None,
                "hr_timedep": float(timedep.fitter.hazard_ratios_["bm"])
                if timedep.fitter
                else None,
            }
        )
    return pd.DataFrame(rows, columns=BIAS_COLUMNS)
