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
from datetime import datetime

import numpy as np
import pytest
from conftest import SNAKEMAKE, SOURCE_DATE_EPOCH, copy_workflow, snakemake

from sinet_bm.provenance import without_timings

pytestmark = pytest.mark.slow

# one kill point in each third of the first 80% of an uninterrupted run, drawn once from a
# fixed seed; the margin keeps the last point inside a run that goes faster than the measured
# one (the other test worker's load varies)
FRACTIONS = [
    round(0.8 * float(third + fraction) / 3, 3)
    for third, fraction in enumerate(np.random.default_rng(2026).uniform(0.1, 0.9, 3))
]
NOT_RESULTS = {"logs", "benchmarks", "history"}  # run records, not results
OTHER_TESTS = {"snakemake_report.html"}  # written into the session run's out_dir elsewhere


def results(out_dir) -> dict[str, str]:
    """SHA-256 of every result file; provenance.json without its wall times."""
    digests = {}
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir)
        if not path.is_file() or NOT_RESULTS & set(relative.parts) or path.name in OTHER_TESTS:
            continue
        content = path.read_bytes()
        if path.name == "provenance.json":
            content = json.dumps(without_timings(json.loads(content)), sort_keys=True).encode()
        digests[str(relative)] = hashlib.sha256(content).hexdigest()
    return digests


@pytest.fixture(scope="module")
def uninterrupted(small_run) -> tuple[dict[str, str], float]:
    """The session's small run: its results, and how long its jobs ran (from the first to
    the last time stamp of its Snakemake log), within which the kill points fall."""
    workdir = small_run[0]
    log = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))[0]
    stamps = [
        datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y")
        for stamp in re.findall(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", log.read_text(), re.M)
    ]
    return results(workdir / "out"), (stamps[-1] - stamps[0]).total_seconds()


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_killed_run_completes_with_identical_results(
    small_run, uninterrupted, fraction, tmp_path
):
    reference, elapsed = uninterrupted
    raw = small_run[1]
    workdir = copy_workflow(tmp_path / "repo")
    run = subprocess.Popen(
        [str(SNAKEMAKE), "--cores", "2", "--config", f"raw_dir={raw}", "out_dir=out"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    time.sleep(fraction * elapsed)
    assert run.poll() is None, "the run ended before the kill point"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    print(f"killed after {fraction * elapsed:.1f} s of {elapsed:.1f} s")

    locked = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    if locked.returncode != 0:  # the killed run's lock is still there: Snakemake says so
        assert "--unlock" in locked.stdout + locked.stderr
        unlock = snakemake(workdir, "--unlock", "--config", f"raw_dir={raw}", "out_dir=out")
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        rerun = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert results(workdir / "out") == reference
    again = snakemake(workdir, "--config", f"raw_dir={raw}", "out_dir=out")
    assert "Nothing to be done" in again.stdout + again.stderr
