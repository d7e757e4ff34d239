"""The study on a real SLURM cluster (one node, on localhost) through profiles/slurm.

Each test runs Snakemake exactly as a user would on a cluster's login node:
`.venv-slurm/bin/snakemake --workflow-profile profiles/slurm` (the environment with the SLURM
plugin, which `make slurm` builds), with SLURM_CONF pointing at the local cluster.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, SOURCE_DATE_EPOCH, break_export, copy_workflow
from slurm_cluster import local_slurm, slurm_available

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SNAKEMAKE = REPO / ".venv-slurm" / "bin" / "snakemake"

# Seconds Snakemake may take (about 2 minutes on 2 cores); then it is interrupted with SIGINT,
# the one signal on which it cancels its SLURM jobs and exits (it ignores SIGTERM).
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """One cluster for the module, stopped after its last test, failed or not."""
    reason = slurm_available()
    if not SNAKEMAKE.is_file():
        reason = "no .venv-slurm: `make slurm` installs the SLURM plugin (`make test` does)"
    if reason:
        pytest.skip(reason)
    with local_slurm(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow of its own: the SLURM runs leave the local runs' copy alone."""
    return copy_workflow(tmp_path_factory.mktemp("slurm_workflow") / "repo")


def snakemake_on_slurm(
    workdir: Path, cluster: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess, float]:
    """The user's command, under `timeout` so that a hung run fails instead of hanging."""
    command = [
        "timeout", "-s", "INT", "-k", "10", str(RUN_TIMEOUT),
        str(SNAKEMAKE), "--workflow-profile", "profiles/slurm", *args,
    ]  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT + 60,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **cluster},
    )
    return result, time.monotonic() - start


def test_the_study_on_slurm_gives_the_local_estimates(cluster, small_run, workdir):
    local_workdir, raw, _, _ = small_run
    result, seconds = snakemake_on_slurm(
        workdir, cluster, "--config", f"raw_dir={raw}", "out_dir=out"
    )
    print(f"\nthe study on SLURM took {seconds:.0f} s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "has been submitted with SLURM jobid" in output
    local = (local_workdir / "out" / "estimates.csv").read_bytes()
    assert (workdir / "out" / "estimates.csv").read_bytes() == local
    assert (workdir / "out" / "report" / "report.pdf").is_file()


def test_a_step_failing_on_slurm_fails_the_run_and_shows_its_log(
    cluster, small_run, workdir, tmp_path
):
    _, raw, _, _ = small_run
    broken = tmp_path / "broken"
    break_export(raw, broken)

    out = tmp_path / "out"
    result, seconds = snakemake_on_slurm(
        workdir, cluster, "--config", f"raw_dir={broken}", f"out_dir={out}"
    )
    print(f"\nthe failing run on SLURM took {seconds:.0f} s")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule validate_exports" in output
    assert "SLURM status is: 'FAILED'" in output
    # The job's own stdout and stderr are not on screen but in this file, which is named.
    assert ".snakemake/slurm_logs/rule_validate_exports/" in output
    # show-failed-logs: the findings, which validate_exports keeps as its log, are printed.
    issues = out / "validation" / "issues.csv"
    findings = pd.read_csv(issues)
    assert findings[["file", "line", "column", "check"]].values.tolist() == [
        ["patients.csv", 4, "sex", "category"]
    ]
    assert f"Logfile {issues}:\n" in output
    for line in issues.read_text().splitlines():
        assert line in output
    assert not (out / "estimates.csv").exists()
