"""Every estimate of DATA_CONTRACT.md section 3, as tidy rows of `estimates.csv`.

Each function returns rows (dicts with ESTIMATE_COLUMNS) rather than raising on data that
a small centre may have (an empty group, no events, a median never reached): such an
estimate keeps its row with an empty value and the reason in `method`, and the run goes on.
Statistics come from scipy and lifelines; only R's median rule for Kaplan–Meier curves and
the global Schoenfeld test, which lifelines does not provide, are written here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.statistics import logrank_test
from scipy import optimize, stats
from scipy.special import gammaln, logsumexp


def read_result(path: str | Path) -> pd.DataFrame:
    """Read a result CSV of the pipeline; round-trip float parsing keeps every bit."""
    return pd.read_csv(path, float_precision="round_trip")


ESTIMATE_COLUMNS = [
    "estimate",
    "population",
    "n",
    "value",
    "ci_lower",
    "ci_upper",
    "p_value",
    "method",
]
Row = dict[str, object]
TOLERANCE = float(np.sqrt(np.finfo(float).eps))
# lifelines' Newton-Raphson, by default, takes shortened steps and stops on a relative
# log-likelihood change of 1e-9, returning coefficients up to 1e-3 (relative) short of the
# maximum R's coxph finds. Full steps and a score-based stop reach it to ~1e-9.
NEWTON = {"step_size": 1.0, "precision": 1e-16, "r_precision": 0.0}


def row(
    estimate: str,
    population: str,
    n: int,
    value: float | None = None,
    ci: tuple[float | None, float | None] = (None, None),
    p_value: float | None = None,
    method: str = "",
) -> Row:
    return {
        "estimate": estimate,
        "population": population,
        "n": int(n),
        "value": value,
        "ci_lower": ci[0],
        "ci_upper": ci[1],
        "p_value": p_value,
        "method": method,
    }


def estimates_frame(rows: Sequence[Row]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=ESTIMATE_COLUMNS)
    frame["n"] = frame["n"].astype("Int64")
    for name in ("value", "ci_lower", "ci_upper", "p_value"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def write_estimates(frame: pd.DataFrame, path: str | Path) -> None:
    """Full precision (shortest round-trip repr of each double), never rounded."""
    frame.to_csv(path, index=False, lineterminator="\n")


# ---------------------------------------------------------------------------------------
# counts and proportions


def count(estimate: str, population: str, value: int, n: int) -> Row:
    return row(estimate, population, n, value, method="count")


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


def conditional_odds_ratio(table: np.ndarray, level: float) -> tuple[float, float, float]:
    """Conditional MLE of the odds ratio and its exact CI (as R fisher.test, scipy)."""
    law = NoncentralHypergeometric.of(table)
    a = int(table[0, 0])
    low_end, high_end = int(law.support[0]), int(law.support[-1])
    alpha = (1 - level) / 2
    if a == low_end:
        estimate = 0.0
    elif a == high_end:
        estimate = float("inf")
    else:
        estimate = solve_increasing(lambda psi: law.mean(psi) - a)
    lower = 0.0 if a == low_end else solve_increasing(lambda psi: law.sf(a - 1, psi) - alpha)
    upper = float("inf") if a == high_end else solve_increasing(lambda psi: alpha - law.cdf(a, psi))
    return estimate, lower, upper


def fisher_odds_ratio(
    estimate: str, population: str, table: np.ndarray, level: float, comparison: str
) -> Row:
    """Conditional-MLE odds ratio with exact CI and Fisher's two-sided p.

    `table` is [[exposed & outcome, exposed & no outcome], [unexposed & outcome, ...]].
    """
    n = int(table.sum())
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return row(estimate, population, n, method=f"not computable: a margin of {comparison} is 0")
    odds, lower, upper = conditional_odds_ratio(table, level)
    p_value = stats.fisher_exact(table, alternative="two-sided").pvalue
    return row(
        estimate,
        population,
        n,
        odds,
        (lower, upper),
        p_value,
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


@dataclass(frozen=True)
class KaplanMeier:
    median: float
    lower: float
    upper: float
    fitter: KaplanMeierFitter


def kaplan_meier(durations: pd.Series, events: pd.Series, level: float, label: str) -> KaplanMeier:
    """KM curve with the log-log pointwise band (lifelines' exponential Greenwood = R's
    conf.type = "log-log"), band set to NaN where S = 0 as R reports it."""
    fitter = KaplanMeierFitter(alpha=1 - level, label=label).fit(durations, events)
    times = fitter.survival_function_.index.to_numpy(dtype=float)
    surv = fitter.survival_function_.iloc[:, 0].to_numpy()
    band = fitter.confidence_interval_survival_function_.to_numpy()
    band[surv <= 0, :] = np.nan
    last = float(np.max(durations))
    return KaplanMeier(
        median=r_quantile(times, surv, 0.5, last),
        lower=r_quantile(times, band[:, 0], 0.5, last),
        upper=r_quantile(times, band[:, 1], 0.5, last),
        fitter=fitter,
    )


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
    km = kaplan_meier(durations, events.astype(bool), level, estimate)
    method = f"{what}; log-log pointwise {level:.0%} CI; R survival median rule"
    missing = [
        name
        for name, value in (
            ("median", km.median),
            ("lower CI bound", km.lower),
            ("upper CI bound", km.upper),
        )
        if np.isnan(value)
    ]
    if missing:
        method += "; " + ", ".join(missing) + " not reached"
    return row(
        estimate,
        population,
        n,
        nan_to_none(km.median),
        (nan_to_none(km.lower), nan_to_none(km.upper)),
        method=method,
    )


def nan_to_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def logrank(
    estimate: str, population: str, durations: pd.Series, events: pd.Series, group: pd.Series
) -> Row:
    n = len(durations)
    if group.nunique() < 2 or not events.any():
        return row(
            estimate, population, n, method="log-rank: not computable, one group only or no events"
        )
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
class CoxFit:
    fitter: CoxPHFitter | None
    data: pd.DataFrame
    duration: str
    event: str
    dropped: dict[str, str]
    failure: str


def fit_cox(
    data: pd.DataFrame, covariates: Sequence[str], duration: str, event: str, level: float
) -> CoxFit:
    """Efron-ties Cox model; covariates without variation are left out and said so."""
    dropped = {name: "no variation in the data" for name in covariates if data[name].nunique() < 2}
    kept = [name for name in covariates if name not in dropped]
    frame = data[[duration, event, *kept]].astype(float)
    if not kept:
        return CoxFit(None, frame, duration, event, dropped, "no covariate with variation")
    if frame[event].sum() == 0:
        return CoxFit(None, frame, duration, event, dropped, "no events")
    fitter = CoxPHFitter(alpha=1 - level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            fitter.fit(
                frame, duration_col=duration, event_col=event, batch_mode=True, fit_options=NEWTON
            )
    except (ConvergenceError, ConvergenceWarning) as error:
        first_line = str(error).strip().split(". ")[0] or "no reason"
        return CoxFit(None, frame, duration, event, dropped, f"did not converge ({first_line})")
    return CoxFit(fitter, frame, duration, event, dropped, "")


def cox_rows(
    fit: CoxFit, terms: dict[str, str], population: str, level: float, what: str
) -> list[Row]:
    """One row per model term: hazard ratio, Wald CI and Wald p."""
    n = len(fit.data)
    rows = []
    for estimate, covariate in terms.items():
        if fit.fitter is None or covariate in fit.dropped:
            reason = fit.dropped.get(covariate) or fit.failure
            rows.append(row(estimate, population, n, method=f"{what}: not computable, {reason}"))
            continue
        summary = fit.fitter.summary.loc[covariate]
        hazard_ratio = float(summary["exp(coef)"])
        lower, upper = (
            float(summary[f"exp(coef) {side} {level:.0%}"]) for side in ("lower", "upper")
        )
        if not np.all(np.isfinite([hazard_ratio, lower, upper])):
            rows.append(
                row(estimate, population, n, method=f"{what}: not computable, infinite estimate")
            )
            continue
        rows.append(
            row(
                estimate,
                population,
                n,
                hazard_ratio,
                (lower, upper),
                float(summary["p"]),
                f"{what}; hazard ratio, Efron ties, Wald {level:.0%} CI and p",
            )
        )
    return rows


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
    overall = schoenfeld_tests(fit).iloc[-1]
    return float(overall["chi_square"]), float(overall["p_value"]), int(overall["df"])


def scaled_schoenfeld(fit: CoxFit) -> pd.DataFrame:
    """β + scaled residual per death and covariate (what R's plot(cox.zph) draws)."""
    residuals, times = schoenfeld_residuals(fit)
    variance = fit.fitter.variance_matrix_.to_numpy()
    scaled = len(times) * residuals @ variance + fit.fitter.params_.to_numpy()
    frame = pd.DataFrame(scaled, columns=list(fit.fitter.params_.index))
    return frame.assign(months=times, km_time=km_transformed_time(fit, times))


# ---------------------------------------------------------------------------------------
# the study's estimates


def populations(endpoints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    eligible = endpoints[endpoints["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    return {
        "exported": endpoints,
        "all": eligible,
        "stage_iv": stage_iv,
        "bm": stage_iv[stage_iv["bm"]],
    }


def stage_iv_of(endpoints: pd.DataFrame) -> pd.DataFrame:
    return populations(endpoints)["stage_iv"].reset_index(drop=True)


def two_by_two(exposed: pd.Series, outcome: pd.Series) -> np.ndarray:
    """[[exposed & outcome, exposed & not], [unexposed & outcome, unexposed & not]]."""
    exposed, outcome = exposed.astype(bool), outcome.astype(bool)
    return np.array(
        [
            [(exposed & outcome).sum(), (exposed & ~outcome).sum()],
            [(~exposed & outcome).sum(), (~exposed & ~outcome).sum()],
        ]
    )


BM_TYPES = ("osteoblastic", "osteolytic", "mixed")


def cohort_estimates(endpoints: pd.DataFrame, level: float) -> list[Row]:
    """Counts, proportions and Fisher tests: cohort flow, BM, detection, type and SREs."""
    pop = populations(endpoints)
    exported, eligible, stage_iv, bm = pop["exported"], pop["all"], pop["stage_iv"], pop["bm"]
    n_exp, n_all, n_iv, n_bm = len(exported), len(eligible), len(stage_iv), len(bm)
    reasons = exported["exclusion_reason"]
    sstr_only = bm[bm["sstr_only"]]
    rows = [
        count("n_exported", "exported", n_exp, n_exp),
        count("n_excluded_period", "exported", int((reasons == "study_period").sum()), n_exp),
        count("n_excluded_age", "exported", int((reasons == "age").sum()), n_exp),
        count("n_eligible", "all", n_all, n_all),
        count("n_stage_iv", "all", n_iv, n_all),
        proportion("prop_stage_iv", "all", n_iv, n_all, level),
        count("n_bm", "stage_iv", n_bm, n_iv),
        proportion("prop_bm", "stage_iv", n_bm, n_iv, level),
        proportion("prop_male", "all", int(eligible["male"].sum()), n_all, level),
        sample_median("median_age_years", "all", eligible["age_years"]),
        proportion("prop_functioning", "all", int(eligible["functioning"].sum()), n_all, level),
        proportion("prop_functioning_bm", "bm", int(bm["functioning"].sum()), n_bm, level),
        fisher_odds_ratio(
            "test_functioning_bm",
            "stage_iv",
            two_by_two(stage_iv["bm"], stage_iv["functioning"]),
            level,
            "functioning, BM vs no BM",
        ),
        proportion("prop_sstr_only", "bm", len(sstr_only), n_bm, level),
        sample_median(
            "median_months_to_morphologic",
            "bm",
            sstr_only.loc[
                sstr_only["morphologic_visible"].fillna(False).astype(bool), "months_to_morphologic"
            ],
        ),
        km_median(
            "median_months_to_morphologic_km",
            "bm",
            sstr_only["months_to_morphologic"],
            sstr_only["morphologic_visible"].fillna(False).astype(bool),
            level,
            "Kaplan-Meier median among SSTR-only BM (never visible: censored at last exam)",
        ),
    ]
    rows += [
        proportion(f"prop_{kind}", "bm", int((bm["bm_type"] == kind).sum()), n_bm, level)
        for kind in BM_TYPES
    ]
    rows.append(
        km_median(
            "median_followup_months",
            "all",
            eligible["os_months"],
            ~eligible["dead"],
            level,
            "reverse Kaplan-Meier median follow-up (death censors)",
        )
    )
    rows += sre_estimates(bm, level)
    return rows


def sre_estimates(bm: pd.DataFrame, level: float) -> list[Row]:
    n_bm = len(bm)
    n_sre = int(bm["sre"].sum())
    rows = [count("n_sre", "bm", n_sre, n_bm), proportion("prop_sre", "bm", n_sre, n_bm, level)]
    for kind in BM_TYPES:
        group = bm[bm["bm_type"] == kind]
        rows.append(
            proportion(f"prop_sre_{kind}", "bm", int(group["sre"].sum()), len(group), level)
        )
    treated, untreated = bm[bm["antiresorptive"]], bm[~bm["antiresorptive"]]
    rows += [
        proportion("prop_sre_antiresorptive", "bm", int(treated["sre"].sum()), len(treated), level),
        proportion(
            "prop_sre_no_antiresorptive", "bm", int(untreated["sre"].sum()), len(untreated), level
        ),
        fisher_odds_ratio(
            "test_sre_antiresorptive",
            "bm",
            two_by_two(bm["antiresorptive"], bm["sre"]),
            level,
            "SRE, with vs without antiresorptive therapy",
        ),
    ]
    return rows


ADJUSTED_TERMS = {
    "hr_os_bm_adjusted": "bm",
    "hr_os_age_adjusted": "age_years",
    "hr_os_male_adjusted": "male",
    "hr_os_g2_adjusted": "g2",
    "hr_os_g3_adjusted": "g3",
}


def cox_data(stage_iv: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Model frame: OS, BM, age per year, male, G2 and G3 against G1; complete cases."""
    columns = ["os_months", "dead", "bm", "age_years", "male", "grade", *keep]
    data = stage_iv[columns].copy()
    data = data[data["grade"].notna()]
    data["g2"] = data["grade"] == "G2"
    data["g3"] = data["grade"] == "G3"
    return data.drop(columns="grade").reset_index(drop=True)


def adjusted_cox(endpoints: pd.DataFrame, level: float) -> CoxFit:
    stage_iv = stage_iv_of(endpoints)
    return fit_cox(cox_data(stage_iv), list(ADJUSTED_TERMS.values()), "os_months", "dead", level)


def ph_tests_table(fit: CoxFit) -> pd.DataFrame:
    """The PH check per covariate, for the report's appendix (empty if the model failed)."""
    if fit.fitter is None:
        return pd.DataFrame(columns=["term", "chi_square", "df", "p_value"])
    return schoenfeld_tests(fit)


def survival_estimates(endpoints: pd.DataFrame, level: float) -> list[Row]:
    """OS by BM status in stage IV: KM medians, log-rank, Cox crude and adjusted, PH test."""
    stage_iv = stage_iv_of(endpoints)
    time, dead, bm = stage_iv["os_months"], stage_iv["dead"].astype(bool), stage_iv["bm"]
    rows = [
        km_median("median_os_bm", "stage_iv", time[bm], dead[bm], level),
        km_median("median_os_no_bm", "stage_iv", time[~bm], dead[~bm], level),
        logrank("test_os_logrank", "stage_iv", time, dead, bm.astype(bool)),
    ]
    crude = fit_cox(stage_iv, ["bm"], "os_months", "dead", level)
    rows += cox_rows(crude, {"hr_os_bm_crude": "bm"}, "stage_iv", level, "Cox, BM only")
    adjusted = adjusted_cox(endpoints, level)
    what = "Cox adjusted for age, sex and grade (complete cases)"
    rows += cox_rows(adjusted, ADJUSTED_TERMS, "stage_iv", level, what)
    rows.append(ph_test_row(adjusted))
    return rows


def ph_test_row(fit: CoxFit) -> Row:
    n = len(fit.data)
    if fit.fitter is None:
        return row(
            "test_ph_global",
            "stage_iv",
            n,
            method=f"Schoenfeld global test: not computable, {fit.failure}",
        )
    statistic, p_value, df = schoenfeld_global(fit)
    return row(
        "test_ph_global",
        "stage_iv",
        n,
        statistic,
        p_value=p_value,
        method=f"Grambsch-Therneau global test of scaled Schoenfeld residuals, KM-transformed "
        f"time; chi-square with {df} df",
    )


def read_estimates(paths: Sequence[str]) -> pd.DataFrame:
    """Concatenate the parts in the given order; an id may appear only once."""
    frame = pd.concat([read_result(path) for path in paths], ignore_index=True)
    duplicated = frame.loc[frame["estimate"].duplicated(), "estimate"].tolist()
    if duplicated:
        raise ValueError(f"estimate ids computed twice: {duplicated}")
    return estimates_frame(frame.to_dict("records"))


# ---------------------------------------------------------------------------------------
# Table 1


TABLE1_GROUPS = ("cohort", "bm", "no_bm")
TABLE1_CATEGORICAL = {
    "sex": ["female", "male"],
    "primary_site": ["jejunum", "ileum", "small_intestine_nos"],
    "grade": ["G1", "G2", "G3"],
    "functioning": ["yes", "no"],
}
TABLE1_CONTINUOUS = ("age_years", "ki67_percent")


def table1_groups(endpoints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    pop = populations(endpoints)
    stage_iv = pop["stage_iv"]
    return {
        "cohort": pop["all"],
        "bm": stage_iv[stage_iv["bm"]],
        "no_bm": stage_iv[~stage_iv["bm"]],
    }


def table1_values(frame: pd.DataFrame, variable: str) -> pd.Series:
    if variable == "functioning":
        return frame["functioning"].map({True: "yes", False: "no"})
    return frame[variable]


def continuous_rows(variable: str, groups: dict[str, pd.DataFrame]) -> list[dict]:
    """Median and IQR per group; Mann-Whitney U between stage IV with and without BM."""
    out: dict[str, object] = {"variable": variable, "level": "", "kind": "continuous"}
    for name, frame in groups.items():
        values = frame[variable]
        observed = values.dropna()
        out |= {
            f"{name}_n": len(observed),
            f"{name}_median": observed.median() if len(observed) else None,
            f"{name}_q1": observed.quantile(0.25) if len(observed) else None,
            f"{name}_q3": observed.quantile(0.75) if len(observed) else None,
            f"{name}_missing": int(values.isna().sum()),
        }
    bm, no_bm = groups["bm"][variable].dropna(), groups["no_bm"][variable].dropna()
    if len(bm) and len(no_bm):
        test = stats.mannwhitneyu(bm, no_bm, alternative="two-sided", method="asymptotic")
        out |= {"p_value": test.pvalue, "test": "Mann-Whitney U (normal approximation)"}
    return [out]


def categorical_rows(variable: str, levels: list[str], groups: dict[str, pd.DataFrame]) -> list:
    """Counts and column percentages per level; Fisher (2 levels) or chi-square, BM vs no BM."""
    rows = []
    values = {name: table1_values(frame, variable) for name, frame in groups.items()}
    for level in levels:
        out: dict[str, object] = {"variable": variable, "level": level, "kind": "categorical"}
        for name, series in values.items():
            known = int(series.notna().sum())
            n = int((series == level).sum())
            out |= {
                f"{name}_n": n,
                f"{name}_percent": 100 * n / known if known else None,
                f"{name}_missing": int(series.isna().sum()),
            }
        rows.append(out)
    crosstab = np.array(
        [[int((values[g] == level).sum()) for level in levels] for g in ("bm", "no_bm")]
    )
    crosstab = crosstab[:, crosstab.sum(axis=0) > 0]
    if crosstab.shape[1] >= 2 and (crosstab.sum(axis=1) > 0).all():
        if crosstab.shape[1] == 2:
            p_value, test = stats.fisher_exact(crosstab).pvalue, "Fisher exact"
        else:
            p_value = stats.chi2_contingency(crosstab, correction=False).pvalue
            test = "chi-square"
        rows[0] |= {"p_value": p_value, "test": test}
    return rows


def cohort_flow(endpoints: pd.DataFrame) -> pd.DataFrame:
    """Counts behind the flow diagram, from export to BM, and SREs counted or left out."""
    pop = populations(endpoints)
    reasons = endpoints["exclusion_reason"]
    exported = endpoints
    steps = [
        ("exported", "", len(exported), None),
        (
            "excluded",
            "diagnosis outside the study period",
            int((reasons == "study_period").sum()),
            None,
        ),
        ("excluded", "age at diagnosis below the minimum", int((reasons == "age").sum()), None),
        ("eligible", "", len(pop["all"]), None),
        ("stage_iv", "", len(pop["stage_iv"]), None),
        ("bm", "", len(pop["bm"]), None),
        ("no_bm", "", len(pop["stage_iv"]) - len(pop["bm"]), None),
        (
            "sre_counted",
            "on or after the BM date, population bm",
            int(pop["bm"]["sre"].sum()),
            int(pop["bm"]["n_sre"].sum()),
        ),
        (
            "sre_left_out",
            "before the first positive bone imaging",
            int((exported["n_sre_before_bm"] > 0).sum()),
            int(exported["n_sre_before_bm"].sum()),
        ),
        (
            "sre_left_out",
            "no positive bone imaging at all",
            int((exported["n_sre_without_bm"] > 0).sum()),
            int(exported["n_sre_without_bm"].sum()),
        ),
    ]
    frame = pd.DataFrame(steps, columns=["step", "reason", "patients", "events"])
    frame["events"] = frame["events"].astype("Int64")
    return frame


def baseline_table(endpoints: pd.DataFrame) -> pd.DataFrame:
    """Table 1: eligible cohort, and stage IV by BM status."""
    groups = table1_groups(endpoints)
    rows = [
        {"variable": "patients", "level": "", "kind": "count"}
        | {f"{name}_n": len(frame) for name, frame in groups.items()}
    ]
    rows += continuous_rows("age_years", groups)
    for variable, levels in TABLE1_CATEGORICAL.items():
        rows += categorical_rows(variable, levels, groups)
        if variable == "grade":
            rows += continuous_rows("ki67_percent", groups)
    columns = ["variable", "level", "kind"]
    for name in TABLE1_GROUPS:
        columns += [f"{name}_{s}" for s in ("n", "percent", "median", "q1", "q3", "missing")]
    return pd.DataFrame(rows).reindex(columns=[*columns, "p_value", "test"])
