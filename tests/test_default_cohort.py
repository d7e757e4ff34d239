"""The whole study on the built-in synthetic cohort, exactly as `make run` runs it."""

import pandas as pd
import pytest
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduction(default_run):
    estimates = pd.read_csv(default_run / "results" / "estimates.csv").set_index("estimate")
    published = pd.read_csv(default_run / "resources" / "published.csv")
    published["reproduced"] = [
        estimates.at[row.estimate, row.field] for row in published.itertuples()
    ]
    return published.set_index("estimate")


def test_published_counts_are_reproduced_exactly(reproduction):
    counts = reproduction[reproduction["kind"] == "count"]
    assert set(counts.index) == {"n_eligible", "n_stage_iv", "n_bm", "n_sre"}
    assert (counts["reproduced"] == counts["published_value"]).all(), counts


def test_published_proportions_are_reproduced_within_their_rounding(reproduction):
    shares = reproduction[reproduction["kind"] == "percent"]
    gap = (shares["reproduced"] - shares["published_value"]).abs()
    assert (gap <= shares["rounding"] / 2 + 1e-12).all(), shares


@pytest.mark.parametrize(
    "estimate",
    ["median_os_bm", "median_os_no_bm", "median_followup_months", "median_months_to_morphologic"],
)
def test_published_medians_are_reproduced_within_15_percent(reproduction, estimate):
    published, reproduced = reproduction.loc[estimate, ["published_value", "reproduced"]]
    assert abs(reproduced - published) <= 0.15 * published


def test_sre_by_antiresorptive_therapy_is_significant(reproduction):
    row = reproduction.loc["test_sre_antiresorptive"]
    assert row["reproduced"] < row["published_value"]


def test_synthetic_exports_stay_in_resources(default_run):
    synthetic = default_run / "resources" / "synthetic"
    assert sorted(p.name for p in synthetic.iterdir()) == [
        "SYNTHETIC.txt",
        "imaging.csv",
        "patients.csv",
        "skeletal_events.csv",
        "therapies.csv",
    ]
    html = (default_run / "results" / "report" / "report.html").read_text()
    assert "SYNTHETIC DATA" in html


def test_a_second_cold_run_gives_byte_identical_results(default_run, tmp_path):
    """Estimates, tables, figures (SVG and data), HTML and, with SOURCE_DATE_EPOCH set as
    the test helper does, the PDF."""
    second = copy_workflow(tmp_path / "repo")
    result = snakemake(second)
    assert result.returncode == 0, result.stderr[-3000:]
    first_results, second_results = default_run / "results", second / "results"
    names = [
        "estimates.csv",
        "tables/table1.csv",
        "tables/flow.csv",
        "tables/immortal_time_bias.csv",
        "report/report.html",
        "report/report.pdf",
        *[f"figures/{p.name}" for p in sorted((first_results / "figures").iterdir())],
    ]
    assert len(names) == 6 + 18
    for name in names:
        assert (second_results / name).read_bytes() == (first_results / name).read_bytes(), name
