"""A multi-centre or coordinator config that cannot run stops before any job, naming the
centre, the key or the file."""

import json

import pytest
import yaml
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow  # real Snakemake dry runs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("centres_config") / "repo")
    for centre in ("essen", "kiel"):
        (workdir.parent / centre).mkdir()
    return workdir


def dry_run(workdir, settings: dict | str):
    path = workdir / "centres.yaml"
    path.write_text(settings if isinstance(settings, str) else yaml.safe_dump(settings))
    return snakemake(workdir, "--dry-run", "--configfile", str(path))


def centres(**folders):
    return {name: {"raw_dir": str(folder)} for name, folder in folders.items()}


def test_two_centres_dry_run_as_sub_workflows(workdir):
    result = dry_run(workdir, {"centres": centres(essen="../essen", kiel="../kiel")})
    assert result.returncode == 0, result.stderr[-2000:]
    for job in ("validate_exports", "combine_centres", "share_bundle", "pool_centres"):
        assert job in result.stdout
    assert "results/centres/essen/validated/summary.json" in result.stdout


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"raw_dir": "../essen", "centres": centres(essen="../essen")},
            "raw_dir and centres are both set",
        ),
        (
            {"centres": centres(essen="../nowhere")},
            "centres.essen.raw_dir: ../nowhere is not a folder",
        ),
        ({"centres": centres(Essen="../essen")}, "'Essen' does not match"),
        (
            {"bundles": ["../essen/bundle.json"], "centres": centres(essen="../essen")},
            "leave raw_dir and centres empty",
        ),
    ],
)
def test_a_bad_multi_centre_config_is_named(workdir, settings, named):
    result = dry_run(workdir, settings)
    assert result.returncode != 0
    assert named in result.stderr + result.stdout


def test_a_centre_listed_twice_is_named(workdir):
    text = "centres:\n  essen: {raw_dir: ../essen}\n  essen: {raw_dir: ../kiel}\n"
    result = dry_run(workdir, text)
    assert result.returncode != 0
    assert "centre 'essen' is listed twice under centres" in result.stderr + result.stdout


def test_a_malformed_bundle_stops_the_coordinator_naming_the_file(workdir):
    bundle = workdir.parent / "essen" / "bundle.json"
    bundle.write_text(json.dumps({"format": "sinet-bm bundle", "version": 1}))
    result = dry_run(workdir, {"bundles": [str(bundle)]})
    assert result.returncode != 0
    assert f"{bundle}: not a valid bundle" in result.stderr + result.stdout
