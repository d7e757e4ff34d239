"""Benchmark: the whole study on synthetic registry-scale exports, against a one-process floor.

    python benchmarks/run.py [--sizes 1000 10000 ...] [--seed 1] [--cores 2]

(`make bench` runs it with the venv's Python.) For every size n it

1. makes (or reuses) an export of n eligible patients with the project's own simulator, so
   that ages, dates and follow-up times are all distinct, as in a registry; exports are
   cached in benchmarks/exports/ per (n, seed) and checked against their manifest;
2. runs the whole workflow on it, cold, into a new empty out_dir, and measures wall time and
   the peak RSS of the largest single process (what GNU `time -v` reports);
3. reads each job's wall time and peak memory from the run's Snakemake benchmark files;
4. runs benchmarks/floor.py (the core section 3 estimates in one process) on the same export,
   measured the same way, and checks that it agrees with the pipeline's estimates.csv.

Results are merged by n into benchmarks/results.csv and benchmarks/rules.csv (sizes not
measured in this call keep their earlier rows), plotted to benchmarks/results.svg and .png,
and printed as a Markdown table, also written to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
EXPORTS = BENCH / "exports"
RUNS = BENCH / "runs"
RESULTS_CSV = BENCH / "results.csv"
RULES_CSV = BENCH / "rules.csv"
RESULTS_MD = BENCH / "results.md"
PLOT = BENCH / "results"
OUTPUT_FILES = [
    RESULTS_CSV,
    RULES_CSV,
    RESULTS_MD,
    PLOT.with_suffix(".svg"),
    PLOT.with_suffix(".png"),
]
TABLES = ("patients", "imaging", "therapies", "skeletal_events")
# The floor's estimates must equal the pipeline's under the same ids, or its time is no fair
# baseline. The floor fits Cox models to lifelines' default precision and the pipeline to
# 1e-16, which moves hazard ratios in the 7th digit and tiny p-values by ~1e-11.
AGREEMENT_RTOL = 1e-5
AGREEMENT_ATOL = 1e-9

RESULT_COLUMNS = [
    "n",
    "export_mb",
    "export_gen_s",
    "wall_s",
    "peak_rss_mb",
    "rule_1",
    "rule_1_s",
    "rule_2",
    "rule_2_s",
    "rule_3",
    "rule_3_s",
    "cpu_s",
    "floor_s",
    "floor_rss_mb",
    "ratio",
    "floor_agrees",
    "cores",
    "load_1m",
    "load_1m_end",
    "date",
    "commit",
]


@dataclass(frozen=True)
class Measured:
    """Wall time, peak RSS (MB, as Snakemake's benchmark files count them: MiB) and the CPU
    seconds of the whole process tree: on a shared machine, cpu_s well below cores x wall_s
    says that the run waited for the CPU."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float


# ---------------------------------------------------------------------------------------
# processes


def environment() -> dict[str, str]:
    """The environment every measured process gets.

    PYTHONPATH puts this checkout's package first, so that a shared venv whose editable
    install points elsewhere still runs the code being measured; the venv's bin goes first
    on PATH so that the workflow's jobs use the same interpreter; SOURCE_DATE_EPOCH pins the
    report date, as a reproducible run would.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("SOURCE_DATE_EPOCH", git("log", "-1", "--format=%ct") or "0")
    return env


def measure(command: list[str], log_path: Path) -> Measured:
    """Run a command to completion; its wall time and the peak RSS of its largest process.

    `os.wait4` returns the rusage of exactly this child, whose `ru_maxrss` is the largest of
    the child and the descendants it waited for (the workflow's jobs): the same figure as
    GNU `time -v`, without needing GNU time. RUSAGE_CHILDREN would instead keep the maximum
    over every child this script ever had, so a small run after a large one would inherit
    the large one's peak.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=environment(), stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall_s = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(
            f"{Path(command[0]).name} exited with {process.returncode}; log: {log_path}\n"
            + "\n".join(tail)
        )
    return Measured(wall_s, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def git(*args: str) -> str:
    """A git answer about this checkout, or '' where there is no git (an unpacked tarball)."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def commit() -> str:
    """Short commit id, marked dirty when the measured code differs from it.

    The benchmark's own result files do not count: they change with every measurement,
    and a second `make bench` on the same code measures the same commit.
    """
    head = git("rev-parse", "--short=7", "HEAD") or "unknown"
    results = [f":!{path.relative_to(REPO)}" for path in OUTPUT_FILES]
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *results)
    return f"{head}-dirty" if changed else head


# ---------------------------------------------------------------------------------------
# exports


def export_dir(n: int, seed: int) -> Path:
    return EXPORTS / f"n{n}-seed{seed}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def file_manifest(folder: Path) -> dict[str, dict[str, int | str]]:
    return {
        f"{table}.csv": {
            "bytes": (folder / f"{table}.csv").stat().st_size,
            "sha256": sha256(folder / f"{table}.csv"),
        }
        for table in TABLES
    }


def cached_manifest(folder: Path, n: int, seed: int) -> dict | None:
    """The manifest of a complete, unchanged export of (n, seed), else None.

    Sizes are compared first (cheap), hashes second: a truncated or edited file, or one
    left half-written by an interrupted generation, must not be measured as the real thing.
    """
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if (manifest.get("n"), manifest.get("seed")) != (n, seed):
        return None
    expected = manifest.get("files", {})
    for name, entry in expected.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            return None
    if set(expected) != {f"{table}.csv" for table in TABLES}:
        return None
    return manifest if file_manifest(folder) == expected else None


def write_export(n: int, seed: int, folder: Path) -> None:
    """Simulate and write one export (runs in its own process, see `make_export`)."""
    from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

    start = time.perf_counter()
    tables = simulate_cohort(scaled(SyntheticDesign(), n), seed)
    simulated = time.perf_counter()
    write_exports(tables, folder)
    timing = {"simulate_s": simulated - start, "write_s": time.perf_counter() - simulated}
    (folder / "timing.json").write_text(json.dumps(timing))


def make_export(n: int, seed: int) -> dict:
    """An export of n patients, from the cache when it is there and intact.

    Generation runs in a child process, so that its memory is returned afterwards and its
    time and peak RSS are measured like everything else; it writes into a scratch folder
    that replaces the cached one only when complete.
    """
    folder = export_dir(n, seed)
    manifest = cached_manifest(folder, n, seed)
    if manifest is not None:
        print(f"n={n}: export cached in {folder.relative_to(REPO)}", flush=True)
        return manifest
    print(f"n={n}: simulating the export (seed {seed}) ...", flush=True)
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command = [sys.executable, __file__, "export", str(n), str(seed), str(scratch)]
    measured = measure(command, scratch / "generate.log")
    timing = json.loads((scratch / "timing.json").read_text())
    manifest = {
        "n": n,
        "seed": seed,
        "files": file_manifest(scratch),
        "generated": {
            **{key: round(value, 2) for key, value in timing.items()},
            "wall_s": round(measured.wall_s, 2),
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "date": today(),
            "commit": commit(),
        },
    }
    (scratch / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    print(f"n={n}: export written in {measured.wall_s:.1f} s", flush=True)
    return manifest


def export_mb(manifest: dict) -> float:
    return sum(entry["bytes"] for entry in manifest["files"].values()) / 1e6


# ---------------------------------------------------------------------------------------
# runs


def run_pipeline(n: int, seed: int, cores: int) -> tuple[Measured, Path]:
    """The whole study, cold: a new empty out_dir, default config, every job run."""
    run = RUNS / f"n{n}"
    shutil.rmtree(run, ignore_errors=True)
    out_dir = run / "out"
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        str(cores),
        "--config",
        f"raw_dir={export_dir(n, seed)}",
        f"out_dir={out_dir}",
    ]
    print(f"n={n}: running the workflow on {cores} cores ...", flush=True)
    measured = measure(command, run / "snakemake.log")
    print(f"n={n}: workflow {measured.wall_s:.1f} s, {measured.peak_rss_mb:.0f} MB", flush=True)
    return measured, out_dir


def rule_times(out_dir: Path) -> pd.DataFrame:
    """Wall time and peak RSS of every job, from the run's Snakemake benchmark files.

    Sharded rules keep one row per shard (bootstrap_shard_1, ...): each shard is a job of
    its own, and the slowest job is what holds up the run.
    """
    rows = [
        {"rule": path.stem, "s": frame["s"].iloc[0], "max_rss_mb": frame["max_rss"].iloc[0]}
        for path in sorted((out_dir / "benchmarks").glob("*.tsv"))
        for frame in [pd.read_csv(path, sep="\t", na_values=["-"])]
    ]
    frame = pd.DataFrame(rows, columns=["rule", "s", "max_rss_mb"])
    return frame.sort_values("s", ascending=False, ignore_index=True)


def run_floor(n: int, seed: int) -> tuple[Measured, Path]:
    """benchmarks/floor.py on the same export, measured like the workflow."""
    run = RUNS / f"n{n}"
    estimates = run / "floor_estimates.csv"
    command = [
        sys.executable,
        str(BENCH / "floor.py"),
        str(export_dir(n, seed)),
        "--config",
        str(REPO / "config.yaml"),
        "--out",
        str(estimates),
    ]
    measured = measure(command, run / "floor.log")
    print(f"n={n}: floor {measured.wall_s:.1f} s, {measured.peak_rss_mb:.0f} MB", flush=True)
    return measured, estimates


def agreement(floor_csv: Path, estimates_csv: Path) -> str:
    """'k/m': how many of the floor's m estimates equal the pipeline's (value, CI, p)."""
    floor = pd.read_csv(floor_csv).set_index("estimate")
    pipeline = pd.read_csv(estimates_csv).set_index("estimate").reindex(floor.index)
    columns = ["n", "value", "ci_lower", "ci_upper", "p_value"]
    a, b = floor[columns].to_numpy(float), pipeline[columns].to_numpy(float)
    close = (abs(a - b) <= AGREEMENT_RTOL * abs(b) + AGREEMENT_ATOL) | (pd.isna(a) & pd.isna(b))
    same = close.all(axis=1)
    for name in floor.index[~same]:
        print(f"  floor and pipeline differ on {name}:", flush=True)
        both = pd.DataFrame([floor.loc[name, columns], pipeline.loc[name, columns]])
        print(both.set_axis(["floor", "pipeline"]).to_string(), flush=True)
    return f"{int(same.sum())}/{len(same)}"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def measure_size(n: int, seed: int, cores: int) -> tuple[dict, pd.DataFrame]:
    """One size: export, workflow, benchmark files, floor; one results row and its jobs."""
    manifest = make_export(n, seed)
    load_1m = os.getloadavg()[0]
    pipeline, out_dir = run_pipeline(n, seed, cores)
    load_1m_end = os.getloadavg()[0]
    floor, floor_csv = run_floor(n, seed)
    jobs = rule_times(out_dir)
    slowest = jobs.head(3)
    row = {
        "n": n,
        "export_mb": round(export_mb(manifest), 2),
        "export_gen_s": manifest["generated"]["wall_s"],
        "wall_s": round(pipeline.wall_s, 1),
        "peak_rss_mb": round(pipeline.peak_rss_mb),
        "cpu_s": round(pipeline.cpu_s, 1),
        "floor_s": round(floor.wall_s, 2),
        "floor_rss_mb": round(floor.peak_rss_mb),
        "ratio": round(pipeline.wall_s / floor.wall_s, 1),
        "floor_agrees": agreement(floor_csv, out_dir / "estimates.csv"),
        "cores": cores,
        "load_1m": round(load_1m, 2),
        "load_1m_end": round(load_1m_end, 2),
        "date": today(),
        "commit": commit(),
    }
    for rank, job in enumerate(slowest.itertuples(), start=1):
        row[f"rule_{rank}"], row[f"rule_{rank}_s"] = job.rule, round(job.s, 1)
    jobs = jobs.assign(n=n, date=row["date"], commit=row["commit"])
    return row, jobs[["n", "rule", "s", "max_rss_mb", "date", "commit"]]


# ---------------------------------------------------------------------------------------
# results


def merged(path: Path, new: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Earlier rows of the sizes not measured now, with the new rows; sorted by n."""
    if path.is_file():
        old = pd.read_csv(path)
        new = pd.concat([old[~old["n"].isin(new["n"])], new], ignore_index=True)
    return new.reindex(columns=columns).sort_values("n", kind="stable", ignore_index=True)


def markdown(results: pd.DataFrame) -> str:
    """The README's table: one line per size, the slowest jobs with their seconds."""
    dates, commits = sorted(set(results["date"])), sorted(set(results["commit"]))
    cores = ", ".join(str(c) for c in sorted(set(results["cores"])))
    lines = [
        f"Measured on {cores} cores, {' to '.join([dates[0], dates[-1]][: len(dates)])}, "
        f"commit {', '.join(commits)}.",
        "",
        "| patients | export MB | wall s | peak RSS MB | slowest jobs (s) | floor s | wall/floor |",
        "|---:|---:|---:|---:|:---|---:|---:|",
    ]
    for r in results.itertuples():
        slowest = ", ".join(
            f"{getattr(r, f'rule_{k}')} {getattr(r, f'rule_{k}_s'):.1f}"
            for k in (1, 2, 3)
            if isinstance(getattr(r, f"rule_{k}"), str)
        )
        lines.append(
            f"| {r.n:,} | {r.export_mb:,.1f} | {r.wall_s:,.1f} | {r.peak_rss_mb:,.0f} | "
            f"{slowest} | {r.floor_s:,.1f} | {r.ratio:,.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: pd.DataFrame, stem: Path) -> None:
    """Wall time and peak RSS against patients, log-log, the floor as a second line.

    A dotted line of slope 1 through the largest pipeline point shows linear growth: where
    the pipeline's curve is flatter, fixed costs (start-up, the report) dominate; a last
    segment steeper than it grows faster than the export.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "sinet-bm-bench"
    n = results["n"].to_numpy(float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    panels = [
        (axes[0], "wall_s", "floor_s", "wall time (s)"),
        (axes[1], "peak_rss_mb", "floor_rss_mb", "peak RSS, largest process (MB)"),
    ]
    for ax, pipeline, floor, label in panels:
        ax.plot(n, results[pipeline], "o-", label="whole workflow (snakemake)")
        ax.plot(n, results[floor], "s--", label="floor (one process, section 3)")
        ax.plot(n, results[pipeline].iloc[-1] * n / n[-1], ":", color="grey", label="linear in n")
        ax.set(xscale="log", yscale="log", xlabel="patients (eligible)", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(loc="upper left", fontsize="small")
    cores = ", ".join(str(c) for c in sorted(set(results["cores"])))
    fig.suptitle(f"siNET-BM benchmark, {cores} cores, commit {', '.join(set(results['commit']))}")
    fig.savefig(stem.with_suffix(".svg"), metadata={"Date": None})
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    plt.close(fig)


def main(sizes: list[int], seed: int, cores: int) -> None:
    rows, jobs = [], []
    for n in sizes:
        row, job_times = measure_size(n, seed, cores)
        rows.append(row)
        jobs.append(job_times)
    results = merged(RESULTS_CSV, pd.DataFrame(rows), RESULT_COLUMNS)
    results.to_csv(RESULTS_CSV, index=False)
    rules = merged(RULES_CSV, pd.concat(jobs), ["n", "rule", "s", "max_rss_mb", "date", "commit"])
    rules.to_csv(RULES_CSV, index=False)
    plot(results, PLOT)
    table = markdown(results)
    RESULTS_MD.write_text(table)
    print()
    print(table)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        write_export(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        arguments = parse_args(sys.argv[1:])
        main(arguments.sizes, arguments.seed, arguments.cores)
