"""Sharded replicate work: the bootstrap and the bias-check simulation give the same results
however they are split, and each resample's statistics equal a second route's."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.utils import restricted_mean_survival_time

from sinet_bm import estimators, replicates, sensitivity
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints, stage_iv_of
from sinet_bm.estimators import NEWTON
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort
from sinet_bm.survival import cox_data

HORIZON = 120.0


@pytest.fixture(scope="module")
def stage_iv(config) -> pd.DataFrame:
    tables = simulate_cohort(scaled(SyntheticDesign(), 200), seed=3)
    return stage_iv_of(derive_endpoints(tables, Definitions.from_config(config["definitions"])))


@given(st.integers(1, 40), st.integers(0, 500))
def test_shards_cover_every_replicate_once(shards, total):
    ranges = [replicates.shard_replicates(k, shards, total) for k in range(1, shards + 1)]
    assert [r for each in ranges for r in each] == list(range(total))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_a_shard_outside_the_split_is_refused():
    with pytest.raises(ValueError, match=r"not one of 1\.\.4"):
        replicates.shard_replicates(5, 4, 100)


def test_two_and_eight_shards_give_identical_replicates(stage_iv):
    settings = replicates.BootstrapSettings(40, seed=9, rmst_horizon_months=HORIZON)

    def sharded(shards: int) -> pd.DataFrame:
        parts = [
            sensitivity.bootstrap_replicates(
                stage_iv, replicates.shard_replicates(k, shards, 40), settings
            )
            for k in range(shards, 0, -1)  # gathered in any order
        ]
        return pd.concat(parts).sort_values("replicate").reset_index(drop=True)

    two, eight = sharded(2), sharded(8)
    pd.testing.assert_frame_equal(two, eight, check_exact=True)
    assert two["replicate"].tolist() == list(range(0, 41))  # 0: the data itself
    other_seed = replicates.BootstrapSettings(40, seed=10, rmst_horizon_months=HORIZON)
    assert not sensitivity.bootstrap_replicates(stage_iv, range(40), other_seed).equals(two)


def test_each_resample_equals_lifelines_on_the_copied_patients(stage_iv):
    """Second route: redraw the resample from the replicate's stream, copy its rows, fit
    with lifelines; the weighted fit must give the same hazard ratio and RMST difference."""
    settings = replicates.BootstrapSettings(5, seed=21, rmst_horizon_months=HORIZON)
    draws = sensitivity.bootstrap_replicates(stage_iv, range(5), settings).set_index("replicate")
    compared = 0
    for replicate in range(5):
        rng = np.random.default_rng(np.random.SeedSequence(21, spawn_key=(replicate,)))
        resample = stage_iv.iloc[rng.integers(0, len(stage_iv), len(stage_iv))]
        data = cox_data(resample.reset_index(drop=True)).astype(float)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                cox = CoxPHFitter().fit(data, "os_months", "dead", fit_options=NEWTON)
            expected_hr = cox.hazard_ratios_["bm"]
        except ConvergenceError:  # no finite maximum: a grade without deaths (separation)
            expected_hr = np.nan
        areas = []
        for bm in (True, False):
            group = resample[resample["bm"] == bm]
            km = KaplanMeierFitter().fit(group["os_months"], group["dead"])
            areas.append(restricted_mean_survival_time(km, t=HORIZON))
        got = draws.loc[replicate + 1]
        if np.isnan(expected_hr):  # lifelines does not converge; ours takes the limit
            assert np.isfinite(got["hr_os_bm_adjusted_bootstrap"])
        else:
            compared += 1
            assert got["hr_os_bm_adjusted_bootstrap"] == pytest.approx(expected_hr, rel=1e-6)
        assert got["rmst_os_diff_bootstrap"] == pytest.approx(areas[0] - areas[1], rel=1e-9)
    assert compared >= 3


def heavily_tied(seed: int, n: int = 300) -> pd.DataFrame:
    """Times on a grid of 12 values, so that most deaths share their time with others."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "time": rng.integers(1, 13, n).astype(float),
            "dead": rng.random(n) < 0.7,
            "bm": rng.random(n) < 0.4,
            "age": rng.normal(60, 10, n),
            "male": rng.random(n) < 0.5,
        }
    )
    return frame.assign(weight=rng.integers(0, 5, n))


@pytest.mark.parametrize("seed", range(4))
def test_a_frequency_weighted_fit_equals_the_fit_on_copied_rows(seed):
    """A patient of weight w is w tied patients (w tied deaths in Efron's correction): the
    weighted Cox model equals lifelines' on the rows copied w times, to 1e-8."""
    data = heavily_tied(seed)
    covariates = ["bm", "age", "male"]
    copied = data.loc[data.index.repeat(data["weight"])]
    reference = CoxPHFitter().fit(
        copied[["time", "dead", *covariates]].astype(float), "time", "dead", fit_options=NEWTON
    )
    model = estimators.FrequencyWeightedCox(
        data["time"].to_numpy(), data["dead"].to_numpy(), data[covariates].to_numpy(float)
    )
    beta = model.fit(data["weight"].to_numpy(float))
    np.testing.assert_allclose(beta, reference.params_.to_numpy(), rtol=1e-8)
    started = model.fit(data["weight"].to_numpy(float), initial=beta + 0.05)
    np.testing.assert_allclose(started, beta, rtol=1e-8, atol=1e-9)  # the fit's precision


@pytest.mark.parametrize("seed", range(3))
def test_a_frequency_weighted_rmst_equals_the_rmst_of_copied_rows(seed):
    data = heavily_tied(seed)
    copied = data.loc[data.index.repeat(data["weight"])]
    expected, _ = estimators.rmst(copied["time"], copied["dead"], 10.0)
    prepared = estimators.WeightedRestrictedMean(data["time"], data["dead"], 10.0)
    assert prepared.area(data["weight"].to_numpy(float)) == pytest.approx(expected, rel=1e-12)


def test_percentile_interval_and_point_estimate():
    settings = replicates.BootstrapSettings(4, seed=1, rmst_horizon_months=HORIZON)
    draws = pd.DataFrame(
        {
            "replicate": [0, 1, 2, 3, 4],
            "hr_os_bm_adjusted_bootstrap": [1.9, 1.0, 2.0, np.nan, 4.0],
            "rmst_os_diff_bootstrap": [-0.5, -3.0, -1.0, 0.0, 2.0],
        }
    )
    hr, diff = replicates.percentile_rows(draws, settings, 0.5, 77)
    # 25th and 75th percentiles of {1, 2, 4} and of {-3, -1, 0, 2}, linear interpolation
    assert (hr["ci_lower"], hr["ci_upper"]) == (1.5, 3.0)
    assert "1 without a finite value left out" in hr["method"]
    assert (diff["ci_lower"], diff["ci_upper"]) == (-1.5, 0.5)
    assert (hr["value"], diff["value"]) == (1.9, -0.5)  # replicate 0: the data
    assert hr["n"] == diff["n"] == 77


def test_the_point_estimate_is_the_adjusted_models(stage_iv, config):
    """Replicate 0 is the data: the bootstrap's point estimate equals section 3's adjusted
    hazard ratio (lifelines) and section 4's RMST difference."""
    from sinet_bm.sensitivity import rmst_rows
    from sinet_bm.survival import ADJUSTED_TERMS

    settings = replicates.BootstrapSettings(1, seed=1, rmst_horizon_months=HORIZON)
    point = sensitivity.bootstrap_replicates(stage_iv, range(1), settings).iloc[0]
    adjusted = estimators.fit_cox(
        cox_data(stage_iv), list(ADJUSTED_TERMS.values()), "os_months", "dead", 0.95
    )
    assert point["hr_os_bm_adjusted_bootstrap"] == pytest.approx(
        adjusted.fitter.hazard_ratios_["bm"], rel=1e-8
    )
    difference = rmst_rows(stage_iv, HORIZON)[-1]["value"]
    assert point["rmst_os_diff_bootstrap"] == pytest.approx(difference, rel=1e-12)


def test_a_missing_shard_is_an_error_not_a_narrower_interval(stage_iv):
    settings = replicates.BootstrapSettings(40, seed=9, rmst_horizon_months=HORIZON)
    half = sensitivity.bootstrap_replicates(
        stage_iv, replicates.shard_replicates(1, 2, 40), settings
    )
    with pytest.raises(ValueError, match=r"expected replicates 1\.\.40"):
        replicates.percentile_rows(half, settings, 0.95, len(stage_iv))


def test_bias_check_shards_equal_the_whole(config):
    check = replicates.BiasCheck(
        4, n_eligible=60, seed=5, synchronous_share=0.3, onset_mean_months=60, shards=3
    )
    design = scaled(SyntheticDesign(), check.n_eligible)
    definitions = Definitions.from_config(config["definitions"])

    def run(replicate_numbers):
        return sensitivity.bias_check_replicates(
            lambda seed: derive_endpoints(simulate_cohort(design, seed), definitions),
            replicate_numbers,
            check,
            0.95,
        )

    whole = replicates.bias_check_summary(run(range(4)))
    parts = [run(replicates.shard_replicates(k, 3, 4)) for k in (3, 1, 2)]
    sharded = replicates.bias_check_summary(pd.concat(parts, ignore_index=True))
    pd.testing.assert_frame_equal(whole, sharded, check_exact=True)
    assert whole["replicate"].tolist() == [1, 2, 3, 4, "geometric mean"]
