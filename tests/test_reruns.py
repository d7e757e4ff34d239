"""Reruns after a data refresh, a config change and a code change: real Snakemake runs whose
planned jobs (--dry-run --summary, --list-changes) and executed jobs are the exact sets the
change calls for, and the refresh changelog the report shows."""

import ast
import copy
import json
import modulefinder
import os
import queue
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_run, copy_workflow, snakemake

from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

pytestmark = pytest.mark.slow

DATA_STEPS = {
    "validate_exports",
    "derive_endpoints",
    "bootstrap_shard",
    "estimate_cohort",
    "estimate_survival",
    "estimate_sensitivity",
    "collect_estimates",
    "plot_figures",
    "report",
    "audit_crate",
    "share_bundle",
}
REPORTING = {"report", "audit_crate"}
SHARDS = {"bootstrap_shard": 2, "bias_check_shard": 1}


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints for a (dry) run, without the `all` target."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE))
    return {rule: int(n) for rule, n in counts.items() if rule not in {"all", "job"}}


def pending_rules(summary: str) -> set[str]:
    """Rules with an output whose plan is not 'no update' in `--summary`."""
    rows = [line.split("\t") for line in summary.splitlines() if line.count("\t") >= 5]
    header, *rows = [row for row in rows if row]
    plan, rule = header.index("plan"), header.index("rule")
    return {row[rule] for row in rows if row[plan] != "no update"}


class Study:
    """One workflow copy analysing one export folder, rerun after each change."""

    def __init__(self, root: Path) -> None:
        self.workdir = copy_workflow(root / "repo")
        self.raw = root / "exports"
        self.extra = self.workdir / "override.yaml"
        self.extra.write_text("out_dir: out\n")

    def run(self, *args: str):
        return snakemake(
            self.workdir,
            "--configfile",
            "config.yaml",
            str(self.extra),
            "--config",
            f"raw_dir={self.raw}",
            "out_dir=out",
            *args,
        )

    def planned(self) -> tuple[dict[str, int], set[str]]:
        dry = self.last_dry_run = self.run("--dry-run")
        assert dry.returncode == 0, dry.stderr[-3000:]
        if "Nothing to be done" in dry.stdout + dry.stderr:
            return {}, set()
        summary = self.run("--dry-run", "--summary")
        assert summary.returncode == 0, summary.stderr[-3000:]
        return job_counts(dry.stdout), pending_rules(summary.stdout)

    def rerun(self) -> dict[str, int]:
        result = self.run()
        assert result.returncode == 0, result.stderr[-3000:]
        return job_counts(result.stdout + result.stderr)

    def list_changes(self, kind: str) -> set[str]:
        result = self.run("--list-changes", kind)
        assert result.returncode == 0, result.stderr[-3000:]
        return {line for line in result.stdout.splitlines() if line.startswith("out/")}

    def reasons(self) -> dict[str, set[str]]:
        """The dry run's 'Reasons' section: why -> the rules it applies to. (In Snakemake
        9.27 `--list-changes params` lists every output that has params, changed or not.)"""
        dry = self.last_dry_run
        section = dry.stdout.split("Reasons:", 1)[1].split("\n\n", 1)[0]
        found = re.findall(r"^ {4}(\S[^\n]*):\n {8}([^\n]+)$", section, flags=re.MULTILINE)
        return {why: set(rules.split(", ")) for why, rules in found}

    def copy(self, target: Path) -> "Study":
        """The same study in another folder, its results and Snakemake's records included."""
        twin = copy.copy(self)
        twin.workdir = copy_run(self.workdir, target)
        twin.extra = twin.workdir / self.extra.name
        return twin

    def json(self, name: str) -> dict:
        return json.loads((self.workdir / "out" / name).read_text())


def expected(*steps: str) -> dict[str, int]:
    return {step: SHARDS.get(step, 1) for step in steps}


def export_tables(patients: int) -> dict[str, pd.DataFrame]:
    return simulate_cohort(scaled(SyntheticDesign(), patients), seed=8)


def only(tables: dict[str, pd.DataFrame], ids: set[str]) -> dict[str, pd.DataFrame]:
    return {name: table[table["patient_id"].isin(ids)] for name, table in tables.items()}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(tmp_path_factory.mktemp("reruns"))
    tables = export_tables(125)
    ids = tables["patients"]["patient_id"].tolist()
    write_exports(only(tables, set(ids[:-5])), study.raw)
    first = study.run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert study.planned() == ({}, set())
    return study


def test_first_run_has_nothing_to_compare(study):
    assert study.json("refresh/changelog.json") == {"previous": None}
    html = (study.workdir / "out" / "report" / "report.html").read_text()
    assert "This is the first export analysed in this results folder" in html
    assert (study.workdir / "out" / "refresh" / "history" / "last.json").is_file()


# ---------------------------------------------------------------------------------------
# code changes: the rerun sets, against the package's import graph


def rule_scripts(workdir: Path) -> dict[str, Path]:
    """Each rule's script, by the workflow's convention: scripts/<rule>.py."""
    return {path.stem: path for path in (workdir / "scripts").glob("*.py")}


def modules_run_by(script: Path, workdir: Path) -> set[str]:
    """The package modules a script runs, found by Python's own modulefinder (not by the
    workflow's source walk), searching the workflow folder only."""
    finder = modulefinder.ModuleFinder(path=[str(workdir)])
    finder.run_script(str(script))
    return {name.split(".")[1] for name in finder.modules if name.startswith("sinet_bm.")}


def modules_reading(path: Path, workdir: Path) -> set[str]:
    """Modules whose code names the file: a template or the estimates catalogue by its file
    name or its path, a table's schema through the schemas folder."""
    table_schema = path.parent.name == "schemas" and path.name != "estimates.yaml"
    wanted = "schemas" if table_schema else path.name
    readers = set()
    for module in (workdir / "sinet_bm").glob("*.py"):
        constants = {
            node.value
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        if wanted in constants or any(c.endswith(f"/{wanted}") for c in constants):
            readers.add(module.stem)  # by name, or by path in USES (included templates)
    return readers


def rule_graph(workdir: Path) -> dict[str, set[str]]:
    """rule -> the rules that read its outputs, from Snakemake's rule graph."""
    graph = snakemake(workdir, "--rulegraph", "--config", "out_dir=out", "raw_dir=exports")
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", graph.stdout, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", graph.stdout, flags=re.M)
    readers: dict[str, set[str]] = {rule: set() for rule in labels.values()}
    for a, b in edges:
        readers[labels[a]].add(labels[b])
    return readers


def downstream(graph: dict[str, set[str]], rules: set[str]) -> set[str]:
    """The rules and everything that depends on their outputs."""
    found, todo = set(), set(rules)
    while todo:
        rule = todo.pop()
        found.add(rule)
        todo |= graph[rule] - found
    return found - {"all"}


COMMENT = {
    ".py": "\n# edited\n",
    ".yaml": "\n# edited\n",
    ".html": "{# edited #}\n",
    ".css": "/* edited */\n",
}
# The config schemas are read when Snakemake starts, not by a step.
NOT_STEP_INPUTS = {"config.schema.yaml", "synthetic.schema.yaml"}


def edited_files(workdir: Path) -> list[Path]:
    return sorted(
        [
            *(workdir / "sinet_bm").glob("*.py"),
            *(workdir / "sinet_bm" / "templates").iterdir(),
            *(p for p in (workdir / "schemas").glob("*.yaml") if p.name not in NOT_STEP_INPUTS),
        ]
    )


def rules_planned_after_editing(study: Study, relative: Path) -> set[str]:
    """The rules a dry run plans with a comment appended to one file, put back after."""
    path = study.workdir / relative
    original, stat = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + COMMENT[path.suffix].encode())
        dry = study.run("--dry-run")
        assert dry.returncode == 0, dry.stderr[-3000:]
        return set(job_counts(dry.stdout)) if "Job stats" in dry.stdout else set()
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_package_change_reruns_exactly_the_steps_that_run_it(study, tmp_path):
    """Appending a comment to each module, template and schema in turn plans exactly the
    rules whose scripts reach it (modulefinder) and the rules downstream of them. The dry
    runs go two at a time, in the study's folder and in a copy of it."""
    workdir = study.workdir
    graph = rule_graph(workdir)
    scripts = rule_scripts(workdir)
    reach = {rule: modules_run_by(script, workdir) for rule, script in scripts.items()}
    expected_rules = {}
    for path in edited_files(workdir):
        if path.name == "__init__.py":  # runs with every module of the package
            users = {rule for rule, modules in reach.items() if modules}
        elif path.suffix == ".py":
            users = {rule for rule, modules in reach.items() if path.stem in modules}
        else:
            readers = modules_reading(path, workdir)
            assert readers, f"no module reads {path.name}"
            users = {rule for rule, modules in reach.items() if modules & readers}
        users &= {"validate_exports", *DATA_STEPS, "bias_check_shard"}  # no simulate: raw_dir
        # the audit crate copies every file of the workflow: any edit rebuilds it
        expected_rules[path.relative_to(workdir)] = downstream(graph, users) | {"audit_crate"}
    folders = queue.SimpleQueue()
    for folder in (study, study.copy(tmp_path / "twin")):
        folders.put(folder)

    def planned(relative: Path) -> set[str]:
        folder = folders.get()
        try:
            return rules_planned_after_editing(folder, relative)
        finally:
            folders.put(folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        planned_rules = dict(zip(expected_rules, pool.map(planned, expected_rules), strict=True))
    print("\n".join(f"{path}: {', '.join(sorted(rules))}" for path, rules in planned_rules.items()))
    assert planned_rules == expected_rules
    assert study.planned() == ({}, set()), "every file back: nothing to do"


def test_a_script_change_reruns_its_rule_and_what_depends_on_it(study):
    with (study.workdir / "scripts" / "bias_check_shard.py").open("a") as handle:
        handle.write("\n# edited\n")
    steps = {"bias_check_shard", "collect_estimates", *REPORTING}
    jobs, pending = study.planned()
    assert jobs == expected(*steps)
    assert pending == steps
    changed = study.list_changes("code")  # a script is the rule's code
    assert changed and all(path.startswith("out/bias_check/shard_") for path in changed), changed
    assert study.rerun() == jobs


@pytest.mark.parametrize(
    ("override", "steps", "told"),
    [
        (
            "privacy: {min_cell_count: 3}",
            {*REPORTING, "share_bundle"},
            {"report", "share_bundle"},
        ),
        (
            "bootstrap: {replicates: 150}",
            {"bootstrap_shard", "collect_estimates", *REPORTING},
            {"bootstrap_shard", "collect_estimates", "report"},
        ),
        (
            "sensitivity: {bias_check: {replicates: 6}}",
            {"bias_check_shard", "collect_estimates", *REPORTING},
            {"bias_check_shard", "report"},
        ),
    ],
)
def test_a_config_change_reruns_the_steps_that_use_it(study, override, steps, told):
    """`told`: the rules the value reaches as params; the others rerun for their inputs."""
    study.extra.write_text(override + "\n")
    jobs, pending = study.planned()
    assert jobs == expected(*steps)
    assert pending == steps
    blamed = study.reasons()["params have changed since last execution"]
    assert blamed and blamed <= told  # jobs also rerun for their inputs are listed there
    study.extra.write_text("out_dir: out\n")
    assert study.planned() == ({}, set()), "the value back: every result is current again"


def test_a_refreshed_export_reruns_the_data_steps_and_tells_what_changed(study):
    """Two patients withdrawn, five new ones, three deaths recorded, follow-up extended."""
    before = {
        "endpoints": pd.read_parquet(study.workdir / "out" / "endpoints" / "patients.parquet"),
        "estimates": pd.read_csv(study.workdir / "out" / "estimates.csv"),
    }
    tables = export_tables(125)
    ids = tables["patients"]["patient_id"].tolist()
    refreshed = only(tables, set(ids[2:]))
    patients = refreshed["patients"].copy()
    alive = patients.index[patients["vital_status"] == "alive"]
    patients.loc[alive[:3], "vital_status"] = "dead"
    cutoff = pd.Timestamp("2024-06-30")
    later = patients.loc[alive[3:], "last_followup_date"] + pd.Timedelta(days=60)
    patients.loc[alive[3:], "last_followup_date"] = later.where(later <= cutoff, cutoff)
    refreshed["patients"] = patients
    shutil.rmtree(study.raw)
    write_exports(refreshed, study.raw)

    jobs, pending = study.planned()
    assert jobs == expected(*DATA_STEPS)
    assert pending == DATA_STEPS
    assert study.rerun() == jobs

    changes = study.json("refresh/changelog.json")
    assert changes["patients_added"] == 5 and changes["patients_removed"] == 2
    after = pd.read_parquet(study.workdir / "out" / "endpoints" / "patients.parquet")
    old, new = before["endpoints"], after
    old_eligible, new_eligible = old[old["eligible"]], new[new["eligible"]]
    counts = changes["counts"]
    assert counts["deaths"] == {
        "old": int(old_eligible["dead"].sum()),
        "new": int(new_eligible["dead"].sum()),
    }
    assert counts["person_years"]["new"] > counts["person_years"]["old"]
    assert counts["person_years"]["new"] == pytest.approx(new_eligible["os_months"].sum() / 12)
    new_estimates = pd.read_csv(study.workdir / "out" / "estimates.csv").set_index("estimate")
    old_estimates = before["estimates"].set_index("estimate")
    for row in changes["estimates"]:
        assert row["old"] == pytest.approx(old_estimates.loc[row["estimate"], "value"], nan_ok=True)
        assert row["new"] == pytest.approx(new_estimates.loc[row["estimate"], "value"], nan_ok=True)
    rows = {"old_rows": len(before["endpoints"]), "new_rows": len(after), "changed": True}
    assert changes["files"]["patients"] == rows and rows["new_rows"] == rows["old_rows"] + 3

    html = (study.workdir / "out" / "report" / "report.html").read_text()
    assert "5 patients added and 2 removed" in html
    assert "1 patients added" not in html

    # the same export again after a code change still compares with the export before it
    with (study.workdir / "scripts" / "report.py").open("a") as handle:
        handle.write("\n# edited\n")
    assert study.rerun() == expected(*REPORTING)
    assert study.json("refresh/changelog.json") == changes
