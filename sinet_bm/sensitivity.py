"""Sensitivity analyses of DATA_CONTRACT.md section 4, beyond the published design.

"BM vs no BM from diagnosis" credits patients with metachronous BM with the time they
survived before their BM were found (immortal time); so does "ever had antiresorptive
therapy" for SREs, where death also competes with the event. Here BM and antiresorptive
therapy enter as time-dependent covariates (counting process), by landmark, and SREs as a
competing-risks cumulative incidence; RMST summarises OS without relying on a median near
the end of follow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError
from scipy import stats

from sinet_bm.models import Row, cox_data, cox_rows, fit_cox, populations, row

Z_975 = 1.959964


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


class CountingProcessCox:
    """Cox model on (start, stop] intervals, Efron ties, Wald inference.

    lifelines' CoxTimeVaryingFitter loops over event times in Python (55 s for a 10^5-patient
    registry); here every risk-set sum at every event time comes from suffix sums over rows
    sorted by stop and by start (at risk at t: start < t <= stop), so a Newton step is a few
    vectorised passes. Attributes follow lifelines' names: params_, variance_matrix_,
    log_likelihood_, hazard_ratios_ and summary.
    """

    MAX_STEPS = 100
    DIVERGED = 30.0  # |coefficient| beyond which the estimate is infinite (HR > 1e13)

    def __init__(self, level: float) -> None:
        self.level = level

    def fit(
        self, start: np.ndarray, stop: np.ndarray, event: np.ndarray, x: pd.DataFrame
    ) -> CountingProcessCox:
        self._prepare(
            start, stop, event.astype(bool), x.to_numpy(dtype=float) - x.mean().to_numpy()
        )
        beta = np.zeros(x.shape[1])
        loglik, gradient, information = self._derivatives(beta)
        for _ in range(self.MAX_STEPS):
            step = np.linalg.solve(information, gradient)
            if not np.all(np.isfinite(step)):
                raise ConvergenceError("the information matrix is singular")
            candidate = beta + step
            new_loglik, new_gradient, new_information = self._derivatives(candidate)
            while new_loglik < loglik - 1e-12 * abs(loglik) and np.abs(step).max() > 1e-12:
                step /= 2
                candidate = beta + step
                new_loglik, new_gradient, new_information = self._derivatives(candidate)
            beta, loglik, gradient, information = (
                candidate,
                new_loglik,
                new_gradient,
                new_information,
            )
            if np.abs(beta).max() > self.DIVERGED:
                raise ConvergenceError("a coefficient diverges: no finite estimate")
            decrement = gradient @ np.linalg.solve(information, gradient) / 2
            if decrement < 1e-16 or np.abs(step).max() < 1e-11:
                break
        else:
            raise ConvergenceError(f"no convergence in {self.MAX_STEPS} Newton steps")
        names = list(x.columns)
        self.params_ = pd.Series(beta, index=names)
        self.variance_matrix_ = pd.DataFrame(np.linalg.inv(information), names, names)
        self.log_likelihood_ = float(loglik)
        self.hazard_ratios_ = np.exp(self.params_)
        self.summary = self._summary()
        return self

    def _prepare(self, start, stop, event, x) -> None:
        self.x, self.event = x, event
        self.times = np.unique(stop[event])
        self.by_stop = np.argsort(stop, kind="stable")
        self.by_start = np.argsort(start, kind="stable")
        self.stop_cut = np.searchsorted(stop[self.by_stop], self.times, side="left")
        self.start_cut = np.searchsorted(start[self.by_start], self.times, side="left")
        # rows that enter at or after an event time; none in right-censored data
        self.delayed_entry = bool((self.start_cut < len(start)).any())
        self.group = np.searchsorted(self.times, stop[event])
        self.deaths = np.bincount(self.group, minlength=len(self.times))
        self.slot = np.repeat(np.arange(len(self.times)), self.deaths)
        position = np.arange(len(self.slot)) - np.repeat(
            np.cumsum(self.deaths) - self.deaths, self.deaths
        )
        self.share = position / self.deaths[self.slot]

    def _risk_sums(self, weights: np.ndarray) -> np.ndarray:
        """Σ of weights over rows at risk at each event time: stop ≥ t minus start ≥ t."""

        def suffix(order: np.ndarray, cut: np.ndarray) -> np.ndarray:
            sums = np.cumsum(weights[order][::-1], axis=0)[::-1]
            padded = np.concatenate([sums, np.zeros((1, *sums.shape[1:]))])
            return padded[cut]

        at_risk = suffix(self.by_stop, self.stop_cut)
        if not self.delayed_entry:
            return at_risk
        return at_risk - suffix(self.by_start, self.start_cut)

    def _tie_sums(self, weights: np.ndarray) -> np.ndarray:
        flat = weights[self.event].reshape(int(self.event.sum()), -1)
        sums = np.stack(
            [
                np.bincount(self.group, weights=flat[:, j], minlength=len(self.times))
                for j in range(flat.shape[1])
            ],
            axis=1,
        )
        return sums.reshape(len(self.times), *weights.shape[1:])

    def _derivatives(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        x = self.x
        eta = x @ beta
        risk = np.exp(eta)
        rx = risk[:, None] * x
        rxx = rx[:, :, None] * x[:, None, :]
        s0, s1, s2 = self._risk_sums(risk), self._risk_sums(rx), self._risk_sums(rxx)
        t0, t1, t2 = self._tie_sums(risk), self._tie_sums(rx), self._tie_sums(rxx)
        g, f = self.slot, self.share
        a0 = s0[g] - f * t0[g]
        a1 = s1[g] - f[:, None] * t1[g]
        a2 = s2[g] - f[:, None, None] * t2[g]
        mean = a1 / a0[:, None]
        loglik = float(eta[self.event].sum() - np.log(a0).sum())
        gradient = x[self.event].sum(axis=0) - mean.sum(axis=0)
        information = (a2 / a0[:, None, None] - mean[:, :, None] * mean[:, None, :]).sum(axis=0)
        return loglik, gradient, information

    def _summary(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.variance_matrix_.to_numpy()))
        z = stats.norm.ppf(1 - (1 - self.level) / 2)
        percent = f"{self.level:.0%}"
        beta = self.params_.to_numpy()
        return pd.DataFrame(
            {
                "coef": beta,
                "exp(coef)": np.exp(beta),
                "se(coef)": se,
                f"exp(coef) lower {percent}": np.exp(beta - z * se),
                f"exp(coef) upper {percent}": np.exp(beta + z * se),
                "z": beta / se,
                "p": 2 * stats.norm.sf(np.abs(beta / se)),
            },
            index=self.params_.index,
        )


@dataclass(frozen=True)
class TimeVaryingFit:
    fitter: CountingProcessCox | None
    patients: int
    failure: str


def fit_time_varying(
    intervals: pd.DataFrame, covariates: Sequence[str], event: str, level: float
) -> TimeVaryingFit:
    """Efron-ties Cox model on counting-process data, or the reason it cannot be fitted."""
    patients = int(intervals["id"].nunique())
    if not intervals[event].any():
        return TimeVaryingFit(None, patients, "no events")
    constant = [name for name in covariates if intervals[name].nunique() < 2]
    if constant:
        return TimeVaryingFit(None, patients, f"no variation in {', '.join(constant)}")
    fitter = CountingProcessCox(level)
    try:
        fitter.fit(
            intervals["start"].to_numpy(dtype=float),
            intervals["stop"].to_numpy(dtype=float),
            intervals[event].to_numpy(dtype=bool),
            intervals[list(covariates)].astype(float),
        )
    except (ConvergenceError, np.linalg.LinAlgError) as error:
        return TimeVaryingFit(None, patients, f"did not converge ({error})")
    return TimeVaryingFit(fitter, patients, "")


def time_varying_rows(
    fit: TimeVaryingFit, terms: dict[str, str], population: str, level: float, what: str
) -> list[Row]:
    rows = []
    for estimate, covariate in terms.items():
        if fit.fitter is None:
            rows.append(
                row(
                    estimate,
                    population,
                    fit.patients,
                    method=f"{what}: not computable, {fit.failure}",
                )
            )
            continue
        summary = fit.fitter.summary.loc[covariate]
        percent = f"{level:.0%}"
        ci = (
            float(summary[f"exp(coef) lower {percent}"]),
            float(summary[f"exp(coef) upper {percent}"]),
        )
        rows.append(
            row(
                estimate,
                population,
                fit.patients,
                float(summary["exp(coef)"]),
                ci,
                float(summary["p"]),
                f"{what}; hazard ratio, Efron ties, Wald {percent} CI and p",
            )
        )
    return rows


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
    return time_varying_rows(fit, TIMEDEP_TERMS, "stage_iv", level, what)


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
        *cox_rows(fit, {f"hr_os_bm_landmark_{label}": "bm"}, "stage_iv", level, what),
    ]


# ---------------------------------------------------------------------------------------
# restricted mean survival time


def rmst(durations: pd.Series, events: pd.Series, horizon: float) -> tuple[float, float]:
    """Kaplan-Meier area up to the horizon, and R survival's standard error of it.

    se² = Σ over event times t < horizon of A(t)² d / (n (n - d)), A(t) the area under the
    curve from t to the horizon, the curve extended flat past its last time. The
    product-limit is written out because the bootstrap calls this thousands of times and
    lifelines' fitter costs 7 ms a call; the R comparison tests hold it to survival's.
    """
    time = np.asarray(durations, dtype=float)
    times, slot = np.unique(np.append(time, 0.0), return_inverse=True)
    slot = slot[:-1]
    deaths = np.bincount(slot, weights=np.asarray(events, dtype=float), minlength=len(times))
    leaving = np.bincount(slot, minlength=len(times))
    at_risk = len(time) - np.concatenate([[0], np.cumsum(leaving)[:-1]]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(np.where(at_risk > 0, 1 - deaths / at_risk, 1.0))
    inside = times < horizon
    area = surv[inside] * np.diff(np.append(times[inside], horizon))
    area_after = np.cumsum(area[::-1])[::-1]
    deaths, at_risk = deaths[inside], at_risk[inside]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0)
    return float(area.sum()), float(np.sqrt(np.sum(area_after**2 * weight)))


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


def aalen_johansen(time: np.ndarray, cause: np.ndarray, of: int = 1) -> pd.DataFrame:
    """Cumulative incidence of one cause with the others competing; ties kept as they are.

    CIF(t) = Σ over event times u ≤ t of S(u-) d_of(u) / n(u), S the all-cause Kaplan-Meier
    curve. lifelines' AalenJohansenFitter jitters tied times, which changes the sums.
    """
    times = np.unique(time[cause > 0])
    at_risk = len(time) - np.searchsorted(np.sort(time), times, side="left")
    by_time = pd.DataFrame({"any": cause > 0, "of": cause == of}).groupby(time).sum()
    events = by_time["any"].reindex(times).to_numpy()
    of_cause = by_time["of"].reindex(times).to_numpy()
    surv_after = np.cumprod(1 - events / at_risk)
    surv_before = np.concatenate([[1.0], surv_after[:-1]])
    cif = np.cumsum(surv_before * of_cause / at_risk)
    return pd.DataFrame({"time": times, "cif": cif, "at_risk": at_risk})


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
    (result,) = time_varying_rows(
        fit, {"hr_sre_antiresorptive_timedep": "exposed"}, "bm", level, what
    )
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
