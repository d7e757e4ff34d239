"""Endpoint derivation on tests/data/tiny, whose answers were worked out by hand.

P01 SSTR-only, visible a year later; P02 uptake and lesion on the same exam; P03 SSTR-only,
never visible, with an SRE before its BM; P04 two lesion types on one date; P05 stage IV
without BM; P06 metachronous BM in stage III; P07-P09 excluded (period, age on the 18th
birthday, period after the end).
"""

import pandas as pd
import pytest

from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints

MONTH = 30.4375


@pytest.fixture(scope="module")
def endpoints(tiny, config) -> pd.DataFrame:
    frame = derive_endpoints(tiny.tables, Definitions.from_config(config["definitions"]))
    return frame.set_index("patient_id")


def test_tiny_export_has_one_warning_only(tiny):
    assert not tiny.has_errors
    assert tiny.findings[["severity", "file", "line", "column", "check"]].values.tolist() == [
        ["warning", "skeletal_events.csv", 3, "event_date", "sre_before_bm"]
    ]


def test_eligibility_first_failing_reason(endpoints):
    assert endpoints["exclusion_reason"].to_dict() == {
        "P01": "",
        "P02": "",
        "P03": "",
        "P04": "",
        "P05": "",
        "P06": "",
        "P07": "study_period",
        "P08": "age",
        "P09": "study_period",
    }


def test_eighteenth_birthday_is_not_eighteen(endpoints):
    assert endpoints.at["P08", "age_years"] == pytest.approx(6574 / 365.25)
    assert endpoints.at["P08", "age_years"] < 18


def test_bm_date_is_first_positive_exam(endpoints):
    expected = {
        "P01": "2010-01-20",
        "P02": "2012-06-05",
        "P03": "2016-03-01",
        "P04": "2018-02-10",
        "P06": "2011-01-01",
    }
    bm = endpoints[endpoints["bm"]]
    assert bm["bm_date"].dt.strftime("%Y-%m-%d").to_dict() == expected
    assert not endpoints.loc[["P05", "P07", "P08", "P09"], "bm"].any()


def test_population_bm_excludes_metachronous_stage_iii(endpoints):
    assert endpoints.index[endpoints["population_bm"]].tolist() == ["P01", "P02", "P03", "P04"]


def test_sstr_only_versus_morphologic_on_the_same_day(endpoints):
    assert endpoints.loc[["P01", "P02", "P03", "P04", "P06"], "sstr_only"].tolist() == [
        True,
        False,
        True,
        False,
        False,
    ]


def test_months_to_morphologic(endpoints):
    # P01: 2010-01-20 -> 2011-01-20 = 365 days, visible.
    assert endpoints.at["P01", "months_to_morphologic"] == pytest.approx(365 / MONTH)
    assert bool(endpoints.at["P01", "morphologic_visible"]) is True
    # P03 never visible: censored at its last exam (MRI 2017-03-01), 365 days after BM.
    assert endpoints.at["P03", "months_to_morphologic"] == pytest.approx(365 / MONTH)
    assert bool(endpoints.at["P03", "morphologic_visible"]) is False
    assert endpoints.loc[["P02", "P04"], "months_to_morphologic"].isna().all()


def test_bm_type(endpoints):
    assert endpoints.loc[["P01", "P02", "P03", "P04", "P06"], "bm_type"].tolist() == [
        "osteoblastic",
        "osteolytic",
        "unknown",
        "mixed",
        "mixed",
    ]
    assert endpoints.loc[["P05"], "bm_type"].isna().all()


def test_sre_counts_only_on_or_after_bm(endpoints):
    assert endpoints.loc[["P01", "P02", "P03", "P04"], "sre"].tolist() == [False, True, False, True]
    assert endpoints.at["P03", "n_sre_before_bm"] == 1
    assert endpoints["n_sre_without_bm"].sum() == 0
    assert endpoints.at["P04", "n_sre"] == 2


def test_antiresorptive_whatever_its_date(endpoints):
    assert endpoints.index[endpoints["antiresorptive"]].tolist() == ["P01", "P05"]


def test_grade_given_wins_and_ki67_fills_in(endpoints):
    assert endpoints.loc[["P01", "P02", "P03", "P05", "P06"], "grade"].tolist() == [
        "G1",
        "G2",
        "G3",
        None,
        "G3",
    ]
    assert endpoints.at["P02", "grade_source"] == "ki67"
    assert endpoints.at["P05", "grade_source"] == "missing"


def test_overall_survival(endpoints):
    # P01 dead 2010-01-15 -> 2015-01-15 = 1826 days; P02 alive 2012-06-01 -> 2020-06-01 = 2922.
    assert endpoints.at["P01", "os_months"] == pytest.approx(1826 / MONTH)
    assert bool(endpoints.at["P01", "dead"]) is True
    assert endpoints.at["P02", "os_months"] == pytest.approx(2922 / MONTH)
    assert bool(endpoints.at["P02", "dead"]) is False


def test_cohort_flow_counts_sres_left_out_with_their_reason(tiny, config):
    from sinet_bm.cohort import cohort_flow

    frame = derive_endpoints(tiny.tables, Definitions.from_config(config["definitions"]))
    flow = cohort_flow(frame).set_index(["step", "reason"])
    assert flow.loc[("exported", ""), "patients"] == 9
    assert flow.loc[("excluded", "diagnosis outside the study period"), "patients"] == 2
    assert flow.loc[("excluded", "age at diagnosis below the minimum"), "patients"] == 1
    counted = flow.loc[("sre_counted", "on or after the BM date, population bm")]
    assert (counted["patients"], counted["events"]) == (2, 3)  # P02 one, P04 two
    left_out = flow.loc[("sre_left_out", "before the first positive bone imaging")]
    assert (left_out["patients"], left_out["events"]) == (1, 1)  # P03
