"""A run killed with SIGKILL at random moments (the workflow and every job it started, as in
a power cut) completes on the next run, with results identical to an uninterrupted run:
a half-written output is never taken for a finished one."""

import hashlib
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import (
    SNAKEMAKE,
    SOURCE_DATE_EPOCH,
    copy_workflow,
    crate_without_times,
    snakemake,
    zip_entries,
)

from sinet_bm.provenance import without_timings

pytestmark = pytest.mark.slow

# Kill points: after the k-th job has started (one k in each third of the run's jobs) and a
# fraction of a second into it, drawn once from a fixed seed. Counting jobs rather than
# seconds keeps every point inside the run however fast the machine is.
RNG = np.random.default_rng(2026)
KILL_POINTS = [
    (int(RNG.integers(low, high)), round(float(RNG.uniform(0.05, 0.6)), 2))
    for low, high in ((1, 4), (4, 8), (8, 11))
]
JOB_START = re.compile(r"^(local)?rule \w+:$")
NOT_RESULTS = {"logs", "benchmarks", "history"}  # run records, not results
OTHER_TESTS = {"snakemake_report.html"}  # written into the session run's out_dir elsewhere


def results(out_dir) -> dict[str, str]:
    """SHA-256 of every result file; provenance.json and the audit crate without their
    times."""
    digests = {}
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir)
        if not path.is_file() or NOT_RESULTS & set(relative.parts) or path.name in OTHER_TESTS:
            continue
        content = path.read_bytes()
        if path.name == "provenance.json":
            content = json.dumps(without_timings(json.loads(content)), sort_keys=True).encode()
        elif path.name == "ro-crate-metadata.json":
            content = json.dumps(crate_without_times(content)).encode()
        elif path.name == "audit.zip":
            content = repr(zip_entries(path)).encode()
        digests[str(relative)] = hashlib.sha256(content).hexdigest()
    return digests


@pytest.fixture(scope="module")
def uninterrupted(small_run) -> dict[str, str]:
    """The session's small run: its results, which every interrupted run must end with."""
    return results(small_run[0] / "out")


@pytest.mark.parametrize(("job", "delay"), KILL_POINTS)
def test_a_killed_run_completes_with_identical_results(
    small_run, uninterrupted, job, delay, tmp_path
):
    raw = small_run[1]
    workdir = copy_workflow(tmp_path / "repo")
    run = subprocess.Popen(
        [str(SNAKEMAKE), "--cores", "2", "--config", f"raw_dir={raw}", "out_dir=out"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    started = 0
    for line in run.stdout:
        started += bool(JOB_START.match(line.strip()))
        if started == job:
            break
    time.sleep(delay)
    assert run.poll() is None, "the run ended before the kill point"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    print(f"killed {delay} s after job {job} started")

    locked = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    if locked.returncode != 0:  # the killed run's lock is still there: Snakemake says so
        assert "--unlock" in locked.stdout + locked.stderr
        unlock = snakemake(workdir, "--unlock", "--config", f"raw_dir={raw}", "out_dir=out")
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        rerun = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert results(workdir / "out") == uninterrupted
    again = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    assert "Nothing to be done" in again.stdout + again.stderr
