"""The config is validated against schemas/config.schema.yaml before anything runs."""

import pytest
from conftest import copy_workflow, snakemake


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("config") / "repo")


@pytest.mark.parametrize(
    ("override", "named"),
    [("colour=blue", "'colour' was unexpected"), ("strict=maybe", "'maybe' is not of type")],
)
def test_a_wrong_key_or_type_stops_the_run_naming_it(workdir, override, named):
    result = snakemake(workdir, "--dry-run", "--config", override)
    assert result.returncode != 0
    assert named in result.stderr + result.stdout


def test_the_defaults_dry_run(workdir):
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    for rule in [
        "simulate",
        "validate_exports",
        "derive_endpoints",
        "estimate_cohort",
        "estimate_survival",
        "estimate_sensitivity",
        "bootstrap_shard",
        "bootstrap_ci",
        "bias_check_shard",
        "check_immortal_time_bias",
        "collect_estimates",
        "describe_cohort",
        "plot_figures",
        "provenance",
        "report_pdf",
        "report",
    ]:
        assert rule in result.stdout


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["out_dir=."], "among the workflow's files"),
        (["raw_dir=exports", "out_dir=exports/results"], "overlap"),
        (["raw_dir=exports/raw", "out_dir=exports"], "overlap"),
    ],
)
def test_results_cannot_land_among_exports_or_workflow_files(workdir, overrides, named):
    (workdir / "exports" / "raw").mkdir(parents=True, exist_ok=True)
    result = snakemake(workdir, "--dry-run", "--config", *overrides)
    assert result.returncode != 0
    assert named in result.stderr + result.stdout
