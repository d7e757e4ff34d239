"""The study's estimators, each written once and shared by every analysis.

Each is a small class fitted once whose results are attributes with a trailing underscore
(lifelines' shape), or a function returning a row of `estimates.csv`. Statistics come from
scipy and lifelines; what they lack or do too slowly at registry scale is written here and
checked against R's survival package in the tests: R's median rule for Kaplan–Meier curves,
the exact conditional odds ratio on large tables, the Grambsch–Therneau test, a vectorised
counting-process Cox model with frequency weights, the RMST and an Aalen–Johansen estimator
that keeps tied times.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import gammaln, logsumexp

from sinet_bm.results import Row, nan_to_none, row

if TYPE_CHECKING:
    from lifelines import CoxPHFitter

# lifelines is imported where it is used: it costs a second per process, and the bootstrap
# and the gathering steps do not need it.


class ConvergenceError(ArithmeticError):
    """A model without a finite maximum of its likelihood, or one Newton could not reach."""


TOLERANCE = float(np.sqrt(np.finfo(float).eps))
# lifelines' Newton-Raphson, by default, takes shortened steps and stops on a relative
# log-likelihood change of 1e-9, returning coefficients up to 1e-3 (relative) short of the
# maximum R's coxph finds. Full steps and a score-based stop reach it to ~1e-9.
NEWTON = {"step_size": 1.0, "precision": 1e-16, "r_precision": 0.0}


# ---------------------------------------------------------------------------------------
# proportions and odds ratios


def proportion(estimate: str, population: str, successes: int, n: int, level: float) -> Row:
    if n == 0:
        return row(estimate, population, 0, method="not computable: empty population")
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(level, method="exact")
    return row(
        estimate,
        population,
        n,
        successes / n,
        (interval.low, interval.high),
        method=f"proportion; Clopper-Pearson exact {level:.0%} CI",
    )


def sample_median(estimate: str, population: str, values: pd.Series) -> Row:
    values = values.dropna()
    if values.empty:
        return row(estimate, population, 0, method="not computable: no observed values")
    return row(estimate, population, len(values), float(values.median()), method="sample median")


@dataclass(frozen=True)
class NoncentralHypergeometric:
    """Fisher's noncentral hypergeometric law of cell (1,1) given a 2x2 table's margins.

    scipy's `odds_ratio(kind="conditional")` evaluates this law cell by cell in Python,
    which takes minutes on registry-sized tables; here the log-weights of the whole
    support are computed once, so every evaluation is one vectorised pass.
    """

    support: np.ndarray
    log_weights: np.ndarray

    @classmethod
    def of(cls, table: np.ndarray) -> NoncentralHypergeometric:
        row1, row2 = int(table[0].sum()), int(table[1].sum())
        col1 = int(table[:, 0].sum())
        x = np.arange(max(0, col1 - row2), min(row1, col1) + 1)
        log_weights = log_choose(row1, x) + log_choose(row2, col1 - x)
        return cls(x, log_weights)

    def pmf(self, psi: float) -> np.ndarray:
        log_p = self.log_weights + self.support * np.log(psi)
        return np.exp(log_p - logsumexp(log_p))

    def mean(self, psi: float) -> float:
        return float(self.support @ self.pmf(psi))

    def cdf(self, x: int, psi: float) -> float:
        return float(self.pmf(psi)[self.support <= x].sum())

    def sf(self, x: int, psi: float) -> float:
        return float(self.pmf(psi)[self.support > x].sum())


def log_choose(n: int, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def solve_increasing(func: Callable[[float], float]) -> float:
    """Root of an increasing function of psi > 0, bracketed by doubling as scipy does."""
    psi = 1.0
    value = func(psi)
    if value == 0:
        return psi
    if value > 0:
        while func(psi) > 0:
            psi /= 2
        low, high = psi, 2 * psi
    else:
        while func(psi) < 0:
            psi *= 2
        low, high = psi / 2, psi
    return float(optimize.brentq(func, low, high, xtol=1e-13))


class ConditionalOddsRatio:
    """The conditional maximum-likelihood odds ratio of a 2x2 table with its exact CI, and
    Fisher's two-sided p (as R fisher.test and scipy, fast on registry-sized tables).

    `table` is [[exposed & outcome, exposed & no outcome], [unexposed & outcome, ...]].
    """

    def __init__(self, level: float) -> None:
        self.level = level

    def fit(self, table: np.ndarray) -> ConditionalOddsRatio:
        law = NoncentralHypergeometric.of(table)
        a = int(table[0, 0])
        low_end, high_end = int(law.support[0]), int(law.support[-1])
        alpha = (1 - self.level) / 2
        if a == low_end:
            self.odds_ratio_ = 0.0
        elif a == high_end:
            self.odds_ratio_ = float("inf")
        else:
            self.odds_ratio_ = solve_increasing(lambda psi: law.mean(psi) - a)
        lower = 0.0 if a == low_end else solve_increasing(lambda psi: law.sf(a - 1, psi) - alpha)
        upper = (
            float("inf") if a == high_end else solve_increasing(lambda psi: alpha - law.cdf(a, psi))
        )
        self.confidence_interval_ = (lower, upper)
        self.p_value_ = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
        return self


def fisher_odds_ratio(
    estimate: str, population: str, table: np.ndarray, level: float, comparison: str
) -> Row:
    """The row of a 2x2 comparison: conditional-MLE odds ratio, exact CI, Fisher's p."""
    n = int(table.sum())
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return row(estimate, population, n, method=f"not computable: a margin of {comparison} is 0")
    fit = ConditionalOddsRatio(level).fit(table)
    return row(
        estimate,
        population,
        n,
        fit.odds_ratio_,
        fit.confidence_interval_,
        fit.p_value_,
        f"{comparison}; conditional-MLE odds ratio, exact {level:.0%} CI; Fisher exact two-sided p",
    )


# ---------------------------------------------------------------------------------------
# Kaplan–Meier


def r_quantile(times: np.ndarray, curve: np.ndarray, p: float, last_time: float) -> float:
    """First time a survival curve reaches 1 - p, with R survival's midpoint rule.

    Where the curve sits exactly at 1 - p over an interval, the quantile is the midpoint of
    that interval (up to the last follow-up time when the curve ends flat there); a curve
    that never gets there has no quantile (NaN). Mirrors `quantile.survfit` of R survival.
    """
    x = np.concatenate([[0.0], times])
    y = np.concatenate([[0.0], 1.0 - curve])
    keep = ~pd.Series(y).duplicated().to_numpy() & ~np.isnan(y)
    x, y = x[keep], y[keep]
    if y.max() < p:
        return float("nan")
    reached = np.flatnonzero(y + TOLERANCE >= p)
    beyond = np.flatnonzero(y - TOLERANCE >= p)
    if not reached.size:
        return float("nan")
    first = x[reached[0]]
    if abs(p - y[-1]) < TOLERANCE:
        return float((first + last_time) / 2)
    if not beyond.size:
        return float("nan")
    return float((first + x[beyond[0]]) / 2)


class KaplanMeier:
    """Kaplan–Meier curve with the log-log pointwise band (lifelines' exponential Greenwood
    = R's conf.type = "log-log"), and its median and the median's CI by R's rule, the band
    taken as missing where S = 0 as R reports it."""

    def __init__(self, level: float, label: str = "KM") -> None:
        self.level, self.label = level, label

    def fit(self, durations: pd.Series, events: pd.Series) -> KaplanMeier:
        from lifelines import KaplanMeierFitter

        fitter = KaplanMeierFitter(alpha=1 - self.level, label=self.label).fit(durations, events)
        self.event_table_ = fitter.event_table
        self.timeline_ = fitter.survival_function_.index.to_numpy(dtype=float)
        self.survival_ = fitter.survival_function_.iloc[:, 0].to_numpy()
        band = fitter.confidence_interval_survival_function_.to_numpy()
        self.lower_, self.upper_ = band[:, 0].copy(), band[:, 1].copy()
        band[self.survival_ <= 0, :] = np.nan
        last = float(np.max(durations))
        self.median_ = r_quantile(self.timeline_, self.survival_, 0.5, last)
        self.median_lower_ = r_quantile(self.timeline_, band[:, 0], 0.5, last)
        self.median_upper_ = r_quantile(self.timeline_, band[:, 1], 0.5, last)
        return self


def km_median(
    estimate: str,
    population: str,
    durations: pd.Series,
    events: pd.Series,
    level: float,
    what: str = "Kaplan-Meier median",
) -> Row:
    n = len(durations)
    if n == 0:
        return row(estimate, population, 0, method=f"{what}: not computable, empty group")
    km = KaplanMeier(level, estimate).fit(durations, events.astype(bool))
    method = f"{what}; log-log pointwise {level:.0%} CI; R survival median rule"
    missing = [
        name
        for name, value in (
            ("median", km.median_),
            ("lower CI bound", km.median_lower_),
            ("upper CI bound", km.median_upper_),
        )
        if np.isnan(value)
    ]
    if missing:
        method += "; " + ", ".join(missing) + " not reached"
    return row(
        estimate,
        population,
        n,
        nan_to_none(km.median_),
        (nan_to_none(km.median_lower_), nan_to_none(km.median_upper_)),
        method=method,
    )


def logrank(
    estimate: str, population: str, durations: pd.Series, events: pd.Series, group: pd.Series
) -> Row:
    n = len(durations)
    if group.nunique() < 2 or not events.any():
        return row(
            estimate, population, n, method="log-rank: not computable, one group only or no events"
        )
    from lifelines.statistics import logrank_test

    result = logrank_test(durations[group], durations[~group], events[group], events[~group])
    return row(
        estimate,
        population,
        n,
        float(result.test_statistic),
        p_value=float(result.p_value),
        method="log-rank test; chi-square with 1 df",
    )


# ---------------------------------------------------------------------------------------
# Cox models


@dataclass(frozen=True)
class StoredCox:
    """The coefficients and covariance of a Cox model fitted by an earlier step: what its
    residuals need, without fitting it again."""

    params_: pd.Series
    variance_matrix_: pd.DataFrame


@dataclass(frozen=True)
class CoxFit:
    """A right-censored Cox model fitted by lifelines, or the reason it could not be."""

    fitter: CoxPHFitter | CountingProcessCox | StoredCox | None
    data: pd.DataFrame
    duration: str
    event: str
    dropped: dict[str, str]
    failure: str

    @property
    def summary(self) -> pd.DataFrame | None:
        return None if self.fitter is None else self.fitter.summary

    @property
    def n(self) -> int:
        return len(self.data)


def fit_cox(
    data: pd.DataFrame,
    covariates: Sequence[str],
    duration: str,
    event: str,
    level: float,
    strata: Sequence[str] = (),
) -> CoxFit:
    """Efron-ties Cox model; covariates without variation are left out and said so. With
    `strata`, one baseline hazard per stratum (R's `+ strata(centre)`).

    A covariate constant among the patients still at risk at the first death is constant in
    every risk set and carries no information (R's coxph reports it as NA): it is left out
    too, while the others are estimated.
    """
    dropped = {name: "no variation in the data" for name in covariates if data[name].nunique() < 2}
    deaths = data.loc[data[event].astype(bool), duration]
    if len(deaths):
        at_risk = data[data[duration] >= deaths.min()]
        dropped |= {
            name: "no variation among the patients at risk at any death"
            for name in covariates
            if name not in dropped and at_risk[name].nunique() < 2
        }
    kept = [name for name in covariates if name not in dropped]
    frame = data[[duration, event, *kept]].astype(float)
    if strata:
        frame[list(strata)] = data[list(strata)].astype(str).to_numpy()
    if not kept:
        return CoxFit(None, frame, duration, event, dropped, "no covariate with variation")
    if frame[event].sum() == 0:
        return CoxFit(None, frame, duration, event, dropped, "no events")
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError as NoConvergence
    from lifelines.exceptions import ConvergenceWarning

    fitter = CoxPHFitter(alpha=1 - level)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("error", ConvergenceWarning)
            fitter.fit(
                frame,
                duration_col=duration,
                event_col=event,
                batch_mode=True,
                fit_options=NEWTON,
                strata=list(strata) or None,
            )
    except (NoConvergence, ConvergenceWarning) as error:
        if strata:  # the counting-process fallback has one baseline hazard only
            return CoxFit(None, frame, duration, event, dropped, f"did not converge ({error})")
        # Full Newton steps from zero can overshoot a maximum far away (and overflow): the
        # counting-process fit halves such steps, and everyone enters at time zero.
        stop = frame[duration].to_numpy(dtype=float)
        try:
            fitter = CountingProcessCox(level).fit(
                np.full(len(frame), stop.min() - 1.0),
                stop,
                frame[event].to_numpy(dtype=bool),
                frame[kept],
            )
        except (ConvergenceError, np.linalg.LinAlgError) as error:
            return CoxFit(None, frame, duration, event, dropped, f"did not converge ({error})")
    return CoxFit(fitter, frame, duration, event, dropped, "")


def schoenfeld_residuals(fit: CoxFit) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled Schoenfeld residuals (Efron ties) of the deaths, and their times.

    The same quantity as lifelines' `compute_residuals(kind="schoenfeld")`, which loops over
    rows in Python and takes hours on a registry; here each event time's Efron-weighted
    risk-set mean comes from reverse cumulative sums, all vectorised.
    """
    data = fit.data.sort_values(fit.duration, kind="stable")
    covariates = list(fit.fitter.params_.index)
    x = data[covariates].to_numpy(dtype=float)
    time = data[fit.duration].to_numpy(dtype=float)
    dead = data[fit.event].to_numpy(dtype=bool)
    risk = np.exp((x - x.mean(axis=0)) @ fit.fitter.params_.to_numpy())
    times, first = np.unique(time, return_index=True)
    at_risk = np.cumsum(risk[::-1])[::-1][first]
    at_risk_x = np.cumsum((risk[:, None] * x)[::-1], axis=0)[::-1][first]
    group = np.searchsorted(times, time[dead])
    deaths = np.bincount(group, minlength=len(times))
    tie = np.bincount(group, weights=risk[dead], minlength=len(times))
    tie_x = np.stack(
        [
            np.bincount(group, weights=(risk * x[:, j])[dead], minlength=len(times))
            for j in range(x.shape[1])
        ],
        axis=1,
    )
    slot_group = np.repeat(np.arange(len(times)), deaths)
    slot_share = np.arange(len(slot_group)) - np.repeat(np.cumsum(deaths) - deaths, deaths)
    slot_share = slot_share / deaths[slot_group]
    slot_mean = (at_risk_x[slot_group] - slot_share[:, None] * tie_x[slot_group]) / (
        at_risk[slot_group] - slot_share * tie[slot_group]
    )[:, None]
    efron_mean = (
        np.stack(
            [
                np.bincount(slot_group, weights=slot_mean[:, j], minlength=len(times))
                for j in range(x.shape[1])
            ],
            axis=1,
        )
        / np.maximum(deaths, 1)[:, None]
    )
    return x[dead] - efron_mean[group], time[dead]


def km_transformed_time(fit: CoxFit, times: np.ndarray) -> np.ndarray:
    """1 - KM of the model's data at each death time (R cox.zph's default transform)."""
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(fit.data[fit.duration], fit.data[fit.event])
    return 1 - km.survival_function_.iloc[:, 0].loc[times].to_numpy()


def schoenfeld_tests(fit: CoxFit) -> pd.DataFrame:
    """Grambsch–Therneau tests per covariate and global, on KM-transformed time.

    With u = Σ over deaths of g·r (r the Schoenfeld residuals, g the centred transformed
    time), V the model's variance and d the deaths: covariate j has T = d (Vu)_j² /
    (V_jj Σg²), 1 df (lifelines' `proportional_hazard_test`); the global test has
    T = d u'Vu / Σg², one df per covariate.
    """
    residuals, times = schoenfeld_residuals(fit)
    g = km_transformed_time(fit, times)
    g = g - g.mean()
    u = g @ residuals
    variance = fit.fitter.variance_matrix_.to_numpy()
    deaths, spread = len(g), float((g**2).sum())
    per_covariate = deaths * (variance @ u) ** 2 / (np.diag(variance) * spread)
    overall = float(deaths * u @ variance @ u / spread)
    statistics = np.append(per_covariate, overall)
    df = np.append(np.ones(len(u), dtype=int), len(u))
    return pd.DataFrame(
        {
            "term": [*fit.fitter.params_.index, "GLOBAL"],
            "chi_square": statistics,
            "df": df,
            "p_value": stats.chi2.sf(statistics, df),
        }
    )


def schoenfeld_global(fit: CoxFit) -> tuple[float, float, int]:
    """The global line of `schoenfeld_tests`: chi-square, p, df."""
    return global_test(schoenfeld_tests(fit))


def global_test(tests: pd.DataFrame) -> tuple[float, float, int]:
    """Chi-square, p and df of the global line of a `schoenfeld_tests` table."""
    overall = tests.iloc[-1]
    return float(overall["chi_square"]), float(overall["p_value"]), int(overall["df"])


def scaled_schoenfeld(fit: CoxFit) -> pd.DataFrame:
    """β + scaled residual per death and covariate (what R's plot(cox.zph) draws)."""
    residuals, times = schoenfeld_residuals(fit)
    variance = fit.fitter.variance_matrix_.to_numpy()
    scaled = len(times) * residuals @ variance + fit.fitter.params_.to_numpy()
    frame = pd.DataFrame(scaled, columns=list(fit.fitter.params_.index))
    return frame.assign(months=times, km_time=km_transformed_time(fit, times))


# ---------------------------------------------------------------------------------------
# counting-process Cox


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
        self.x, self.event, self.x_event = x, event, x[event]
        self.times = np.unique(stop[event])
        self.leaving = RunningSums.of(stop, self.times, x)
        # rows that enter at or after an event time; none in right-censored data
        entering = RunningSums.of(start, self.times, x)
        self.entering = entering if entering.used.any() else None
        self.group = np.searchsorted(self.times, stop[event])
        self.deaths = np.bincount(self.group, minlength=len(self.times))
        self.slot = np.repeat(np.arange(len(self.times)), self.deaths)
        position = np.arange(len(self.slot)) - np.repeat(
            np.cumsum(self.deaths) - self.deaths, self.deaths
        )
        self.share = position / self.deaths[self.slot]

    def _risk_sums(self, risk: np.ndarray) -> list[np.ndarray]:
        """Σ of risk, risk·x and risk·xx' over rows at risk at each event time: stop ≥ t
        minus start ≥ t."""
        at_risk = self.leaving.moments(risk)
        if self.entering is None:
            return at_risk
        entered = self.entering.moments(risk)
        return [total - late for total, late in zip(at_risk, entered, strict=True)]

    def _tie_sums(self, weights: np.ndarray) -> np.ndarray:
        """Σ of weights (one row per event row) over the events of each event time."""
        flat = weights.reshape(len(weights), -1)
        sums = np.stack(
            [
                np.bincount(self.group, weights=flat[:, j], minlength=len(self.times))
                for j in range(flat.shape[1])
            ],
            axis=1,
        )
        return sums.reshape(len(self.times), *weights.shape[1:])

    def _derivatives(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        x, x_event = self.x, self.x_event
        eta = x @ beta
        risk = np.exp(eta)
        s0, s1, s2 = self._risk_sums(risk)
        risk_event = risk[self.event]
        rx = risk_event[:, None] * x_event
        rxx = rx[:, :, None] * x_event[:, None, :]
        t0, t1, t2 = self._tie_sums(risk_event), self._tie_sums(rx), self._tie_sums(rxx)
        g, f = self.slot, self.share
        a0 = s0[g] - f * t0[g]
        a1 = s1[g] - f[:, None] * t1[g]
        a2 = s2[g] - f[:, None, None] * t2[g]
        mean = a1 / a0[:, None]
        loglik = float(eta[self.event].sum() - np.log(a0).sum())
        gradient = x_event.sum(axis=0) - mean.sum(axis=0)
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
class RunningSums:
    """Sums over the rows whose time is ≥ each event time, as one running sum per moment
    from the latest time down (each row's sum of the same additions in the same order,
    whatever the moment).

    The covariates are kept sorted, latest first, with one moment per memory row, so that
    every running sum of a Newton step is a contiguous pass: summing (rows, p, p) arrays
    along their first axis instead took 2 s a step on a registry.
    """

    order: np.ndarray  # rows by time, latest first
    x: np.ndarray  # (p, rows): the covariates in that order
    last: np.ndarray  # per event time, the position of its last row ≥ it in `order`
    used: np.ndarray  # event times that have a row ≥ them

    @classmethod
    def of(cls, time: np.ndarray, times: np.ndarray, x: np.ndarray) -> RunningSums:
        ascending = np.argsort(time, kind="stable")
        cut = np.searchsorted(time[ascending], times, side="left")
        order = ascending[::-1]
        return cls(order, np.ascontiguousarray(x[order].T), len(time) - 1 - cut, cut < len(time))

    def moments(self, risk: np.ndarray) -> list[np.ndarray]:
        """Σ risk, Σ risk·x and Σ risk·xx' per event time: (times,), (times, p), (times,
        p, p)."""
        r = risk[self.order]
        rx = r * self.x
        rxx = rx[:, None, :] * self.x[None, :, :]
        return [self._at_times(values) for values in (r, rx, rxx)]

    def _at_times(self, values: np.ndarray) -> np.ndarray:
        running = np.cumsum(values, axis=-1, out=values)
        picked = np.zeros((*values.shape[:-1], len(self.last)))
        picked[..., self.used] = running[..., self.last[self.used]]
        return np.ascontiguousarray(np.moveaxis(picked, -1, 0))


@dataclass(frozen=True)
class TimeVaryingFit:
    """A counting-process Cox model, or the reason it could not be fitted."""

    fitter: CountingProcessCox | None
    n: int
    failure: str
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame | None:
        return None if self.fitter is None else self.fitter.summary


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


class FrequencyWeightedCox:
    """Right-censored Cox model, Efron ties, with frequency weights: a patient of weight w
    counts as w identical patients (w tied deaths if dead), so that a bootstrap resample is
    fitted without copying rows and equals the fit on the copied rows.

    The patients are sorted by time once. A Newton step then sums the weighted risk and its
    first moments per distinct time as one sparse product (the patients of a time form a
    row of an indicator matrix whose entries are their weighted risks), takes suffix sums
    over the few thousand distinct times, and applies Efron's correction over the weighted
    deaths, as sums per death time of scalars of each tied death. The second moments are
    needed only summed over the death times, each risk set's weighted by that time's
    Efron factor: that is one weighted sum of the patients' x x', each weighted by the
    factors of the death times at which it is at risk, instead of per-time (p, p) sums;
    Σ m m' over the tied deaths expands into per-time sums of scalars as well. A step costs
    a quarter of what the per-time second moments did. Started from the full data's
    estimate a resample takes about three steps.
    """

    MAX_STEPS = CountingProcessCox.MAX_STEPS
    DIVERGED = CountingProcessCox.DIVERGED

    def __init__(self, time: np.ndarray, dead: np.ndarray, x: np.ndarray) -> None:
        from scipy import sparse

        self.order = np.argsort(time, kind="stable")
        time = np.asarray(time, dtype=float)[self.order]
        dead = np.asarray(dead, dtype=bool)[self.order]
        x = np.asarray(x, dtype=float)[self.order]
        self.x = x - x.mean(axis=0)
        self.xt = np.ascontiguousarray(self.x.T)
        # [1, x]: the moments summed per risk set; x_a x_b (a <= b), one row each, for the
        # second moments (a matrix product with them is 3x faster than BLAS on (n, p) x)
        moments = np.hstack([np.ones((len(x), 1)), self.x])
        self.upper = np.triu_indices(x.shape[1])
        self.products = self.xt[self.upper[0]] * self.xt[self.upper[1]]
        self.death_rows = np.flatnonzero(dead)
        self.death_x = self.x[self.death_rows]
        self.death_products = self.products[:, self.death_rows]
        self.death_moments = moments[self.death_rows]
        distinct, starts, slot = np.unique(time, return_index=True, return_inverse=True)
        death_times, death_starts = np.unique(time[self.death_rows], return_index=True)
        self.death_times = np.searchsorted(distinct, death_times)
        # per patient, how many death times are ≤ its time: the risk sets it belongs to
        self.risk_sets = np.searchsorted(death_times, distinct, side="right")[slot]
        self.death_group = np.searchsorted(death_times, time[self.death_rows])
        self.moments = moments

        def indicator(starts: np.ndarray, size: int) -> sparse.csr_matrix:
            indptr = np.append(starts, size)
            return sparse.csr_matrix((np.ones(size), np.arange(size), indptr))

        self.by_time = indicator(starts, len(time))
        self.by_death_time = indicator(death_starts, len(self.death_rows))

    def fit(self, weights: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        """Coefficients for patients weighted `weights` (in the order given at construction),
        by Newton's method with step halving from `initial` (default zero)."""
        w = np.asarray(weights, dtype=float)[self.order]
        tied = self._per_death_time(w[self.death_rows]).astype(np.int64)
        slots = np.repeat(np.arange(len(tied)), tied)
        share = (np.arange(len(slots)) - np.repeat(np.cumsum(tied) - tied, tied)) / tied[slots]
        fixed = EfronSlots(w, w[self.death_rows], slots, share)
        beta = np.zeros(self.x.shape[1]) if initial is None else np.array(initial, dtype=float)
        loglik, gradient, information = self._derivatives(beta, fixed)
        for _ in range(self.MAX_STEPS):
            step = np.linalg.solve(information, gradient)
            if not np.all(np.isfinite(step)):
                raise ConvergenceError("the information matrix is singular")
            candidate = beta + step
            new = self._derivatives(candidate, fixed)
            while new[0] < loglik - 1e-12 * abs(loglik) and np.abs(step).max() > 1e-12:
                step /= 2
                candidate = beta + step
                new = self._derivatives(candidate, fixed)
            beta, (loglik, gradient, information) = candidate, new
            if np.abs(beta).max() > self.DIVERGED:
                raise ConvergenceError("a coefficient diverges: no finite estimate")
            decrement = gradient @ np.linalg.solve(information, gradient) / 2
            if decrement < 1e-16 or np.abs(step).max() < 1e-11:
                return beta
        raise ConvergenceError(f"no convergence in {self.MAX_STEPS} Newton steps")

    def _per_death_time(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.by_death_time.indptr[:-1])

    def _derivatives(
        self, beta: np.ndarray, fixed: EfronSlots
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Log partial likelihood, score and information at beta.

        With A the risk-set sums and T the tied deaths' sums at a death time, tied death j
        of d has denominator a = A0 - (j/d) T0 and mean m = (A1 - (j/d) T1) / a; the
        information is Σ (A2 - (j/d) T2) / a - m m' over the tied deaths of every time.
        """
        eta = beta @ self.xt
        risk = fixed.weights * np.exp(eta)
        self.by_time.data = risk
        per_time = self.by_time @ self.moments
        at_risk = np.cumsum(per_time[::-1], axis=0)[::-1][self.death_times]
        death_risk = risk[self.death_rows]
        self.by_death_time.data = death_risk
        ties = self.by_death_time @ self.death_moments
        slots, share, times = fixed.slots, fixed.share, len(ties)
        inverse = 1 / (at_risk[slots, 0] - share * ties[slots, 0])

        def per_death_time(values: np.ndarray) -> np.ndarray:
            return np.bincount(slots, weights=values, minlength=times)

        c0, c1 = per_death_time(inverse), per_death_time(share * inverse)
        q0, q1, q2 = (per_death_time(share**k * inverse**2) for k in (0, 1, 2))
        a1, t1 = at_risk[:, 1:], ties[:, 1:]
        # Σ over risk sets of c0·A2, as each patient's risk times the c0 of its risk sets
        in_risk_sets = np.concatenate([[0.0], np.cumsum(c0)])[self.risk_sets]
        second = self.products @ (risk * in_risk_sets)
        second -= self.death_products @ (death_risk * c1[self.death_group])
        information = np.empty((len(beta), len(beta)))
        information[self.upper] = second
        information.T[self.upper] = second
        cross = a1.T @ (q1[:, None] * t1)
        information -= a1.T @ (q0[:, None] * a1) - cross - cross.T + t1.T @ (q2[:, None] * t1)
        loglik = float(fixed.death_weights @ eta[self.death_rows] + np.log(inverse).sum())
        gradient = fixed.death_weights @ self.death_x - (c0 @ a1 - c1 @ t1)
        return loglik, gradient, information


@dataclass(frozen=True)
class EfronSlots:
    """What a weighting fixes for every Newton step: the patients' weights (sorted by
    time), the deaths' weights, and one slot per weighted tied death (its death time and
    Efron share j/d)."""

    weights: np.ndarray
    death_weights: np.ndarray
    slots: np.ndarray
    share: np.ndarray


class WeightedRestrictedMean:
    """The Kaplan–Meier area up to a horizon for many frequency weightings of the same
    patients (bootstrap resamples): sorted and grouped by time once, each weighting is then
    two weighted counts per distinct time."""

    def __init__(self, time: np.ndarray, dead: np.ndarray, horizon: float) -> None:
        self.times, self.slot = np.unique(np.append(time, 0.0), return_inverse=True)
        self.slot = self.slot[:-1]
        self.dead = np.asarray(dead, dtype=float)
        inside = self.times < horizon
        self.inside = inside
        self.widths = np.diff(np.append(self.times[inside], horizon))

    def area(self, weights: np.ndarray) -> float:
        size = len(self.times)
        deaths = np.bincount(self.slot, weights=self.dead * weights, minlength=size)
        leaving = np.bincount(self.slot, weights=weights, minlength=size)
        at_risk = weights.sum() - np.concatenate([[0.0], np.cumsum(leaving)[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            surv = np.cumprod(np.where(at_risk > 0, 1 - deaths / at_risk, 1.0))
        return float(surv[self.inside] @ self.widths)


# ---------------------------------------------------------------------------------------
# restricted mean survival and competing risks


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
