"""The audit crate and the reviewer's commands: the crate's structure on a tiny hand-made
run record, `verify` on untouched and altered copies, and, on the default cohort's real run,
no patient id or date in any file of the crate, and a reproduction with identical results."""

import csv
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from sinet_bm import audit, cli
from sinet_bm.provenance import git_blob_hash, sha256

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5",
    "https://w3id.org/ro/wfrun/workflow/0.5",
    "https://w3id.org/ro/wfrun/provenance/0.5",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
ROW = b"SYN-ROW-LEVEL 1961-02-03"  # what the tiny run's row-level files hold


def record(folder: str, path: str, root: Path) -> dict[str, str]:
    return {"folder": folder, "path": path, "sha256": sha256(root / path)}


@pytest.fixture
def tiny(tmp_path) -> dict[str, Path]:
    """A run record of two jobs, the files it names, and its crate, built from it with the
    repository as the workflow folder."""
    out, raw = tmp_path / "out", tmp_path / "raw"
    for folder, name, content in [
        (raw, "patients.csv", ROW),
        (out, "validated/patients.parquet", ROW),
        (out, "estimates.csv", b"estimate,value\nn_eligible,458\n"),
        (out, "figures/km_os_bm.svg", b"<svg/>"),
    ]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    steps = [
        {
            "rule": "validate_exports",
            "inputs": [
                record("exports", "patients.csv", raw),
                record("workflow", "sinet_bm/ingest.py", REPO),
            ],
            "outputs": [record("results", "validated/patients.parquet", out)],
            "params": {"strict": False},
        },
        {
            "rule": "bootstrap_shard (shard 1)",
            "inputs": [record("results", "validated/patients.parquet", out)],
            "outputs": [record("results", "estimates.csv", out)],
            "params": {"bootstrap": {"replicates": 200, "seed": 1}},
        },
        {
            "rule": "plot_figures",
            "inputs": [record("results", "estimates.csv", out)],
            "outputs": [record("results", "figures/km_os_bm.svg", out)],
            "params": {},
        },
    ]
    for step in steps:
        script = f"scripts/{step['rule'].split()[0]}.py"
        step |= {
            "script": script,
            "script_git_blob": git_blob_hash(REPO / script),
            "conda_env": "envs/estimate.yaml",
            "ended": "2024-06-30T10:00:02+00:00",
            "wall_seconds": 2.0,
            "max_rss_mb": 100.0,
        }
    provenance = {
        "pipeline": {"commit": "0" * 40, "modified": False},
        "config": {"analysis": {"confidence_level": 0.95}},
        "software": {"python": "3.11.7", "snakemake": "9.27.1", "pandas": "2.3.3"},
        "place": {"out_dir": str(out), "exports": {"exports": str(raw)}},
        "steps": steps,
    }
    (out / "provenance.json").write_text(json.dumps(provenance))
    shipped = [
        audit.Shipped(out / name, name) for name in ("estimates.csv", "figures/km_os_bm.svg")
    ]
    crate = audit.build_crate(provenance, shipped, REPO, source_date_epoch="1719705600")
    audit.write_crate(crate, out / "audit", out / "audit.zip")
    return {"out": out, "raw": raw, "crate": out / "audit", "zip": out / "audit.zip"}


def graph(crate: Path) -> dict[str, dict]:
    metadata = json.loads((crate / audit.METADATA).read_text())
    return {item["@id"]: item for item in metadata["@graph"]}


def ids(value) -> list[str]:
    return [item["@id"] for item in (value if isinstance(value, list) else [value])]


def of_type(entities: dict[str, dict], kind: str) -> list[dict]:
    return [e for e in entities.values() if kind in e["@type"] or e["@type"] == kind]


def test_the_crate_conforms_to_the_provenance_run_crate_profile_and_those_it_builds_on(tiny):
    entities = graph(tiny["crate"])
    assert ids(entities[audit.METADATA]["conformsTo"]) == [
        "https://w3id.org/ro/crate/1.1",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
    ]
    root = entities["./"]
    assert set(ids(root["conformsTo"])) == PROFILES
    assert all(entities[profile]["@type"] == "CreativeWork" for profile in PROFILES)
    workflow = entities[root["mainEntity"]["@id"]]
    assert workflow["@id"] == "workflow/Snakefile"
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} <= set(
        workflow["@type"]
    )
    assert set(ids(workflow["hasPart"])) == {
        "workflow/rules/validate.smk#validate_exports",
        "workflow/rules/replicates.smk#bootstrap_shard",
        "workflow/rules/report.smk#plot_figures",
    }
    assert ids(root["mentions"]) == ["#run-workflow"]


def test_one_create_action_per_job_with_its_rule_inputs_params_and_outputs(tiny):
    entities = graph(tiny["crate"])
    runs = {e["name"]: e for e in of_type(entities, "CreateAction")}
    shard = runs["Run of rule bootstrap_shard (shard 1)"]
    tool = entities[shard["instrument"]["@id"]]
    assert tool["@type"] == "SoftwareApplication"
    assert tool["mainEntity"] == {"@id": "workflow/scripts/bootstrap_shard.py"}
    script = entities["workflow/scripts/bootstrap_shard.py"]
    assert script["version"] == git_blob_hash(REPO / "scripts" / "bootstrap_shard.py")
    assert "https://pypi.org/project/pandas/2.3.3/" in ids(tool["softwareRequirements"])
    assert ids(shard["object"]) == [
        "#results/validated/patients.parquet",
        "#bootstrap_shard-shard-1-param-bootstrap",
    ]
    parameter = entities["#bootstrap_shard-shard-1-param-bootstrap"]
    assert json.loads(parameter["value"]) == {"replicates": 200, "seed": 1}
    assert ids(shard["result"]) == ["estimates.csv"]
    assert (shard["startTime"], shard["endTime"]) == (
        "2024-06-30T10:00:00+00:00",
        "2024-06-30T10:00:02+00:00",
    )
    validate = runs["Run of rule validate_exports"]
    assert ids(validate["object"])[:2] == ["#exports/patients.csv", "workflow/sinet_bm/ingest.py"]
    assert len(runs) == 4  # three jobs and the workflow's run
    workflow_run = runs["Run of the siNET-BM workflow"]
    assert workflow_run["instrument"] == {"@id": "workflow/Snakefile"}
    assert ids(workflow_run["result"]) == ["estimates.csv", "figures/km_os_bm.svg"]
    environment = entities[workflow_run["environment"][0]["@id"]]
    assert (environment["name"], environment["value"]) == ("SOURCE_DATE_EPOCH", "1719705600")


def test_steps_and_their_orchestration_follow_the_order_of_the_data(tiny):
    entities = graph(tiny["crate"])
    steps = {e["name"]: e for e in of_type(entities, "HowToStep")}
    positions = {name: int(step["position"]) for name, step in steps.items()}
    assert positions == {"validate_exports": 0, "bootstrap_shard": 1, "plot_figures": 2}
    assert steps["plot_figures"]["buildInstructions"] == {"@id": "workflow/envs/estimate.yaml"}
    control = entities["#control-bootstrap_shard"]
    assert control["instrument"] == {"@id": "#step-bootstrap_shard"}
    assert ids(control["object"]) == ["#run-bootstrap_shard-shard-1"]
    engine = entities["#run-snakemake"]
    assert engine["@type"] == "OrganizeAction"
    assert engine["result"] == {"@id": "#run-workflow"}
    assert {f"#control-{rule}" for rule in positions} <= set(ids(engine["object"]))


def test_every_file_has_its_sha256_and_row_level_files_stay_out(tiny):
    entities = graph(tiny["crate"])
    copied = sorted(
        p.relative_to(tiny["crate"]).as_posix() for p in tiny["crate"].rglob("*") if p.is_file()
    )
    assert "estimates.csv" in copied and "workflow/requirements.lock" in copied
    assert not [name for name in copied if name.endswith(".parquet") or "raw" in name]
    for name in copied:
        if name != audit.METADATA:
            assert entities[name]["sha256"] == sha256(tiny["crate"] / name), name
    parquet = entities["#results/validated/patients.parquet"]
    assert parquet["sha256"] == sha256(tiny["out"] / "validated" / "patients.parquet")
    for path in [*tiny["crate"].rglob("*"), tiny["zip"]]:
        assert not path.is_file() or ROW not in path.read_bytes(), path
    metadata = (tiny["crate"] / audit.METADATA).read_text()
    assert str(tiny["out"]) not in metadata and str(tiny["raw"]) not in metadata


def test_the_zip_holds_the_crate_with_sorted_entries_and_no_clock(tiny, tmp_path):
    with zipfile.ZipFile(tiny["zip"]) as zipped:
        entries = zipped.infolist()
        names = [entry.filename for entry in entries]
        assert names == sorted(names)
        assert {entry.date_time for entry in entries} == {audit.ZIP_TIME}
        for entry in entries:
            assert zipped.read(entry) == (tiny["crate"] / entry.filename).read_bytes()
    again = tmp_path / "again.zip"
    audit.write_zip(tiny["crate"], again)
    assert again.read_bytes() == tiny["zip"].read_bytes()


def unpacked(archive: Path, target: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target)
    return target


def change_one_digit(path: Path) -> None:
    """The first digit below the header, one up."""
    header, body = path.read_text().split("\n", 1)
    i = re.search(r"\d", body).start()
    path.write_text(f"{header}\n{body[:i]}{(int(body[i]) + 1) % 10}{body[i + 1 :]}")


@pytest.mark.parametrize("kind", ["out_dir", "crate"])
def test_verify_passes_untouched_and_names_a_changed_or_missing_file(tiny, tmp_path, kind):
    folder = tiny["out"] if kind == "out_dir" else unpacked(tiny["zip"], tmp_path / "crate")
    lines, failed = audit.verify(folder, workflow=REPO)
    assert failed == 0 and lines[-1].startswith("all "), lines
    change_one_digit(folder / "estimates.csv")
    (folder / "figures" / "km_os_bm.svg").unlink()
    lines, failed = audit.verify(folder, workflow=REPO)
    assert failed == 2
    assert lines[:2] == ["changed  estimates.csv", "missing  figures/km_os_bm.svg"]
    assert lines[-1].startswith("2 of ")
    assert cli.main(["verify", str(folder), "--workflow", str(REPO)]) == 1


def test_verify_imports_neither_snakemake_nor_pandas(tiny):
    check = (
        "import sys; from sinet_bm import cli; code = cli.main(['verify', sys.argv[1]]); "
        "assert not {'pandas', 'snakemake', 'rocrate'} & set(sys.modules), sys.modules.keys(); "
        "sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, str(tiny["crate"])], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "have their recorded SHA-256" in result.stdout


# ---------------------------------------------------------------------------------------
# the default cohort's real run


def export_values(raw: Path) -> tuple[set[str], set[str]]:
    """Every patient id and every date of a patient in the exports."""
    ids_, dates = set(), set()
    for path in raw.glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                ids_.add(row["patient_id"])
                dates |= {v for k, v in row.items() if k.endswith("_date") and v}
    return ids_, dates


def shown(data: bytes, secrets: set[bytes]) -> set[bytes]:
    """The secrets among the words (letters and digits) and ISO dates of a file's bytes."""
    words = re.findall(rb"[A-Za-z0-9]+", data) + re.findall(rb"\d{4}-\d{2}-\d{2}", data)
    return secrets.intersection(words)


@pytest.mark.slow
def test_no_patient_id_or_date_in_any_file_of_the_crate_or_the_zip(default_run, config):
    """Every file of audit/ and audit.zip, and every entry of the zip unpacked, against
    every patient id and every date of a patient in the exports."""
    out, raw = default_run / "results", default_run / "resources" / "synthetic"
    ids_, dates = export_values(raw)
    # the study's own dates (cutoff, start, end: also the reports' pinned run date)
    definitions = {v for v in config["definitions"].values() if isinstance(v, str)}
    secrets = {value.encode() for value in ids_ | (dates - definitions)}
    assert len(ids_) > 400 and len(dates) > 1000
    assert len(shown((raw / "patients.csv").read_bytes(), secrets)) > 1000  # the scan sees them
    with zipfile.ZipFile(out / "audit.zip") as zipped:
        contents = {f"audit.zip:{name}": zipped.read(name) for name in zipped.namelist()}
    files = [*(out / "audit").rglob("*"), out / "audit.zip"]
    contents |= {str(path): path.read_bytes() for path in files if path.is_file()}
    assert len(contents) > 200
    found = {
        name: sorted(hits)[:3] for name, data in contents.items() if (hits := shown(data, secrets))
    }
    assert found == {}


@pytest.mark.slow
def test_the_crate_has_an_action_for_every_job_of_the_run(default_run):
    out = default_run / "results"
    provenance = json.loads((out / "provenance.json").read_text())
    entities = graph(out / "audit")
    runs = {e["name"]: e for e in of_type(entities, "CreateAction")}
    jobs = [step["rule"] for step in provenance["steps"]] + ["report"]
    assert {f"Run of rule {job}" for job in jobs} | {"Run of the siNET-BM workflow"} == set(runs)
    for run in runs.values():
        assert run["instrument"] and run["object"] and run["result"], run["name"]
        assert run["startTime"] < run["endTime"], run["name"]
    report = runs["Run of rule report"]
    assert {"report/report.html", "report/report.pdf"} <= set(ids(report["result"]))


@pytest.mark.slow
def test_verify_passes_on_the_run_and_on_its_unpacked_crate(default_run, tmp_path):
    out = default_run / "results"
    lines, failed = audit.verify(out, workflow=default_run)
    assert failed == 0, lines
    lines, failed = audit.verify(unpacked(out / "audit.zip", tmp_path / "crate"))
    assert failed == 0, lines
    assert cli.main(["verify", str(out / "audit")]) == 0


@pytest.mark.slow
def test_reproduce_from_the_crate_gives_byte_identical_results(default_run, capsys):
    crate = default_run / "results" / "audit"  # only read
    raw = default_run / "resources" / "synthetic"
    assert cli.main(["reproduce", str(crate), str(raw), "--cores", "2"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    total = len(audit.result_files(crate))
    assert total > 25
    assert summary.startswith(f"{total} of {total} result files are byte-identical"), summary
