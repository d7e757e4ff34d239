"""Real Snakemake runs of the whole workflow, in a copy of the repository in a temp folder."""

import io
import re
import shutil

import pandas as pd
import pytest
from conftest import REPO, break_export, copy_run, copy_workflow, digest, snakemake

from sinet_bm.report import estimate_catalogue

pytestmark = pytest.mark.slow  # real Snakemake runs

BOOTSTRAP_IDS = ["hr_os_bm_adjusted_bootstrap", "rmst_os_diff_bootstrap"]


def catalogued(config) -> set[str]:
    """The ids schemas/estimates.yaml documents for this config."""
    return {row["estimate"] for row in estimate_catalogue(config)}


def test_run_writes_every_documented_estimate_once(small_run, config):
    workdir, _, _, _ = small_run
    estimates = pd.read_csv(workdir / "out" / "estimates.csv")
    assert estimates["estimate"].is_unique
    assert set(estimates["estimate"]) == catalogued(config)
    assert estimates["estimate"].tolist()[-2:] == BOOTSTRAP_IDS
    assert list(estimates.columns) == [
        "estimate",
        "population",
        "n",
        "value",
        "ci_lower",
        "ci_upper",
        "p_value",
        "method",
    ]


def test_counts_match_the_export_counted_independently(small_run):
    workdir, raw, _, _ = small_run
    estimates = pd.read_csv(workdir / "out" / "estimates.csv").set_index("estimate")
    patients = pd.read_csv(raw / "patients.csv", dtype=str)
    diagnosis = pd.to_datetime(patients["diagnosis_date"])
    age = (diagnosis - pd.to_datetime(patients["birth_date"])).dt.days / 365.25
    eligible = diagnosis.between("2003-01-01", "2023-12-31") & (age >= 18)
    stage_iv = eligible & (patients["uicc_stage"] == "IV")
    imaging = pd.read_csv(raw / "imaging.csv", dtype=str)
    positive = (imaging["bone_sstr_uptake"] == "true") | (imaging["bone_morphologic"] == "true")
    with_bm = patients["patient_id"].isin(imaging.loc[positive, "patient_id"])
    assert estimates.at["n_exported", "value"] == len(patients)
    assert estimates.at["n_eligible", "value"] == eligible.sum()
    assert estimates.at["n_stage_iv", "value"] == stage_iv.sum()
    assert estimates.at["n_bm", "value"] == (stage_iv & with_bm).sum()


def test_inputs_are_untouched_and_nothing_is_written_outside_out_dir(small_run):
    workdir, raw, before, _ = small_run
    assert digest(raw) == before
    assert sorted(p.name for p in raw.iterdir()) == sorted(before)
    assert not (workdir / "resources" / "synthetic").exists()


def test_report_is_labelled_synthetic_and_shows_estimates(small_run):
    workdir, _, _, _ = small_run
    html = (workdir / "out" / "report" / "report.html").read_text()
    assert "SYNTHETIC DATA" in html
    assert "Reproduction of the published results" in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?https?:""", html)


def test_second_run_does_nothing(small_run, tmp_path):
    workdir, raw, _, _ = small_run
    workdir = copy_run(workdir, tmp_path / "repo")
    result = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_invalid_export_stops_before_analysis_and_removes_stale_results(small_run, tmp_path):
    valid_workdir, raw, _, _ = small_run
    workdir = copy_run(valid_workdir, tmp_path / "repo")  # with the valid run's results
    broken = tmp_path / "broken"
    break_export(raw, broken)
    before = digest(broken)
    out = workdir / "out"  # holds the complete results of the valid run
    result = snakemake(workdir, "--config", f"raw_dir={broken}", "out_dir=out")
    assert result.returncode != 0
    issues = pd.read_csv(out / "validation" / "issues.csv")
    assert issues[["severity", "file", "line", "column", "check"]].values.tolist() == [
        ["error", "patients.csv", 4, "sex", "category"]
    ]
    for stale in [
        "estimates.csv",
        "report/report.html",
        "report/report.pdf",
        "provenance.json",
        "endpoints/patients.parquet",
        "validated/patients.parquet",
        "audit",
        "audit.zip",
    ]:
        assert not (out / stale).exists(), stale
    assert digest(broken) == before


def test_a_tiny_hand_written_export_runs_end_to_end(small_run, tmp_path, config):
    """Nine patients, columns in another order: estimates that cannot be computed keep
    their rows with the reason, and the run still ends with a report."""
    workdir = copy_workflow(tmp_path / "repo")
    raw = tmp_path / "tiny <img src=x onerror=alert(1)>"  # a name no page may show as markup
    shutil.copytree(REPO / "tests" / "data" / "tiny", raw)
    patients = pd.read_csv(raw / "patients.csv", dtype=str, keep_default_na=False)
    patients[list(reversed(patients.columns))].to_csv(raw / "patients.csv", index=False)
    result = snakemake(workdir, "--config", f"raw_dir={raw}", f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    estimates = pd.read_csv(tmp_path / "out" / "estimates.csv").set_index("estimate")
    assert estimates["value"].get("n_eligible") == 6
    assert set(estimates.index) == catalogued(config)
    empty = estimates[estimates["value"].isna()]
    assert len(empty) and empty["method"].str.contains("not computable|not reached").all()
    html = (tmp_path / "out" / "report" / "report.html").read_text()
    page = (tmp_path / "out" / "validation" / "report.html").read_text()
    assert "<img src=x" not in html + page and raw.name not in html + page
    issues = pd.read_csv(tmp_path / "out" / "validation" / "issues.csv")
    assert issues["check"].tolist() == ["sre_before_bm"]


def test_two_and_eight_shards_give_identical_bootstrap(small_run, tmp_path):
    """Starting from the finished run, only the shards and the gathering rerun."""
    outputs = {}
    for shards in (2, 8):
        workdir = copy_run(small_run[0], tmp_path / f"repo_{shards}")
        raw = small_run[1]
        out_dir = "out"
        extra = workdir / f"{out_dir}.yaml"
        extra.write_text(f"bootstrap: {{replicates: 60, seed: 4, shards: {shards}}}\n")
        result = snakemake(
            workdir,
            "--configfile",
            str(extra),
            "--config",
            f"raw_dir={raw}",
            f"out_dir={out_dir}",
            "--",
            f"{out_dir}/estimates.csv",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(list((workdir / out_dir / "bootstrap").glob("shard_*.csv"))) == shards
        outputs[shards] = [
            (workdir / out_dir / name).read_bytes()
            for name in ("estimates.csv", "bootstrap/replicates.csv")
        ]
    assert outputs[2] == outputs[8]
    estimates = pd.read_csv(io.BytesIO(outputs[2][0])).set_index("estimate").loc[BOOTSTRAP_IDS]
    assert estimates["method"].str.contains("60 resamples").all()
    assert len(pd.read_csv(io.BytesIO(outputs[2][1]))) == 60


def test_snakemakes_own_report_builds(small_run, tmp_path):
    workdir, raw, _, _ = small_run
    workdir = copy_run(workdir, tmp_path / "repo")
    target = workdir / "out" / "snakemake_report.html"
    result = snakemake(
        workdir, "--config", f"raw_dir={raw}", "out_dir=out", "--report", str(target)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.stat().st_size > 100_000
