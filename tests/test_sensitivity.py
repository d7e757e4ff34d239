"""Section 4 building blocks on small cases worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from sinet_bm import estimators, replicates, sensitivity

LEVEL = 0.95


def stage_iv(rows: list[dict]) -> pd.DataFrame:
    base = {"age_years": 60.0, "male": True, "grade": "G1", "dead": True}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_bm_switches_on_at_the_bm_date():
    frame = stage_iv(
        [
            {"os_months": 30.0, "bm": True, "bm_months": 10.0},  # metachronous: split
            {"os_months": 20.0, "bm": True, "bm_months": -0.2},  # before diagnosis: from 0
            {"os_months": 15.0, "bm": True, "bm_months": 15.0},  # at the end: never exposed
            {"os_months": 12.0, "bm": False, "bm_months": np.nan},
            {"os_months": 0.0, "bm": False, "bm_months": np.nan},  # zero length: dropped
        ]
    )
    intervals = sensitivity.bm_intervals(frame)
    got = intervals[["id", "start", "stop", "bm", "dead"]].values.tolist()
    assert got == [
        [0, 0.0, 10.0, False, False],
        [0, 10.0, 30.0, True, True],
        [1, 0.0, 20.0, True, True],
        [2, 0.0, 15.0, False, True],
        [3, 0.0, 12.0, False, True],
    ]


def test_rmst_and_its_standard_error_by_hand():
    # Deaths at 2, 4, 6 of three patients; horizon 5: area 2 + 2 * 2/3 + 1 * 1/3.
    mean, se = estimators.rmst(pd.Series([2.0, 4, 6]), pd.Series([True, True, True]), 5)
    assert mean == pytest.approx(2 + 4 / 3 + 1 / 3)
    # A(2) = 2 * 2/3 + 1/3, n = 3, d = 1; A(4) = 1/3, n = 2, d = 1.
    variance = (4 / 3 + 1 / 3) ** 2 / (3 * 2) + (1 / 3) ** 2 / (2 * 1)
    assert se == pytest.approx(np.sqrt(variance))


def test_rmst_extends_the_curve_flat_past_its_last_time():
    mean, _ = estimators.rmst(pd.Series([2.0, 4]), pd.Series([True, False]), 10)
    assert mean == pytest.approx(2 + 8 * 0.5)


def test_aalen_johansen_with_tied_competing_events_by_hand():
    time = np.array([1.0, 1, 2, 3, 3])
    cause = np.array([1, 2, 1, 0, 2])
    curve = estimators.aalen_johansen(time, cause)
    # t=1: 5 at risk, one SRE and one death: CIF 1/5, S 3/5; t=2: 3 at risk, one SRE:
    # CIF += 3/5 * 1/3; t=3: a death and a censoring, CIF stays.
    assert curve["cif"].tolist() == pytest.approx([0.2, 0.4, 0.4])
    assert curve["at_risk"].tolist() == [5, 3, 2]
    competing = estimators.aalen_johansen(time, cause, of=2)
    assert competing["cif"].iloc[-1] + curve["cif"].iloc[-1] == pytest.approx(1 - 0.4 * 0.5)


def test_cif_beyond_the_last_follow_up_is_unknown():
    curve = estimators.aalen_johansen(np.array([1.0, 5]), np.array([1, 0]))
    assert sensitivity.cif_at(curve, 3, last_time=5) == 0.5
    assert sensitivity.cif_at(curve, 6, last_time=5) is None


def test_landmark_counts_bm_seen_by_the_landmark_only():
    frame = stage_iv(
        [
            {"os_months": 5.0, "bm": True, "bm_months": 0.0},  # dead before 6: out
            {"os_months": 40.0, "bm": True, "bm_months": 3.0},  # BM by 6
            {"os_months": 30.0, "bm": True, "bm_months": 20.0},  # BM after 6: counts as none
            {"os_months": 25.0, "bm": False, "bm_months": np.nan},
            {"os_months": 6.0, "bm": False, "bm_months": np.nan},  # exactly 6: not > 6
        ]
    )
    count, hazard_ratio = sensitivity.landmark(frame, 6, LEVEL)
    assert (count["value"], count["n"]) == (3, 5)
    assert hazard_ratio["n"] == 3


def test_no_sre_under_exposure_gives_no_hazard_ratio_and_says_why():
    times = pd.DataFrame(
        {
            "time": [10.0, 12, 8, 20],
            "cause": [1, 0, 2, 1],
            "antiresorptive": [False, True, True, False],
            "exposure_start": [np.nan, -1.0, 2.0, np.nan],
        }
    )
    result = sensitivity.sre_antiresorptive_timedep(times, LEVEL)
    assert result["value"] is None
    assert "no SRE with antiresorptive exposure" in result["method"]
    intervals = sensitivity.exposure_intervals(times)
    assert intervals[["id", "start", "stop", "exposed"]].values.tolist() == [
        [0, 0.0, 10.0, False],
        [1, 0.0, 12.0, True],
        [2, 0.0, 2.0, False],
        [2, 2.0, 8.0, True],
        [3, 0.0, 20.0, False],
    ]


def test_naive_bm_hazard_ratio_shows_immortal_time_bias_and_the_time_dependent_does_not(config):
    from sinet_bm.contract import Definitions
    from sinet_bm.endpoints import derive_endpoints
    from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort

    check = replicates.BiasCheck(**config["sensitivity"]["bias_check"])
    design = scaled(SyntheticDesign(), check.n_eligible)
    definitions = Definitions.from_config(config["definitions"])
    table = replicates.bias_check_summary(
        sensitivity.bias_check_replicates(
            lambda seed: derive_endpoints(simulate_cohort(design, seed), definitions),
            range(check.replicates),
            check,
            LEVEL,
        )
    )
    summary = table.iloc[-1]
    assert len(table) == check.replicates + 1
    assert summary["hr_naive"] < 0.6  # truth: 1
    assert 0.8 < summary["hr_timedep"] < 1.25


def test_counting_process_cox_equals_lifelines_time_varying_fitter():
    from lifelines import CoxTimeVaryingFitter

    rng = np.random.default_rng(6)
    n = 300
    switch = np.round(rng.exponential(20, n))
    end = np.round(rng.exponential(30, n)) + 1  # integer months: many tied event times
    split = switch < end
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "id": np.arange(n)[split],
                    "start": 0.0,
                    "stop": switch[split],
                    "x": 0.0,
                    "dead": False,
                }
            ),
            pd.DataFrame(
                {
                    "id": np.arange(n)[split],
                    "start": switch[split],
                    "stop": end[split],
                    "x": 1.0,
                    "dead": rng.random(split.sum()) < 0.7,
                }
            ),
            pd.DataFrame(
                {
                    "id": np.arange(n)[~split],
                    "start": 0.0,
                    "stop": end[~split],
                    "x": 0.0,
                    "dead": rng.random((~split).sum()) < 0.7,
                }
            ),
        ]
    )
    rows = rows[rows["stop"] > rows["start"]].assign(age=lambda f: rng.normal(60, 10, len(f)))
    ours = estimators.fit_time_varying(rows, ["x", "age"], "dead", LEVEL).fitter
    reference = CoxTimeVaryingFitter().fit(
        rows,
        id_col="id",
        event_col="dead",
        start_col="start",
        stop_col="stop",
        fit_options={"step_size": 1.0, "precision": 1e-16, "r_precision": 0.0},
    )
    # Both solve the same score equations; they stop at slightly different last steps.
    assert ours.params_.to_numpy() == pytest.approx(reference.params_.to_numpy(), abs=1e-8)
    assert ours.log_likelihood_ == pytest.approx(reference.log_likelihood_, rel=1e-12)
    assert ours.summary["p"].to_numpy() == pytest.approx(
        reference.summary["p"].to_numpy(), rel=1e-8
    )
