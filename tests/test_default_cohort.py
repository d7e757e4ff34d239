"""The whole study on the built-in synthetic cohort, exactly as `make run` runs it."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, crate_without_times, snakemake, zip_entries

from sinet_bm.figures import FIGURES

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


# Files about the run rather than its results: when and where it ran, and how long it took.
RUN_RECORDS = {"logs", "benchmarks"}
ABOUT_TIME_AND_PLACE = {"provenance.json", "ro-crate-metadata.json", "audit.zip"}


def result_files(out_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out_dir)): path.read_bytes()
        for path in sorted(out_dir.rglob("*"))
        if path.is_file()
        and not RUN_RECORDS & set(path.relative_to(out_dir).parts)
        and path.name not in ABOUT_TIME_AND_PLACE
    }


def test_a_run_elsewhere_on_the_same_exports_gives_byte_identical_results(default_run, tmp_path):
    """The synthetic exports copied to folders of other names and depths, with spaces and
    markup: every result file (estimates, tables, figures, HTML, PDF with SOURCE_DATE_EPOCH
    set as the test helper does, validation, refresh records) is byte-identical, and
    neither folder's name is in any of them."""
    hostile = "a b <img src=x onerror=alert(1)> & 'q'"
    raw = tmp_path / "deeper" / hostile / "raw exports"
    shutil.copytree(default_run / "resources" / "synthetic", raw)
    out_dir = tmp_path / "elsewhere" / "deeper still" / f"out {hostile}"
    workdir = copy_workflow(tmp_path / "repo")
    folders = tmp_path / "folders.yaml"  # a config file: --config would read the quotes
    folders.write_text(yaml.safe_dump({"raw_dir": str(raw), "out_dir": str(out_dir)}))
    result = snakemake(workdir, "--configfile", str(folders))
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = result_files(default_run / "results"), result_files(out_dir)
    assert set(first) == set(second)
    assert {"estimates.csv", "report/report.html", "report/report.pdf"} <= set(first)
    assert {f"figures/{name}.svg" for name in FIGURES} <= set(first)
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    # the audit crates: the same but for the times; their zips the same entries
    original = default_run / "results"
    metadata = [d / "audit" / "ro-crate-metadata.json" for d in (original, out_dir)]
    assert crate_without_times(metadata[0].read_bytes()) == crate_without_times(
        metadata[1].read_bytes()
    )
    assert zip_entries(original / "audit.zip") == zip_entries(out_dir / "audit.zip")
    second["audit.zip"] = (out_dir / "audit.zip").read_bytes()
    second["metadata"] = metadata[1].read_bytes()
    for content in second.values():
        assert hostile.encode() not in content and str(tmp_path).encode() not in content
