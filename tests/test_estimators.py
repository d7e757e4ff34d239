"""Each statistic on a small case, against a value obtained by a second, independent route."""

from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from sinet_bm import estimators, results

LEVEL = 0.95
Z = stats.norm.ppf(0.975)


# --- Clopper-Pearson ------------------------------------------------------------------------


def test_clopper_pearson_zero_successes_has_closed_form():
    estimate = estimators.proportion("x", "bm", 0, 57, LEVEL)
    assert estimate["value"] == 0
    assert estimate["ci_lower"] == 0
    assert estimate["ci_upper"] == pytest.approx(1 - 0.025 ** (1 / 57), rel=1e-12)


def test_clopper_pearson_matches_beta_quantiles():
    # Exact interval = Beta quantiles (Clopper & Pearson 1934), written out by hand.
    estimate = estimators.proportion("x", "stage_iv", 105, 305, LEVEL)
    assert estimate["value"] == pytest.approx(105 / 305)
    assert estimate["ci_lower"] == pytest.approx(stats.beta.ppf(0.025, 105, 201), rel=1e-9)
    assert estimate["ci_upper"] == pytest.approx(stats.beta.ppf(0.975, 106, 200), rel=1e-9)


def test_empty_population_keeps_its_row():
    estimate = estimators.proportion("prop_sre_mixed", "bm", 0, 0, LEVEL)
    assert estimate["value"] is None and "empty" in estimate["method"]


# --- Fisher exact and the conditional odds ratio ----------------------------------------


def hypergeometric(a: int, table: np.ndarray, psi: float = 1.0) -> float:
    """P(X = a) for the (1,1) cell given the margins, under odds ratio psi (Fisher 1935)."""
    (r1, r2), c1 = table.sum(axis=1), table.sum(axis=0)[0]
    support = range(max(0, c1 - r2), min(r1, c1) + 1)
    weights = {x: comb(r1, x) * comb(r2, c1 - x) * psi**x for x in support}
    return weights.get(a, 0.0) / sum(weights.values())


def test_fisher_p_and_exact_ci_of_the_published_sre_table():
    table = np.array([[0, 57], [13, 35]])  # with AR: 0 of 57 SRE; without: 13 of 48
    estimate = estimators.fisher_odds_ratio("t", "bm", table, LEVEL, "SRE")
    observed = hypergeometric(0, table)
    support = range(0, 14)
    p_two_sided = sum(
        hypergeometric(x, table)
        for x in support
        if hypergeometric(x, table) <= observed * 1.0000001
    )
    assert estimate["p_value"] == pytest.approx(p_two_sided, rel=1e-9)
    assert estimate["p_value"] < 0.0001
    assert estimate["value"] == 0
    # Upper limit: the psi at which P(X <= 0) = 2.5%.
    upper = optimize.brentq(lambda psi: hypergeometric(0, table, psi) - 0.025, 1e-6, 10)
    assert estimate["ci_upper"] == pytest.approx(upper, rel=1e-6)


def test_conditional_mle_solves_the_conditional_score_equation():
    table = np.array([[77, 28], [106, 94]])
    estimate = estimators.fisher_odds_ratio("t", "stage_iv", table, LEVEL, "functioning")
    psi = estimate["value"]
    support = range(max(0, 183 - 200), min(105, 183) + 1)
    expected_a = sum(x * hypergeometric(x, table, psi) for x in support)
    assert expected_a == pytest.approx(77, rel=1e-6)
    assert psi != pytest.approx((77 * 94) / (28 * 106), rel=1e-3)  # not the sample odds ratio


def test_fisher_with_an_empty_margin_is_not_computable():
    estimate = estimators.fisher_odds_ratio("t", "bm", np.array([[0, 0], [3, 4]]), LEVEL, "x")
    assert estimate["value"] is None and "margin" in estimate["method"]


# --- Kaplan-Meier medians with R's rule -------------------------------------------------


def test_median_where_the_curve_is_exactly_one_half_is_the_midpoint():
    # S drops to 3/6 at t=3 and stays there until t=4: R reports (3 + 4) / 2.
    estimate = estimators.km_median(
        "m", "all", pd.Series([1.0, 2, 3, 4, 5, 6]), pd.Series([True] * 6), LEVEL
    )
    assert estimate["value"] == 3.5


def test_median_of_a_curve_ending_flat_at_one_half_uses_the_last_time():
    durations = pd.Series([1.0, 2, 3, 4])
    estimate = estimators.km_median(
        "m", "all", durations, pd.Series([True, True, False, False]), LEVEL
    )
    assert estimate["value"] == 3.0  # (2 + last follow-up 4) / 2


def test_median_not_reached_keeps_the_row_empty():
    estimate = estimators.km_median(
        "m", "all", pd.Series([1.0, 2, 3, 4]), pd.Series([True, False, False, False]), LEVEL
    )
    assert estimate["value"] is None
    assert "median" in estimate["method"] and "not reached" in estimate["method"]


def loglog_band(durations: np.ndarray, events: np.ndarray) -> pd.DataFrame:
    """KM with Greenwood variance and the log-log band, written out from the textbook."""
    times = np.unique(durations[events])
    at_risk = np.array([(durations >= t).sum() for t in times])
    deaths = np.array([((durations == t) & events).sum() for t in times])
    surv = np.cumprod(1 - deaths / at_risk)
    greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(greenwood) / np.abs(np.log(surv))
        lower = surv ** np.exp(Z * se)
        upper = surv ** np.exp(-Z * se)
    return pd.DataFrame({"time": times, "surv": surv, "lower": lower, "upper": upper})


def first_time_below_half(times: np.ndarray, curve: np.ndarray) -> float:
    below = np.flatnonzero(curve <= 0.5)
    return float(times[below[0]]) if below.size else float("nan")


def test_median_ci_comes_from_the_log_log_band():
    rng = np.random.default_rng(7)
    durations = np.round(rng.exponential(30, 60), 1) + 0.05  # no exact 0.5 plateaus
    events = rng.random(60) < 0.7
    band = loglog_band(durations, events)
    estimate = estimators.km_median("m", "all", pd.Series(durations), pd.Series(events), LEVEL)
    t = band["time"].to_numpy()
    assert estimate["value"] == first_time_below_half(t, band["surv"].to_numpy())
    assert estimate["ci_lower"] == first_time_below_half(t, band["lower"].to_numpy())
    assert estimate["ci_upper"] == first_time_below_half(t, band["upper"].to_numpy())


def test_reverse_kaplan_meier_follow_up():
    # Follow-up 10, 20, 30, 40 months; the patient at 20 died (censors follow-up).
    # Reverse KM: 10 -> 3/4; 20 censored; 30 -> 3/4 * 1/2 = 3/8 -> median 30.
    durations = pd.Series([10.0, 20, 30, 40])
    alive = pd.Series([True, False, True, True])
    assert estimators.km_median("f", "all", durations, alive, LEVEL)["value"] == 30


# --- log-rank and Cox -------------------------------------------------------------------


def test_logrank_chi_square_by_the_hypergeometric_formula():
    rng = np.random.default_rng(3)
    durations = pd.Series(np.round(rng.exponential(20, 40)))
    events = pd.Series(rng.random(40) < 0.8)
    group = pd.Series(np.arange(40) < 18)
    estimate = estimators.logrank("l", "stage_iv", durations, events, group)
    observed_minus_expected, variance = 0.0, 0.0
    for t in np.unique(durations[events]):
        risk = durations >= t
        n, n1 = risk.sum(), (risk & group).sum()
        d = ((durations == t) & events).sum()
        d1 = ((durations == t) & events & group).sum()
        observed_minus_expected += d1 - d * n1 / n
        if n > 1:
            variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    chi_square = observed_minus_expected**2 / variance
    assert estimate["value"] == pytest.approx(chi_square, rel=1e-9)
    assert estimate["p_value"] == pytest.approx(stats.chi2.sf(chi_square, 1), rel=1e-9)


def test_cox_hazard_ratio_maximises_the_partial_likelihood():
    rng = np.random.default_rng(11)
    n = 80
    bm = rng.random(n) < 0.4
    durations = rng.exponential(50 / np.where(bm, 2.0, 1.0)) + rng.random(n) * 1e-3  # no ties
    events = rng.random(n) < 0.75
    data = pd.DataFrame({"os_months": durations, "dead": events, "bm": bm})

    def negative_log_partial_likelihood(beta: np.ndarray) -> float:
        order = np.argsort(-durations)
        eta = beta[0] * bm[order]
        log_risk_set = np.logaddexp.accumulate(eta)
        return -float(np.sum((eta - log_risk_set)[events[order]]))

    beta = optimize.minimize(negative_log_partial_likelihood, [0.0], tol=1e-12).x[0]
    step = 1e-4
    curvature = (
        negative_log_partial_likelihood(np.array([beta + step]))
        - 2 * negative_log_partial_likelihood(np.array([beta]))
        + negative_log_partial_likelihood(np.array([beta - step]))
    ) / step**2
    se = 1 / np.sqrt(curvature)
    fit = estimators.fit_cox(data, ["bm"], "os_months", "dead", LEVEL)
    (estimate,) = results.term_rows(fit, {"hr": "bm"}, "stage_iv", LEVEL, "Cox")
    assert estimate["value"] == pytest.approx(np.exp(beta), rel=1e-5)
    assert estimate["ci_lower"] == pytest.approx(np.exp(beta - Z * se), rel=1e-4)
    assert estimate["p_value"] == pytest.approx(2 * stats.norm.sf(abs(beta / se)), rel=1e-3)


def test_cox_without_events_keeps_its_rows():
    data = pd.DataFrame({"t": [1.0, 2, 3], "d": [False] * 3, "x": [0, 1, 0]})
    fit = estimators.fit_cox(data, ["x"], "t", "d", LEVEL)
    (estimate,) = results.term_rows(fit, {"hr": "x"}, "stage_iv", LEVEL, "Cox")
    assert estimate["value"] is None and "no events" in estimate["method"]


def test_cox_drops_a_covariate_without_variation_and_says_so():
    rng = np.random.default_rng(5)
    data = pd.DataFrame(
        {
            "t": rng.exponential(10, 50),
            "d": rng.random(50) < 0.8,
            "x": rng.random(50) < 0.5,
            "g3": False,
        }
    )
    fit = estimators.fit_cox(data, ["x", "g3"], "t", "d", LEVEL)
    rows = results.term_rows(fit, {"hr_x": "x", "hr_g3": "g3"}, "stage_iv", LEVEL, "Cox")
    assert rows[0]["value"] is not None
    assert rows[1]["value"] is None and "no variation" in rows[1]["method"]


def test_global_ph_test_with_one_covariate_equals_lifelines_per_covariate_test():
    from lifelines.statistics import proportional_hazard_test

    rng = np.random.default_rng(2)
    data = pd.DataFrame(
        {"t": rng.weibull(1.5, 120) * 40, "d": rng.random(120) < 0.7, "x": rng.normal(size=120)}
    )
    fit = estimators.fit_cox(data, ["x"], "t", "d", LEVEL)
    statistic, p_value, df = estimators.schoenfeld_global(fit)
    reference = proportional_hazard_test(fit.fitter, fit.data, time_transform="km")
    assert df == 1
    assert statistic == pytest.approx(float(np.ravel(reference.test_statistic)[0]), rel=1e-10)
    assert p_value == pytest.approx(float(np.ravel(reference.p_value)[0]), rel=1e-8)


def test_estimates_round_trip_at_full_precision(tmp_path):
    frame = results.estimates_frame([results.row("x", "all", 3, 1 / 3, (0.1, 0.7), 1e-17)])
    results.write_estimates(frame, tmp_path / "e.csv")
    again = results.read_result(tmp_path / "e.csv")
    assert again.loc[0, "value"] == 1 / 3 and again.loc[0, "p_value"] == 1e-17


@pytest.mark.parametrize("seed", range(5))
def test_fast_conditional_odds_ratio_equals_scipy(seed):
    """Our vectorised law must give scipy's answer on tables scipy can still handle."""
    from scipy.stats.contingency import odds_ratio

    rng = np.random.default_rng(seed)
    for table in rng.integers(0, 40, size=(20, 2, 2)):
        if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
            continue
        reference = odds_ratio(table, kind="conditional")
        interval = reference.confidence_interval(LEVEL)
        fit = estimators.ConditionalOddsRatio(LEVEL).fit(table)
        ours = (fit.odds_ratio_, *fit.confidence_interval_)
        expected = (reference.statistic, interval.low, interval.high)
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_conditional_odds_ratio_of_a_registry_sized_table_is_the_sample_odds_ratio():
    """At 400,000 patients the conditional MLE is the cross-product ratio to 1e-4, and its
    exact interval the Woolf interval to 1e-3 (scipy takes minutes on this table)."""
    table = np.array([[70000, 30000], [110000, 190000]])
    fit = estimators.ConditionalOddsRatio(LEVEL).fit(table)
    sample = 70000 * 190000 / (30000 * 110000)
    half_width = 1.959964 * np.sqrt((1 / table).sum())
    assert fit.odds_ratio_ == pytest.approx(sample, rel=1e-4)
    woolf = (sample * np.exp(-half_width), sample * np.exp(half_width))
    assert fit.confidence_interval_ == pytest.approx(woolf, rel=1e-3)


def test_vectorised_schoenfeld_residuals_equal_lifelines_with_ties():
    rng = np.random.default_rng(8)
    data = pd.DataFrame(
        {
            "t": np.round(rng.exponential(12, 150)),  # many tied death times
            "d": rng.random(150) < 0.7,
            "x": rng.normal(size=150),
            "z": rng.random(150) < 0.4,
        }
    )
    fit = estimators.fit_cox(data, ["x", "z"], "t", "d", LEVEL)
    ours, times = estimators.schoenfeld_residuals(fit)
    ordered = fit.data.sort_values("t", kind="stable")
    deaths = ordered.index[ordered["d"].astype(bool)]
    reference = fit.fitter.compute_residuals(fit.data, kind="schoenfeld").loc[deaths]
    expected = reference.to_numpy()
    by_rows = lambda rows: rows[np.lexsort(np.round(rows, 9).T)]  # noqa: E731
    assert np.allclose(by_rows(ours), by_rows(expected), atol=1e-12)
    assert np.array_equal(times, ordered.loc[deaths, "t"].to_numpy())


def test_ph_tests_per_covariate_equal_lifelines_and_the_global_line_is_the_global_test():
    from lifelines.statistics import proportional_hazard_test

    rng = np.random.default_rng(4)
    data = pd.DataFrame(
        {
            "t": np.round(rng.weibull(1.3, 200) * 30),
            "d": rng.random(200) < 0.7,
            "x": rng.normal(size=200),
            "z": rng.random(200) < 0.5,
        }
    )
    fit = estimators.fit_cox(data, ["x", "z"], "t", "d", LEVEL)
    tests = estimators.schoenfeld_tests(fit).set_index("term")
    reference = proportional_hazard_test(fit.fitter, fit.data, time_transform="km").summary
    for term in ("x", "z"):
        assert tests.at[term, "chi_square"] == pytest.approx(
            reference.at[term, "test_statistic"], rel=1e-9
        )
    assert estimators.schoenfeld_global(fit)[0] == tests.at["GLOBAL", "chi_square"]
