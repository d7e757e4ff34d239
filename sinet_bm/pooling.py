"""Pooling results across centres: meta-analysis, Mantel–Haenszel, stratified log-rank and a
pooled actuarial life table.

Each centre shares aggregates only (an estimate with its CI, a 2×2 table, the log-rank
O − E and V of its BM group, life-table counts), so everything here works from those; the
per-centre functions that produce them from a centre's own rows are here as well.

The formulas follow the R functions the results are checked against (tests/r/pooling.R):
metafor's `rma(method = "REML", test = "knha")` and its `predict()`, `mantelhaen.test`,
`survdiff`. Small centres are the rule, so a quantity that cannot be computed (one centre,
no events, a zero margin) comes back as None with the reason, never as an exception.

statsmodels is not used (nor installed): its `combine_effects` estimates τ² by
DerSimonian–Laird or Paule–Mandel only, so its Knapp–Hartung interval is not the contract's
REML one; its I² is Higgins' (Q − df)/Q rather than metafor's τ²/(τ² + s²); and its
`StratifiedTable.test_null_odds` subtracts the continuity correction even when
|Σ(a − E a)| < 0.5, where `mantelhaen.test` does not, and turns NaN on a centre with n ≤ 1
(a 0/0 in its variance). What would remain of it, the Mantel–Haenszel odds ratio and its
Robins–Breslow–Greenland CI, is a few lines of sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit, logit

__all__ = [
    "LifeTable",
    "LogrankContribution",
    "MantelHaenszel",
    "MetaAnalysis",
    "Pooled",
    "StratifiedLogrank",
    "expit",
    "life_table_counts",
    "log_hazard_ratios",
    "logit_proportions",
    "logrank_contribution",
    "pool_life_tables",
    "stratified_logrank",
]

# metafor stops Fisher scoring on a change of τ² below 1e-5; the REML root is wanted to
# machine precision here, so the pooled numbers do not depend on where an iteration stopped.
REML_THRESHOLD = 1e-13
REML_MAX_ITERATIONS = 1000


def _quantile(level: float) -> float:
    """z_{(1+L)/2}: the normal quantile of a two-sided interval at level L."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return float(stats.norm.ppf((1 + level) / 2))


# --- per-centre effect sizes ----------------------------------------------------------------


def log_hazard_ratios(
    hr: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    level: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(y, v) of each centre's reported HR: a Wald CI is symmetric on the log scale, so its
    width gives the SE the centre used, SE = (log upper − log lower) / (2 z_{(1+L)/2})."""
    hr, lower, upper = (np.asarray(a, dtype=float) for a in (hr, lower, upper))
    se = (np.log(upper) - np.log(lower)) / (2 * _quantile(level))
    return np.log(hr), se**2


def logit_proportions(
    x: Sequence[int] | np.ndarray, m: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(y, v) of each centre's proportion x/m on the logit scale, where the pooled value is
    unbounded and v = 1/x + 1/(m − x) is its delta-method variance. A centre with x = 0 or
    x = m gets half a patient added to either outcome (x + 0.5 of m + 1, as metafor's
    escalc("PLO") does), which keeps its y and v finite; a centre with m = 0 has no estimate:
    NaN, which MetaAnalysis.fit leaves out."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    if np.any((x < 0) | (x > m)):
        raise ValueError("each x must lie in 0..m")
    corrected = (m > 0) & ((x == 0) | (x == m))
    x = np.where(corrected, x + 0.5, x)
    m = np.where(corrected, m + 1.0, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(m > 0, logit(x / m), np.nan)
        v = np.where(m > 0, 1 / x + 1 / (m - x), np.nan)
    return y, v


# --- meta-analysis --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pooled:
    """A pooled estimate on the analysis scale (log HR, logit p) with its CI and the
    two-sided p of H0: estimate = 0."""

    estimate: float
    se: float
    ci: tuple[float, float]
    p: float

    def transformed(self, f: Callable[[float], float]) -> tuple[float, float, float]:
        """(estimate, lower, upper) on the reported scale, e.g. f = math.exp for HRs or
        pooling.expit for proportions; the SE and p stay on the analysis scale."""
        return f(self.estimate), f(self.ci[0]), f(self.ci[1])


def _t_pooled(estimate: float, se: float, level: float, df: int) -> Pooled:
    crit = float(stats.t.ppf((1 + level) / 2, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = float(2 * stats.t.sf(np.abs(np.divide(estimate, se)), df))
    return Pooled(estimate, se, (estimate - crit * se, estimate + crit * se), p)


def _fixed_effect(y: np.ndarray, v: np.ndarray, level: float) -> Pooled:
    w = 1 / v
    estimate = float(np.sum(w * y) / np.sum(w))
    se = float(1 / np.sqrt(np.sum(w)))
    z = _quantile(level)
    p = float(2 * stats.norm.sf(abs(estimate / se)))
    return Pooled(estimate, se, (estimate - z * se, estimate + z * se), p)


def _reml_loglik(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    """The restricted log-likelihood of τ², up to a constant."""
    w = 1 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return float(-0.5 * (np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2)))


def _reml_tau2(y: np.ndarray, v: np.ndarray) -> tuple[float | None, str]:
    """REML τ² by metafor's route: Fisher scoring from the Hedges estimate, kept at τ² ≥ 0,
    and a last check that τ² = 0 is not more likely (metafor's ll0check). metafor halves a
    step that would cross 0 until it does not, which approaches τ² = 0 in ever smaller
    steps where the maximum lies on the boundary; a step to 0 gets there at once, and the
    next step (≤ 0 there) ends the iteration.
    With one covariate (the intercept) the scoring step needs only sums over the k centres:
    P y = w (y − μ), tr P = Σw − Σw²/Σw, tr P² = Σw² − 2Σw³/Σw + (Σw²/Σw)²."""
    k = len(y)
    tau2 = max(0.0, float(np.sum((y - y.mean()) ** 2) / (k - 1) - v.mean()))  # Hedges
    for _ in range(REML_MAX_ITERATIONS):
        w = 1 / (v + tau2)
        sw, sw2, sw3 = np.sum(w), np.sum(w**2), np.sum(w**3)
        mu = np.sum(w * y) / sw
        tr_p = sw - sw2 / sw
        tr_pp = sw2 - 2 * sw3 / sw + (sw2 / sw) ** 2
        step = float((np.sum(w**2 * (y - mu) ** 2) - tr_p) / tr_pp)
        if tau2 + step < 0:  # metafor halves such a step until τ² ≥ 0: towards τ² = 0
            step = -tau2
        tau2 += step
        if abs(step) <= REML_THRESHOLD * max(1.0, tau2):
            break
    else:
        return None, f"REML: Fisher scoring did not converge in {REML_MAX_ITERATIONS} steps"
    if tau2 > 0 and _reml_loglik(y, v, 0.0) > _reml_loglik(y, v, tau2):
        tau2 = 0.0
    return tau2, ""


@dataclass(frozen=True)
class MetaAnalysis:
    """Inverse-variance pooling of k centres' (y, v).

    `fixed` is the fixed-effect estimate (z CI); `random` the random-effects estimate with
    τ² by REML and the Knapp–Hartung SE and t(k − 1) CI; `prediction` the interval where a
    new centre's true effect is expected; `i2` is τ²/(τ² + s²) as a fraction; `q`, `q_p`
    Cochran's Q and its χ²(k − 1) p (0 and 1 for one centre). What needs two centres or
    more is None for k = 1, everything for k = 0, and `reason` says why.
    """

    k: int
    level: float
    fixed: Pooled | None
    random: Pooled | None
    prediction: tuple[float, float] | None
    tau2: float | None
    i2: float | None
    q: float | None
    q_p: float | None
    reason: str = ""

    @classmethod
    def fit(
        cls, y: Sequence[float] | np.ndarray, v: Sequence[float] | np.ndarray, level: float
    ) -> MetaAnalysis:
        """Centres whose y or v is NaN (no estimate, e.g. a proportion of no patients) are
        left out; the others need a finite y and a positive, finite v."""
        y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
        if y.shape != v.shape or y.ndim != 1:
            raise ValueError("y and v must be 1-d arrays of the same length")
        keep = ~(np.isnan(y) | np.isnan(v))
        y, v = y[keep], v[keep]
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError("every estimate needs a finite y and a finite v > 0")
        k = len(y)
        _quantile(level)
        if k == 0:
            return cls(0, level, None, None, None, None, None, None, None, "no centre")
        fixed = _fixed_effect(y, v, level)
        if k == 1:  # Q = 0 on 0 df, P(χ²₀ ≥ 0) = 1, as metafor's QE and QEp
            reason = "one centre: no between-centre variance, I² or random effects"
            return cls(1, level, fixed, None, None, None, None, 0.0, 1.0, reason)
        w = 1 / v
        q = max(0.0, float(np.sum(w * (y - fixed.estimate) ** 2)))
        q_p = float(stats.chi2.sf(q, k - 1))
        tau2, reason = _reml_tau2(y, v)
        if tau2 is None:
            return cls(k, level, fixed, None, None, None, None, q, q_p, reason)
        s2 = (k - 1) * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))  # metafor's "typical" v
        i2 = float(tau2 / (tau2 + s2))
        random = _knapp_hartung(y, v, tau2, level)
        return cls(k, level, fixed, random, _prediction(random, tau2, level, k), tau2, i2, q, q_p)


def _knapp_hartung(y: np.ndarray, v: np.ndarray, tau2: float, level: float) -> Pooled:
    """The random-effects mean with the Knapp–Hartung variance q/Σw*, q not truncated at 1
    (metafor's test = "knha", not "adhoc"); a residual sum at rounding level counts as 0,
    as in metafor."""
    k = len(y)
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    rss = float(np.sum(w * (y - mu) ** 2))
    q = 0.0 if rss <= np.finfo(float).eps else rss / (k - 1)
    return _t_pooled(mu, float(np.sqrt(q / np.sum(w))), level, k - 1)


def _prediction(random: Pooled, tau2: float, level: float, k: int) -> tuple[float, float]:
    """μ ± t_{k−1,(1+L)/2} √(SE² + τ²) with the Knapp–Hartung SE: what metafor's predict()
    returns as pi.lb, pi.ub for a knha model (it reuses the CI's t quantile with k − 1 df;
    Higgins et al.'s k − 2 df is its undocumented pi.type = "riley", not the default)."""
    half = float(stats.t.ppf((1 + level) / 2, k - 1) * np.sqrt(random.se**2 + tau2))
    return random.estimate - half, random.estimate + half


# --- Mantel–Haenszel ------------------------------------------------------------------------


@dataclass(frozen=True)
class MantelHaenszel:
    """The Mantel–Haenszel odds ratio over centres' 2×2 tables [[a, b], [c, d]] with the
    Robins–Breslow–Greenland CI, and the Cochran–Mantel–Haenszel test with R's continuity
    rule; `tables` is the number of tables with n ≥ 2, the only ones that carry information.
    A part that cannot be computed is None and `reason` says why."""

    tables: int
    odds_ratio: float | None
    ci: tuple[float, float] | None
    statistic: float | None
    p: float | None
    reason: str = ""

    @classmethod
    def fit(cls, tables: Sequence | np.ndarray, level: float) -> MantelHaenszel:
        """A table with n ≤ 1 adds nothing to any sum below (ad = bc = 0, and its variance
        of a is 0 by the limit); R's mantelhaen.test refuses such a stratum instead."""
        x = np.asarray(tables, dtype=float).reshape(-1, 2, 2)
        if np.any(x < 0) or np.any(x != np.round(x)):
            raise ValueError("tables must hold non-negative counts")
        z = _quantile(level)
        n = x.sum(axis=(1, 2))
        x, n = x[n >= 2], n[n >= 2]
        a, b, c, d = x[:, 0, 0], x[:, 0, 1], x[:, 1, 0], x[:, 1, 1]
        reasons = []
        statistic = p = None
        variance = np.sum((a + b) * (c + d) * (a + c) * (b + d) / (n**2 * (n - 1)))
        if variance > 0:
            delta = float(np.sum(a - (a + b) * (a + c) / n))
            yates = 0.5 if abs(delta) >= 0.5 else 0.0  # as mantelhaen.test(correct = TRUE)
            statistic = float((abs(delta) - yates) ** 2 / variance)
            p = float(stats.chi2.sf(statistic, 1))
        else:
            reasons.append("test not computable: no table with both margins non-zero")
        odds_ratio = ci = None
        r, s = a * d / n, b * c / n
        sr, ss = np.sum(r), np.sum(s)
        if sr > 0 and ss > 0:
            odds_ratio = float(sr / ss)
            pr, qs = (a + d) / n, (b + c) / n  # Robins, Breslow and Greenland (1986)
            var_log = (
                np.sum(pr * r) / (2 * sr**2)
                + np.sum(pr * s + qs * r) / (2 * sr * ss)
                + np.sum(qs * s) / (2 * ss**2)
            )
            half = z * np.sqrt(var_log)
            ci = (float(odds_ratio * np.exp(-half)), float(odds_ratio * np.exp(half)))
        elif ss > 0:  # as mantelhaen.test: 0, with no interval around it
            odds_ratio = 0.0
            reasons.append("odds ratio 0 (Σad/n is 0): no confidence interval")
        else:
            reasons.append("odds ratio not computable: Σbc/n is 0")
        return cls(len(n), odds_ratio, ci, statistic, p, "; ".join(reasons))


# --- stratified log-rank --------------------------------------------------------------------


@dataclass(frozen=True)
class LogrankContribution:
    """One centre's share of the stratified log-rank test: observed minus expected events
    in the first group (BM) and the hypergeometric variance, summed over its event times."""

    observed: float
    expected: float
    variance: float

    @property
    def o_minus_e(self) -> float:
        return self.observed - self.expected


def logrank_contribution(
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    group: Sequence[bool] | np.ndarray,
) -> LogrankContribution:
    """O, E and V of the patients with `group` true, as survdiff counts them: at each
    distinct time, E = d n1/n and V = d (n1/n)(1 − n1/n)(n − d)/(n − 1), where the tied d
    events all see the same risk set. A centre with one group only, or no event, gives 0s."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    group = np.asarray(group, dtype=bool)
    if not time.shape == event.shape == group.shape or time.ndim != 1:
        raise ValueError("time, event and group must be 1-d arrays of the same length")
    times, index = np.unique(time, return_inverse=True)
    k = len(times)
    leaving = np.bincount(index, minlength=k)
    leaving1 = np.bincount(index, weights=group, minlength=k)
    d = np.bincount(index, weights=event, minlength=k)
    observed = float(np.sum(event & group))
    at_risk = np.cumsum(leaving[::-1])[::-1].astype(float)  # time ≥ t
    at_risk1 = np.cumsum(leaving1[::-1])[::-1]
    share = at_risk1 / at_risk
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(at_risk > 1, d * share * (1 - share) * (at_risk - d) / (at_risk - 1), 0.0)
    return LogrankContribution(observed, float(np.sum(d * share)), float(np.sum(v)))


@dataclass(frozen=True)
class StratifiedLogrank:
    """χ² = (Σ(O − E))² / ΣV over centres with 1 df: a log-rank test that compares patients
    only with patients of their own centre."""

    o_minus_e: float
    variance: float
    statistic: float | None
    p: float | None
    reason: str = ""


def stratified_logrank(contributions: Sequence[LogrankContribution]) -> StratifiedLogrank:
    o_minus_e = float(sum(c.o_minus_e for c in contributions))
    variance = float(sum(c.variance for c in contributions))
    if not variance > 0:
        reason = "not computable: no centre with an event while both groups were at risk"
        return StratifiedLogrank(o_minus_e, variance, None, None, reason)
    statistic = o_minus_e**2 / variance
    return StratifiedLogrank(o_minus_e, variance, statistic, float(stats.chi2.sf(statistic, 1)))


# --- pooled life table ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LifeTable:
    """Counts on the intervals [j w, (j + 1) w), j = 0 … H/w − 1: `at_risk` at the start of
    each, `deaths` and `censored` within it. Centres share these counts, and counts add up:
    pooling is a sum, and the actuarial S follows from the pooled counts."""

    width: float
    at_risk: np.ndarray
    deaths: np.ndarray
    censored: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return self.width * np.arange(len(self.at_risk))

    @property
    def survival(self) -> np.ndarray:
        """S at the end of each interval, Π (1 − d / (r − c/2)): the censored count as at
        risk for half the interval; an interval with nobody at risk leaves S as it was."""
        effective = self.at_risk - self.censored / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(effective > 0, 1 - self.deaths / effective, 1.0)
        return np.cumprod(factor)

    def survival_at(self, months: float) -> float:
        """S at the end of the interval that ends at `months`, a multiple of the width."""
        j = _intervals(months, self.width)
        if not 1 <= j <= len(self.at_risk):
            raise ValueError(f"{months!r} months is not an interval end of this table")
        return float(self.survival[j - 1])


def _intervals(length: float, width: float) -> int:
    count = round(length / width)
    if not np.isclose(count * width, length, rtol=1e-12, atol=0):
        raise ValueError(f"{length!r} is not a multiple of the interval width {width!r}")
    return int(count)


def _interval_index(time: np.ndarray, width: float, k: int) -> np.ndarray:
    """j with j w ≤ t < (j + 1) w, k from the horizon on. The ends are compared as the
    doubles j·w, as R's cut(right = FALSE) on seq(0, H, w) does: floor(t / w) would put a
    time that is exactly j·w in interval j − 1 whenever j·w / w rounds below j (w = 0.1,
    t = 43 · 0.1 = 4.3: t / w = 42.99999999999999)."""
    return np.searchsorted(width * np.arange(k + 1), time, side="right") - 1


def life_table_counts(
    time: Sequence[float] | np.ndarray,
    dead: Sequence[bool] | np.ndarray,
    width: float,
    horizon: float,
) -> LifeTable:
    """One centre's counts. A time exactly at j w belongs to [j w, (j + 1) w), so a patient
    censored or dying at an interval end is still at risk at the start of the next; times
    from the horizon on only count as at risk."""
    time = np.asarray(time, dtype=float)
    dead = np.asarray(dead, dtype=bool)
    if time.shape != dead.shape or time.ndim != 1:
        raise ValueError("time and dead must be 1-d arrays of the same length")
    if not width > 0 or np.any(time < 0) or np.any(np.isnan(time)):
        raise ValueError("width must be positive and times non-negative")
    k = _intervals(horizon, width)
    if k < 1:
        raise ValueError("the horizon must span at least one interval")
    index = _interval_index(time, width, k)
    deaths = np.bincount(index[dead], minlength=k + 1)[:k]
    censored = np.bincount(index[~dead], minlength=k + 1)[:k]
    leaving = np.bincount(index, minlength=k + 1)
    at_risk = len(time) - np.concatenate(([0], np.cumsum(leaving)[: k - 1]))
    return LifeTable(float(width), at_risk, deaths, censored)


def pool_life_tables(tables: Sequence[LifeTable]) -> LifeTable:
    """Sums of the centres' counts; every table must have the same intervals."""
    if not tables:
        raise ValueError("no life table to pool")
    width, length = tables[0].width, len(tables[0].at_risk)
    if any(t.width != width or len(t.at_risk) != length for t in tables):
        raise ValueError("life tables on different intervals cannot be pooled")
    return LifeTable(
        width,
        np.sum([t.at_risk for t in tables], axis=0),
        np.sum([t.deaths for t in tables], axis=0),
        np.sum([t.censored for t in tables], axis=0),
    )
