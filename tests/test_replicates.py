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

from sinet_bm import replicates
from sinet_bm.endpoints import derive_endpoints, rules_from_config
from sinet_bm.models import NEWTON, cox_data, stage_iv_of
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort

HORIZON = 120.0


@pytest.fixture(scope="module")
def stage_iv(config) -> pd.DataFrame:
    tables = simulate_cohort(scaled(SyntheticDesign(), 200), seed=3)
    return stage_iv_of(derive_endpoints(tables, rules_from_config(config["definitions"])))


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
            replicates.bootstrap_replicates(
                stage_iv, replicates.shard_replicates(k, shards, 40), settings
            )
            for k in range(shards, 0, -1)  # gathered in any order
        ]
        return pd.concat(parts).sort_values("replicate").reset_index(drop=True)

    two, eight = sharded(2), sharded(8)
    pd.testing.assert_frame_equal(two, eight, check_exact=True)
    assert two["replicate"].tolist() == list(range(1, 41))
    other_seed = replicates.BootstrapSettings(40, seed=10, rmst_horizon_months=HORIZON)
    assert not replicates.bootstrap_replicates(stage_iv, range(40), other_seed).equals(two)


def test_each_resample_equals_lifelines_on_the_same_patients(stage_iv):
    """Second route: redraw the resample from the replicate's stream, fit with lifelines."""
    settings = replicates.BootstrapSettings(5, seed=21, rmst_horizon_months=HORIZON)
    draws = replicates.bootstrap_replicates(stage_iv, range(5), settings)
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
        got = draws.iloc[replicate]
        if np.isnan(expected_hr):  # lifelines does not converge; ours takes the limit
            assert np.isfinite(got["hr_os_bm_adjusted_bootstrap"])
        else:
            compared += 1
            assert got["hr_os_bm_adjusted_bootstrap"] == pytest.approx(expected_hr, rel=1e-6)
        assert got["rmst_os_diff_bootstrap"] == pytest.approx(areas[0] - areas[1], rel=1e-9)
    assert compared >= 3


def test_percentile_interval_and_point_estimate(stage_iv):
    settings = replicates.BootstrapSettings(4, seed=1, rmst_horizon_months=HORIZON)
    draws = pd.DataFrame(
        {
            "replicate": [1, 2, 3, 4],
            "hr_os_bm_adjusted_bootstrap": [1.0, 2.0, np.nan, 4.0],
            "rmst_os_diff_bootstrap": [-3.0, -1.0, 0.0, 2.0],
        }
    )
    hr, diff = replicates.percentile_rows(stage_iv, draws, settings, 0.5)
    # 25th and 75th percentiles of {1, 2, 4} and of {-3, -1, 0, 2}, linear interpolation
    assert (hr["ci_lower"], hr["ci_upper"]) == (1.5, 3.0)
    assert "1 without a finite value left out" in hr["method"]
    assert (diff["ci_lower"], diff["ci_upper"]) == (-1.5, 0.5)
    point = replicates.statistics(stage_iv, HORIZON)
    assert hr["value"] == point["hr_os_bm_adjusted_bootstrap"]
    assert hr["n"] == diff["n"] == len(stage_iv)


def test_a_missing_shard_is_an_error_not_a_narrower_interval(stage_iv):
    settings = replicates.BootstrapSettings(40, seed=9, rmst_horizon_months=HORIZON)
    half = replicates.bootstrap_replicates(
        stage_iv, replicates.shard_replicates(1, 2, 40), settings
    )
    with pytest.raises(ValueError, match=r"expected replicates 1\.\.40"):
        replicates.percentile_rows(stage_iv, half, settings, 0.95)


def test_bias_check_shards_equal_the_whole(config):
    check = replicates.BiasCheck(
        4, n_eligible=60, seed=5, synchronous_share=0.3, onset_mean_months=60, shards=3
    )
    design = scaled(SyntheticDesign(), check.n_eligible)
    rules = rules_from_config(config["definitions"])

    def run(replicate_numbers):
        return replicates.bias_check_replicates(
            lambda seed: derive_endpoints(simulate_cohort(design, seed), rules),
            replicate_numbers,
            check,
            0.95,
        )

    whole = replicates.bias_check_summary(run(range(4)))
    parts = [run(replicates.shard_replicates(k, 3, 4)) for k in (3, 1, 2)]
    sharded = replicates.bias_check_summary(pd.concat(parts, ignore_index=True))
    pd.testing.assert_frame_equal(whole, sharded, check_exact=True)
    assert whole["replicate"].tolist() == [1, 2, 3, 4, "geometric mean"]
