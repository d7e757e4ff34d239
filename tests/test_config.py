"""The config is validated against schemas/config.schema.yaml before anything runs."""

import pytest
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow  # real Snakemake runs


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
        "bias_check_shard",
        "collect_estimates",
        "plot_figures",
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


def planned_resources(workdir, raw) -> dict[str, dict[str, str]]:
    """rule -> its resources as the dry run prints them (first job of each rule)."""
    result = snakemake(workdir, "--dry-run", "--config", f"raw_dir={raw}", "out_dir=out")
    assert result.returncode == 0, result.stderr[-2000:]
    planned = {}
    for block in result.stdout.split("\nrule ")[1:]:
        name = block.split(":", 1)[0]
        for line in block.splitlines():
            if line.strip().startswith("resources:") and name not in {*planned, "all"}:
                pairs = line.split(":", 1)[1].split(", ")
                planned[name] = dict(pair.strip().split("=", 1) for pair in pairs)
    return planned


def test_every_rule_asks_for_memory_and_time_that_grow_with_the_export(workdir, tmp_path):
    from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

    sizes = {}
    for patients in (100, 3000):
        raw = tmp_path / f"exports_{patients}"
        write_exports(simulate_cohort(scaled(SyntheticDesign(), patients), seed=2), raw)
        sizes[patients] = planned_resources(workdir, raw)
    small, large = sizes[100], sizes[3000]
    assert set(small) >= {"validate_exports", "bootstrap_shard", "report", "collect_estimates"}
    for rule, resources in small.items():
        assert int(resources["mem_mb"]) >= 300 and int(resources["runtime"]) >= 2, rule
    assert int(large["validate_exports"]["mem_mb"]) > int(small["validate_exports"]["mem_mb"])
    assert int(large["derive_endpoints"]["mem_mb"]) > int(small["derive_endpoints"]["mem_mb"])
    assert large["bias_check_shard"] == small["bias_check_shard"]  # simulated, not the export
