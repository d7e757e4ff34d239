"""Reruns after a data refresh, a config change and a code change: real Snakemake runs whose
planned jobs (--dry-run --summary, --list-changes) and executed jobs are the exact sets the
change calls for, and the refresh changelog the report shows."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_workflow, snakemake

from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort, write_exports

pytestmark = pytest.mark.slow

DATA_STEPS = {
    "validate_exports",
    "derive_endpoints",
    "bootstrap_shard",
    "bootstrap_ci",
    "estimate_cohort",
    "estimate_survival",
    "estimate_sensitivity",
    "collect_estimates",
    "describe_cohort",
    "refresh_changelog",
    "plot_figures",
    "provenance",
    "report",
    "report_pdf",
}
REPORTING = {"provenance", "report", "report_pdf"}


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

    def json(self, name: str) -> dict:
        return json.loads((self.workdir / "out" / name).read_text())


def expected(*steps: str, shards: int = 2) -> dict[str, int]:
    return {step: shards if step.endswith("_shard") else 1 for step in steps}


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


@pytest.mark.parametrize(
    ("path", "steps", "outputs"),
    [
        ("sinet_bm/figures.py", {"plot_figures", *REPORTING}, None),
        (
            "scripts/bias_check_shard.py",
            {"bias_check_shard", "check_immortal_time_bias", *REPORTING},
            "out/bias_check/shard_",
        ),
    ],
)
def test_a_code_change_reruns_its_rule_and_what_depends_on_it(study, path, steps, outputs):
    with (study.workdir / path).open("a") as handle:
        handle.write("\n# edited\n")
    jobs, pending = study.planned()
    assert jobs == expected(*steps)
    assert pending == steps
    changed = study.list_changes("code")
    if outputs:  # a script is the rule's code; a package module is one of its inputs
        assert changed and all(path.startswith(outputs) for path in changed), changed
    else:
        assert changed == set()
    assert study.rerun() == jobs


@pytest.mark.parametrize(
    ("override", "steps", "told"),
    [
        ("privacy: {min_cell_count: 3}", REPORTING, {"provenance", "report"}),
        (
            "bootstrap: {replicates: 150}",
            {
                "bootstrap_shard",
                "bootstrap_ci",
                "collect_estimates",
                "refresh_changelog",
                "plot_figures",
                *REPORTING,
            },
            {"bootstrap_shard", "bootstrap_ci", "provenance", "report"},
        ),
        (
            "sensitivity: {bias_check: {replicates: 6}}",
            {"bias_check_shard", "check_immortal_time_bias", *REPORTING},
            {"bias_check_shard", "provenance", "report"},
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
    with (study.workdir / "scripts" / "refresh_changelog.py").open("a") as handle:
        handle.write("\n# edited\n")
    assert study.rerun() == expected("refresh_changelog", *REPORTING)
    assert study.json("refresh/changelog.json") == changes
