"""The config is validated against schemas/config.schema.yaml before anything runs."""

import pytest
from test_workflow import copy_workflow, snakemake


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
    for rule in ["simulate", "validate_exports", "derive_endpoints", "estimate_cohort",
                 "estimate_survival", "collect_estimates", "baseline_table", "plot_survival",
                 "report"]:  # fmt: skip
        assert rule in result.stdout
