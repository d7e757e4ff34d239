"""sinet_bm.pooling on examples small enough to work out by hand (the working is in the
comments); tests/test_pooling_against_r.py compares it with R on larger ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sinet_bm import pooling
from sinet_bm.pooling import (
    LogrankContribution,
    MantelHaenszel,
    MetaAnalysis,
    life_table_counts,
    log_hazard_ratios,
    logit_proportions,
    logrank_contribution,
    pool_life_tables,
    stratified_logrank,
)

Z = stats.norm.ppf(0.975)  # 1.959964...
T1 = stats.t.ppf(0.975, 1)  # 12.7062...
close = pytest.approx


# --- per-centre effect sizes ----------------------------------------------------------------


def test_log_hazard_ratio_from_its_wald_ci() -> None:
    # HR 2 (1, 4): the CI spans log 4 − log 1 = 2 log 2 = 2 z SE, so SE = log 2 / z
    y, v = log_hazard_ratios([2.0], [1.0], [4.0], 0.95)
    assert y[0] == close(math.log(2), rel=1e-15)
    assert v[0] == close((math.log(2) / Z) ** 2, rel=1e-15)
    # at level 0.9 the same CI means a smaller z, a larger SE
    _, v90 = log_hazard_ratios([2.0], [1.0], [4.0], 0.90)
    assert v90[0] == close((math.log(2) / stats.norm.ppf(0.95)) ** 2, rel=1e-15)


def test_logit_proportions_with_half_a_patient_at_0_and_m() -> None:
    y, v = logit_proportions([3, 0, 4, 0], [10, 4, 4, 0])
    # 3/10: logit = log(3/7), v = 1/3 + 1/7 = 10/21
    assert y[0] == close(math.log(3 / 7)) and v[0] == close(10 / 21)
    # 0/4 → 0.5/5: logit = log(0.5/4.5) = −log 9, v = 1/0.5 + 1/4.5 = 20/9
    assert y[1] == close(-math.log(9)) and v[1] == close(20 / 9)
    # 4/4 → 4.5/5: logit = log 9, v = 20/9
    assert y[2] == close(math.log(9)) and v[2] == close(20 / 9)
    # no patients, no estimate
    assert np.isnan(y[3]) and np.isnan(v[3])
    with pytest.raises(ValueError):
        logit_proportions([5], [4])


# --- meta-analysis --------------------------------------------------------------------------


def test_two_centres_with_equal_variances() -> None:
    # y = (0, 2), v = (0.5, 0.5). Fixed: w = (2, 2), μ = 1, SE = 1/√4 = 0.5, z = 2.
    m = MetaAnalysis.fit([0.0, 2.0], [0.5, 0.5], 0.95)
    assert m.k == 2 and m.reason == ""
    assert m.fixed.estimate == close(1.0) and m.fixed.se == close(0.5)
    assert m.fixed.ci == close((1 - 0.5 * Z, 1 + 0.5 * Z))
    assert m.fixed.p == close(2 * stats.norm.sf(2))
    # Q = 2·1² + 2·1² = 4 on 1 df
    assert m.q == close(4.0) and m.q_p == close(stats.chi2.sf(4, 1))
    # Equal v: REML τ² is the ANOVA value, sample variance − v = 2/1 − 0.5 = 1.5
    assert m.tau2 == close(1.5, rel=1e-12)
    # typical v s² = (k − 1)Σw/((Σw)² − Σw²) = 4/(16 − 8) = 0.5: I² = 1.5/2 = 0.75
    assert m.i2 == close(0.75, rel=1e-12)
    # Knapp–Hartung: w* = 1/2 each, μ = 1, q = (½·1 + ½·1)/1 = 1, SE² = q/Σw* = 1
    assert m.random.estimate == close(1.0) and m.random.se == close(1.0, rel=1e-12)
    assert m.random.ci == close((1 - T1, 1 + T1), rel=1e-12)
    assert m.random.p == close(0.5, rel=1e-12)  # t with 1 df is Cauchy: P(|T| > 1) = 1/2
    # prediction: 1 ± t₁ √(SE² + τ²) = 1 ± t₁ √2.5
    assert m.prediction == close((1 - T1 * math.sqrt(2.5), 1 + T1 * math.sqrt(2.5)), rel=1e-12)


def test_four_centres_with_equal_variances() -> None:
    # y = 0..3, v = ¼: Σ(y − 1.5)² = 5, sample variance 5/3, τ² = 5/3 − 1/4 = 17/12
    m = MetaAnalysis.fit([0.0, 1.0, 2.0, 3.0], [0.25] * 4, 0.95)
    assert m.tau2 == close(17 / 12, rel=1e-12)
    assert m.q == close(4 * 5)  # w = 4
    # s² = 3·16/(256 − 64) = 1/4: I² = (17/12)/(17/12 + 3/12) = 17/20
    assert m.i2 == close(0.85, rel=1e-12)
    # w* = 1/(1/4 + 17/12) = 0.6, q = 0.6·5/3 = 1, SE² = 1/(4·0.6)
    assert m.random.estimate == close(1.5)
    assert m.random.se == close(math.sqrt(1 / 2.4), rel=1e-12)
    t3 = stats.t.ppf(0.975, 3)
    half = t3 * math.sqrt(1 / 2.4 + 17 / 12)
    assert m.prediction == close((1.5 - half, 1.5 + half), rel=1e-12)


def test_homogeneous_centres_have_tau2_zero_and_an_unbounded_knapp_hartung_q() -> None:
    # y = (1, 1.1), v = (1, 1): sample variance 0.005 < v, so τ² = 0 (exactly, on the boundary)
    m = MetaAnalysis.fit([1.0, 1.1], [1.0, 1.0], 0.95)
    assert m.tau2 == 0.0 and m.i2 == 0.0
    # q = (0.05² + 0.05²)/1 = 0.005 is kept below 1: SE² = 0.005/2, SE = 0.05
    assert m.random.se == close(0.05, rel=1e-12)
    assert m.random.estimate == close(m.fixed.estimate)
    assert m.prediction == close(m.random.ci)  # with τ² = 0 the PI is the CI


def test_identical_estimates_give_a_zero_knapp_hartung_se() -> None:
    m = MetaAnalysis.fit([0.4, 0.4, 0.4], [0.1, 0.2, 0.3], 0.95)
    # Q is 0 up to the rounding of μ; the Knapp–Hartung q is then 0, as metafor's s2w
    assert m.tau2 == 0.0 and m.q == close(0.0, abs=1e-30) and m.random.se == 0.0


def test_one_centre_gives_its_own_estimate_and_nothing_random() -> None:
    m = MetaAnalysis.fit([0.3], [0.04], 0.95)
    assert m.k == 1
    assert m.fixed.estimate == 0.3 and m.fixed.se == close(0.2)
    assert m.fixed.ci == close((0.3 - 0.2 * Z, 0.3 + 0.2 * Z))
    assert m.fixed.p == close(2 * stats.norm.sf(1.5))
    assert (m.random, m.prediction, m.tau2, m.i2) == (None,) * 4
    assert (m.q, m.q_p) == (0.0, 1.0)  # Q = 0 on 0 df, as metafor's QE, QEp
    assert "one centre" in m.reason


def test_no_centre_gives_nothing() -> None:
    m = MetaAnalysis.fit([], [], 0.95)
    assert m.k == 0 and m.fixed is None and m.random is None and m.reason == "no centre"


def test_a_centre_without_patients_is_left_out() -> None:
    y, v = logit_proportions([3, 0], [10, 0])
    m = MetaAnalysis.fit(y, v, 0.95)
    assert m.k == 1 and m.fixed.estimate == close(math.log(3 / 7))


def test_invalid_variances_are_refused() -> None:
    with pytest.raises(ValueError):
        MetaAnalysis.fit([0.1, 0.2], [0.1, 0.0], 0.95)
    with pytest.raises(ValueError):
        MetaAnalysis.fit([0.1, np.inf], [0.1, 0.1], 0.95)


def test_back_transformation() -> None:
    m = MetaAnalysis.fit([0.0, 2.0], [0.5, 0.5], 0.95)
    estimate, lower, upper = m.fixed.transformed(math.exp)
    assert estimate == close(math.e) and lower == close(math.exp(1 - 0.5 * Z))
    assert upper == close(math.exp(1 + 0.5 * Z))
    assert m.fixed.transformed(pooling.expit)[0] == close(math.e / (1 + math.e))


# --- Mantel–Haenszel ------------------------------------------------------------------------

# [[2, 1], [1, 2]], n = 6: ad/n = 4/6, bc/n = 1/6, E a = 3·3/6 = 1.5, Var a = 3⁴/(6²·5) = 0.45
# [[3, 1], [1, 3]], n = 8: ad/n = 9/8, bc/n = 1/8, E a = 4·4/8 = 2, Var a = 4⁴/(8²·7) = 4/7
TWO = [[[2, 1], [1, 2]], [[3, 1], [1, 3]]]


def test_mantel_haenszel_by_hand() -> None:
    mh = MantelHaenszel.fit(TWO, 0.95)
    assert mh.tables == 2 and mh.reason == ""
    # OR = (4/6 + 9/8)/(1/6 + 1/8) = (43/24)/(7/24)
    assert mh.odds_ratio == close(43 / 7, rel=1e-14)
    # Σ(a − E a) = 0.5 + 1 = 1.5 ≥ 0.5: corrected, (1.5 − 0.5)²/(0.45 + 4/7)
    assert mh.statistic == close(1 / (0.45 + 4 / 7), rel=1e-14)
    assert mh.p == close(stats.chi2.sf(1 / (0.45 + 4 / 7), 1), rel=1e-12)
    # RBG with P = (a+d)/n, Q = (b+c)/n, R = ad/n, S = bc/n:
    #   ΣPR = 4/9 + 27/32 = 371/288, Σ(PS + QR) = 1/3 + 3/8 = 17/24, ΣQS = 25/288,
    #   ΣR = 43/24, ΣS = 7/24, var = ΣPR/(2ΣR²) + Σ(PS+QR)/(2ΣRΣS) + ΣQS/(2ΣS²)
    #       = 742/3698 + 408/602 + 50/98
    half = Z * math.sqrt(742 / 3698 + 408 / 602 + 50 / 98)
    assert mh.ci == close((43 / 7 * math.exp(-half), 43 / 7 * math.exp(half)), rel=1e-13)


def test_no_continuity_correction_when_the_difference_is_below_one_half() -> None:
    # [[2, 1], [1, 2]]: a − E a = 0.5; [[1, 1], [2, 1]]: E a = 2·3/5 = 1.2, a − E a = −0.2,
    # Var a = 2·3·3·2/(5²·4) = 0.36. Σ = 0.3 < 0.5: no correction, 0.09/(0.45 + 0.36) = 1/9
    # (0.5 subtracted anyway would give (0.3 − 0.5)²/0.81 = 0.04/0.81)
    mh = MantelHaenszel.fit([[[2, 1], [1, 2]], [[1, 1], [2, 1]]], 0.95)
    assert mh.statistic == close(1 / 9, rel=1e-13)


def test_tables_without_information_change_nothing() -> None:
    # no SRE in a centre (a zero column), a centre of one patient, an empty centre
    extra = [[[0, 3], [0, 2]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]]
    base, more = MantelHaenszel.fit(TWO, 0.95), MantelHaenszel.fit(TWO + extra, 0.95)
    assert more.tables == 3  # the zero column counts (n ≥ 2), the others do not
    assert (more.odds_ratio, more.ci, more.statistic, more.p) == (
        base.odds_ratio,
        base.ci,
        base.statistic,
        base.p,
    )


def test_mantel_haenszel_edge_cases() -> None:
    nothing = MantelHaenszel.fit([[[0, 3], [0, 2]], [[0, 0], [4, 1]]], 0.95)
    assert nothing.odds_ratio is None and nothing.statistic is None
    assert "odds ratio not computable" in nothing.reason and "test not computable" in nothing.reason
    # no off-diagonal count: OR infinite, not reported; the test still is.
    # [[2, 0], [0, 2]]: E a = 1, Var a = 2⁴/(4²·3) = 1/3, (1 − 0.5)²·3 = 0.75
    infinite = MantelHaenszel.fit([[[2, 0], [0, 2]]], 0.95)
    assert infinite.odds_ratio is None and infinite.ci is None
    assert infinite.statistic == close(0.75)
    # no table with a·d > 0: OR 0 as mantelhaen.test gives it, without an interval
    zero = MantelHaenszel.fit([[[0, 3], [2, 2]], [[0, 1], [4, 1]]], 0.95)
    assert zero.odds_ratio == 0 and zero.ci is None and "odds ratio 0" in zero.reason
    assert MantelHaenszel.fit([], 0.95).tables == 0


# --- stratified log-rank --------------------------------------------------------------------

# Centre A, group 1 = BM: times 1, 2, 2, 3; events 1, 1, 1, 0; groups 1, 0, 1, 0.
#   t = 1: n = 4, n1 = 2, d = 1: E = 1/2, V = 1·½·½·3/3 = 1/4
#   t = 2: n = 3, n1 = 1, d = 2: E = 2/3, V = 2·⅓·⅔·1/2 = 2/9
#   O = 2, E = 7/6, V = 17/36
A = ([2.0, 1.0, 3.0, 2.0], [1, 1, 0, 1], [0, 1, 0, 1])  # shuffled: order does not matter
# Centre D: times 1, 2, both events, groups 0, 1.
#   t = 1: n = 2, n1 = 1, d = 1: E = 1/2, V = ¼·1/1 = 1/4; t = 2: n = 1: E = 1, V = 0
D = ([1.0, 2.0], [1, 1], [0, 1])


def test_logrank_contribution_by_hand() -> None:
    a = logrank_contribution(*A)
    assert (a.observed, a.expected, a.variance) == close((2, 7 / 6, 17 / 36), rel=1e-14)
    d = logrank_contribution(*D)
    assert (d.o_minus_e, d.variance) == close((-0.5, 0.25), rel=1e-14)


def test_centres_with_one_group_or_no_events_contribute_nothing() -> None:
    only_no_bm = logrank_contribution([1.0, 2.0, 3.0], [1, 1, 0], [0, 0, 0])
    no_events = logrank_contribution([1.0, 2.0, 3.0], [0, 0, 0], [1, 0, 1])
    assert only_no_bm == LogrankContribution(0.0, 0.0, 0.0)
    assert no_events.o_minus_e == 0.0 and no_events.variance == 0.0
    assert logrank_contribution([], [], []) == LogrankContribution(0.0, 0.0, 0.0)


def test_stratified_logrank_by_hand() -> None:
    # A alone: (5/6)²/(17/36) = 25/17
    contributions = [logrank_contribution(*A), logrank_contribution([1.0], [1], [0])]
    test = stratified_logrank(contributions)
    assert test.statistic == close(25 / 17, rel=1e-13)
    assert test.p == close(stats.chi2.sf(25 / 17, 1), rel=1e-12)
    # A and D: (5/6 − 1/2)² / (17/36 + 9/36) = (1/9)/(26/36) = 2/13
    both = stratified_logrank([logrank_contribution(*A), logrank_contribution(*D)])
    assert both.o_minus_e == close(1 / 3) and both.statistic == close(2 / 13, rel=1e-13)
    none = stratified_logrank([LogrankContribution(0.0, 0.0, 0.0)])
    assert none.statistic is None and "not computable" in none.reason


# --- pooled life table ----------------------------------------------------------------------

# w = 2, H = 6: [0, 2), [2, 4), [4, 6)
#   0.5 dead; 2 dead and 2 censored (both in [2, 4)); 3 dead; 4 censored (in [4, 6));
#   6 dead and 7 censored (from the horizon on: at risk throughout, never counted)
#   at risk r = (7, 6, 3), deaths d = (1, 2, 0), censored c = (0, 1, 1)
#   S = 1 − 1/7 = 6/7; × (1 − 2/(6 − ½)) = 6/7 · 7/11 = 6/11; × 1 = 6/11
FIRST = ([0.5, 2.0, 2.0, 3.0, 4.0, 6.0, 7.0], [1, 1, 0, 1, 0, 1, 0])
# 1 dead, 5 dead: r = (2, 1, 1), d = (1, 0, 1), c = 0
SECOND = ([5.0, 1.0], [1, 1])


def test_life_table_counts_by_hand() -> None:
    table = life_table_counts(*FIRST, width=2.0, horizon=6.0)
    assert table.at_risk.tolist() == [7, 6, 3]
    assert table.deaths.tolist() == [1, 2, 0]
    assert table.censored.tolist() == [0, 1, 1]
    assert table.starts.tolist() == [0.0, 2.0, 4.0]
    assert table.survival == close([6 / 7, 6 / 11, 6 / 11], rel=1e-15)
    assert table.survival_at(4) == close(6 / 11, rel=1e-15)


def test_pooled_life_table_by_hand() -> None:
    # r = (9, 7, 4), d = (2, 2, 1), c = (0, 1, 1):
    #   S = 7/9; × (1 − 2/6.5) = 7/9 · 9/13 = 7/13; × (1 − 1/3.5) = 7/13 · 5/7 = 5/13
    tables = [life_table_counts(*data, width=2.0, horizon=6.0) for data in (FIRST, SECOND)]
    pooled = pool_life_tables(tables)
    assert pooled.at_risk.tolist() == [9, 7, 4]
    assert pooled.survival == close([7 / 9, 7 / 13, 5 / 13], rel=1e-15)
    assert [pooled.survival_at(m) for m in (2, 4, 6)] == close([7 / 9, 7 / 13, 5 / 13])


def test_an_interval_nobody_reaches_keeps_survival() -> None:
    # everyone has left by 2: r = (2, 0, 0); S stays at 1 − 1/(2 − ½) = 1/3
    table = life_table_counts([1.0, 1.5], [1, 0], width=2.0, horizon=6.0)
    assert table.at_risk.tolist() == [2, 0, 0]
    assert table.survival == close([1 / 3] * 3)
    empty = life_table_counts([], [], width=2.0, horizon=6.0)
    assert empty.survival.tolist() == [1.0, 1.0, 1.0]


def test_a_time_at_an_interval_end_starts_the_next_interval_whatever_the_width() -> None:
    # w = 0.1: 43 · 0.1 = 4.3 and 4.3 / 0.1 = 42.99999999999999, so floor(t / w) = 42 would
    # count the death in [4.2, 4.3); it belongs to [4.3, 4.4), j = 43
    table = life_table_counts([43 * 0.1, 0.0], [1, 0], width=0.1, horizon=5.0)
    assert np.flatnonzero(table.deaths).tolist() == [43]
    assert table.censored[0] == 1 and table.at_risk[43] == 1


def test_life_table_arguments_are_checked() -> None:
    for horizon in (5.0, 0.0):
        with pytest.raises(ValueError):
            life_table_counts([1.0], [1], width=2.0, horizon=horizon)
    table = life_table_counts([1.0], [1], width=2.0, horizon=6.0)
    for months in (0, 3, 8):
        with pytest.raises(ValueError):
            table.survival_at(months)
    other = life_table_counts([1.0], [1], width=3.0, horizon=6.0)
    with pytest.raises(ValueError):
        pool_life_tables([table, other])
