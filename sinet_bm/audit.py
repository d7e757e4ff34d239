"""The reviewers' copy of a run, and the two checks a reviewer makes with it.

`out_dir/audit/` is a Workflow Run RO-Crate conforming to the Provenance Run Crate profile
(0.5): the workflow that ran (Snakefile, rules, scripts, the package, the lock file, the
config) as the `ComputationalWorkflow`, one `CreateAction` per job that ran, with the
rule as its `instrument`, the files and parameters it read as its `object` and the files it
wrote as its `result`, each file with its SHA-256; and copies of the shareable results.
Row-level files (the exports, the validated tables, the endpoints) are named by path and
SHA-256 only, and the validation findings, which quote offending cells, only as the counts
per file, check and severity of the validation summary. Nothing in the crate says where the
run took place, so that two runs of the same export differ only in their times.

`verify` re-hashes every file a record lists (provenance.json of an out_dir, or the crate's
metadata); `reproduce` reruns the study into a temporary folder and compares the results
byte for byte. Both only read the folder they are given. This module imports neither
Snakemake nor pandas, so that `sinet-bm verify` starts fast; ro-crate-py is imported only
to build a crate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

from sinet_bm.provenance import sha256

METADATA = "ro-crate-metadata.json"
CRATE_VERSION = "1.1"  # the RO-Crate version the Workflow Run Crate profiles 0.5 build on
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
# `sha256` and the other workflow-run terms; `buildInstructions` (a step's conda env) is a
# CodeMeta term that the RO-Crate 1.1 context does not define.
WORKFLOW_RUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
EXTRA_TERMS = {"buildInstructions": "https://codemeta.github.io/terms/buildInstructions"}
CONDA_ENV_FORMAT = (
    "https://conda.io/projects/conda/en/latest/user-guide/tasks/manage-environments.html"
    "#create-env-file-manually"
)
# The workflow folder's files a rerun needs, copied into the crate below WORKFLOW_DIR.
WORKFLOW_DIR = "workflow"
WORKFLOW_FILES = (
    "Snakefile",
    "Makefile",
    "config.yaml",
    "pyproject.toml",
    "requirements.lock",
    "rules/*.smk",
    "scripts/*.py",
    "sinet_bm/*.py",
    "sinet_bm/templates/*",
    "schemas/*",
    "envs/*.yaml",
    "report/*",
    "resources/published.csv",
    "profiles/*/config.yaml",
)
ENGINE_CONFIG = "profiles/default/config.yaml"
# Files of an out_dir that are about the run rather than its results, or that a fresh
# folder cannot have: earlier exports' snapshots.
NOT_RESULTS = ("logs/", "benchmarks/", "provenance.json", "audit/", "audit.zip", "refresh/history/")
FORMATS = {
    ".csv": "text/csv",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".lock": "text/plain",
    ".pdf": "application/pdf",
    ".py": "text/x-python",
    ".rst": "text/x-rst",
    ".smk": "text/x-snakemake",
    ".svg": "image/svg+xml",
    ".toml": "application/toml",
    ".yaml": "application/yaml",
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no clock in the archive
NOT_SHIPPED = (
    "Not in this crate: row-level patient data or an intermediate file of the run, named "
    "by its path in its folder and identified by its SHA-256."
)


# ---------------------------------------------------------------------------------------
# names


def crate_id(folder: str, path: str, shipped: set[str]) -> str:
    """The @id of a recorded file: its path in the crate if the crate holds it (results at
    the top, the workflow below workflow/), otherwise a local '#' identifier."""
    name = path if folder == "results" else f"{WORKFLOW_DIR}/{path}"
    if folder in ("results", "workflow") and name in shipped:
        return quote(name)
    if folder == "elsewhere":  # an absolute path: keep only the file's name
        path = PurePosixPath(path).name
    return f"#{folder}/{quote(path)}"


def slug(text: str) -> str:
    """A job's name as a fragment: 'bootstrap_shard (shard 1)' -> 'bootstrap_shard-shard-1'."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def rule_of(step: Mapping[str, Any]) -> str:
    """The rule of a job: sharded jobs are recorded as 'rule (shard k)'."""
    return step["rule"].split(" ", 1)[0]


def rule_files(workflow: Path) -> dict[str, str]:
    """Which rules/*.smk file defines each rule, so that a tool's @id points into it."""
    found = {}
    for path in sorted((workflow / "rules").glob("*.smk")):
        for name in re.findall(r"^rule (\w+):", path.read_text(encoding="utf-8"), re.M):
            found[name] = path.relative_to(workflow).as_posix()
    return found


def workflow_files(workflow: Path) -> list[str]:
    """The files of WORKFLOW_FILES that the workflow folder has, sorted."""
    found = {
        path.relative_to(workflow).as_posix()
        for pattern in WORKFLOW_FILES
        for path in workflow.glob(pattern)
        if path.is_file()
    }
    return sorted(found)


def step_positions(steps: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """A position per rule such that a rule reading another's output comes after it (what
    the profile asks of HowToStep.position): the longest chain of producers before it."""
    producer = {
        (record["folder"], record["path"]): rule_of(step)
        for step in steps
        for record in step["outputs"]
    }
    needs: dict[str, set[str]] = {}
    for step in steps:
        rule = rule_of(step)
        reads = {producer.get((r["folder"], r["path"])) for r in step["inputs"]}
        needs.setdefault(rule, set()).update(reads - {None, rule})
    positions: dict[str, int] = {}

    def position(rule: str) -> int:
        if rule not in positions:
            positions[rule] = 1 + max((position(other) for other in needs[rule]), default=-1)
        return positions[rule]

    return {rule: position(rule) for rule in needs}


def started(step: Mapping[str, Any]) -> str | None:
    """When a job started: its end less its wall time, both as recorded."""
    if not step.get("ended") or step.get("wall_seconds") is None:
        return None
    end = datetime.fromisoformat(step["ended"])
    return (end - timedelta(seconds=step["wall_seconds"])).isoformat()


def parameter_value(value: Any) -> str:
    """PropertyValue.value as text; lists and mappings as canonical JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def run_date(source_date_epoch: str | None, ended: str | None) -> str:
    """The crate's datePublished: the report's run date when pinned, else when the run ended."""
    if source_date_epoch:
        return datetime.fromtimestamp(int(source_date_epoch), tz=UTC).isoformat()
    return ended or datetime.now(tz=UTC).isoformat()


# ---------------------------------------------------------------------------------------
# building the crate


@dataclass(frozen=True)
class Shipped:
    """A file copied into the crate: where it comes from and its path in the crate."""

    source: Path
    name: str


def file_properties(name: str, digest: str, size: int | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"name": name, "sha256": digest}
    if size is not None:
        properties["contentSize"] = str(size)
    if fmt := FORMATS.get(PurePosixPath(name).suffix):
        properties["encodingFormat"] = fmt
    return properties


def build_crate(
    provenance: Mapping[str, Any],
    results: Sequence[Shipped],
    workflow: Path,
    source_date_epoch: str | None = None,
):
    """The crate of one run (an unwritten rocrate.ROCrate): `provenance` is provenance.json
    with the report's own job appended to its steps; `results` the shareable files."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    steps = provenance["steps"]
    software = provenance["software"]
    shipped_workflow = [
        Shipped(workflow / path, f"{WORKFLOW_DIR}/{path}") for path in workflow_files(workflow)
    ]
    shipped = {item.name for item in [*results, *shipped_workflow]}
    recorded = {
        crate_id(r["folder"], r["path"], shipped): r["sha256"]
        for step in steps
        for r in [*step["inputs"], *step["outputs"]]
    }
    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_contexts.append(WORKFLOW_RUN_CONTEXT)
    crate.metadata.extra_terms.update(EXTRA_TERMS)

    def entity(identifier: str, properties: dict[str, Any]) -> Any:
        return crate.add(ContextEntity(crate, identifier, properties=properties))

    def ship(item: Shipped) -> Any:
        identifier = quote(item.name)
        digest = recorded.get(identifier) or sha256(item.source)
        kind = ["File", "SoftwareSourceCode"] if item.name.endswith(".py") else "File"
        size = item.source.stat().st_size
        properties = {"@type": kind, **file_properties(item.name, digest, size)}
        return crate.add_file(item.source, dest_path=item.name, properties=properties)

    # the software: Python, the pinned packages, Snakemake (also the engine)
    python = entity(
        f"#python-{software['python']}",
        {"@type": "SoftwareApplication", "name": "Python", "version": software["python"]},
    )
    packages = [python] + [
        entity(
            f"https://pypi.org/project/{name}/{version}/",
            {"@type": "SoftwareApplication", "name": name, "version": version},
        )
        for name, version in sorted(software.items())
        if name != "python"
    ]
    engine = crate.get(f"https://pypi.org/project/snakemake/{software['snakemake']}/")

    # the workflow and the files of its folder
    snakefile = next(item for item in shipped_workflow if item.name.endswith("/Snakefile"))
    main = crate.add_workflow(
        snakefile.source,
        dest_path=snakefile.name,
        main=True,
        lang="snakemake",
        lang_version=software["snakemake"],
        properties={
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
            **file_properties(
                snakefile.name, sha256(snakefile.source), snakefile.source.stat().st_size
            ),
            "name": "siNET-BM",
        },
    )
    main["version"] = provenance["pipeline"]["commit"]
    main["softwareRequirements"] = packages
    files = {quote(snakefile.name): main}
    files |= {quote(item.name): ship(item) for item in shipped_workflow if item is not snakefile}
    files |= {quote(item.name): ship(item) for item in results}

    def file_of(record: Mapping[str, str]) -> Any:
        identifier = crate_id(record["folder"], record["path"], shipped)
        if identifier not in files:
            files[identifier] = entity(
                identifier,
                {"@type": "File", "description": NOT_SHIPPED}
                | file_properties(record["path"], record["sha256"]),
            )
        return files[identifier]

    # one tool and one HowToStep per rule, one CreateAction per job, a ControlAction per rule
    where = rule_files(workflow)
    positions = step_positions(steps)
    tools, how_to_steps, runs, controls = {}, {}, {}, {}
    for step in steps:
        rule = rule_of(step)
        if rule not in tools:
            script = files[quote(f"{WORKFLOW_DIR}/{step['script']}")]
            script["version"] = step["script_git_blob"]
            tools[rule] = entity(
                f"{WORKFLOW_DIR}/{where.get(rule, 'Snakefile')}#{rule}",
                {
                    "@type": "SoftwareApplication",
                    "name": rule,
                    "description": f"Snakemake rule {rule}, which runs {step['script']}",
                    "mainEntity": script,
                    "softwareRequirements": [script, *packages],
                },
            )
            how_to_steps[rule] = entity(
                f"#step-{rule}",
                {
                    "@type": "HowToStep",
                    "name": rule,
                    "position": str(positions[rule]),
                    "workExample": tools[rule],
                    "buildInstructions": files[quote(f"{WORKFLOW_DIR}/{step['conda_env']}")],
                },
            )
        job = slug(step["rule"])
        params = [
            entity(
                f"#{job}-param-{name}",
                {"@type": "PropertyValue", "name": name, "value": parameter_value(value)},
            )
            for name, value in sorted(step["params"].items())
        ]
        times = {"startTime": started(step), "endTime": step.get("ended")}
        runs.setdefault(rule, []).append(
            entity(
                f"#run-{job}",
                {
                    "@type": "CreateAction",
                    "name": f"Run of rule {step['rule']}",
                    "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"},
                    "instrument": tools[rule],
                    "object": [*map(file_of, step["inputs"]), *params],
                    "result": [file_of(record) for record in step["outputs"]],
                }
                | {key: value for key, value in times.items() if value},
            )
        )
    for rule in tools:
        controls[rule] = entity(
            f"#control-{rule}",
            {
                "@type": "ControlAction",
                "name": f"Orchestration of rule {rule}",
                "instrument": how_to_steps[rule],
                "object": runs[rule],
            },
        )
    main["hasPart"] = list(tools.values())
    main["step"] = list(how_to_steps.values())
    for env in sorted({step["conda_env"] for step in steps}):
        files[quote(f"{WORKFLOW_DIR}/{env}")]["conformsTo"] = {"@id": CONDA_ENV_FORMAT}
    entity(CONDA_ENV_FORMAT, {"@type": "WebPageElement", "name": "Conda environment file"})

    # the run of the whole workflow, and Snakemake's run that orchestrated it
    starts = [t for step in steps if (t := started(step))]
    ends = [step["ended"] for step in steps if step.get("ended")]
    exports = [
        file_of(record)
        for step in steps
        for record in step["inputs"]
        if record["folder"].startswith("exports")
    ]
    config = entity(
        "#workflow-config",
        {
            "@type": "PropertyValue",
            "name": "config",
            "description": "The run's configuration without the folders (config.yaml and "
            "any --config or --configfile values)",
            "value": parameter_value(provenance["config"]),
        },
    )
    # what the report's run date was pinned to, so that a rerun can pin it again
    environment = []
    if source_date_epoch:
        environment.append(
            entity(
                "#env-SOURCE_DATE_EPOCH",
                {"@type": "PropertyValue", "name": "SOURCE_DATE_EPOCH", "value": source_date_epoch},
            )
        )
    workflow_run = entity(
        "#run-workflow",
        {
            "@type": "CreateAction",
            "name": "Run of the siNET-BM workflow",
            "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"},
            "instrument": main,
            "object": [*dict.fromkeys(exports), config],
            "result": [files[quote(item.name)] for item in results],
        }
        | ({"environment": environment} if environment else {})
        | ({"startTime": min(starts)} if starts else {})
        | ({"endTime": max(ends)} if ends else {}),
    )
    entity(
        "#run-snakemake",
        {
            "@type": "OrganizeAction",
            "name": f"Run of Snakemake {software['snakemake']}",
            "instrument": engine,
            "object": [files[quote(f"{WORKFLOW_DIR}/{ENGINE_CONFIG}")], *controls.values()],
            "result": workflow_run,
        }
        | ({"startTime": min(starts)} if starts else {})
        | ({"endTime": max(ends)} if ends else {}),
    )

    root = crate.root_dataset
    root["name"] = "siNET-BM: one run of the study, for review"
    root["description"] = (
        "The workflow, the record of every job of one run (inputs, parameters, outputs with "
        "SHA-256, times, software) and the shareable results: the report, estimates, tables, "
        "figures and the validation summary. No row-level patient data."
    )
    root["datePublished"] = run_date(source_date_epoch, max(ends) if ends else None)
    root["mentions"] = [workflow_run]
    root["conformsTo"] = [
        entity(profile, {"@type": "CreativeWork", "name": name, "version": version})
        for profile, (name, version) in PROFILES.items()
    ]
    return crate


def write_crate(crate: Any, folder: Path, archive: Path) -> None:
    """The crate's folder, and the same files as a zip that is the same bytes for the same
    files: entries sorted, with fixed times and permissions."""
    shutil.rmtree(folder, ignore_errors=True)
    crate.write(folder)
    write_zip(folder, archive)


def write_zip(folder: Path, archive: Path) -> None:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in paths:
            entry = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            zipped.writestr(entry, path.read_bytes())


# ---------------------------------------------------------------------------------------
# verify


@dataclass(frozen=True)
class Listed:
    """A file a record lists: its name in the record, where it is now, its recorded hash."""

    name: str
    path: Path
    sha256: str


def is_crate(folder: Path) -> bool:
    return (folder / METADATA).is_file()


def crate_listing(folder: Path) -> tuple[list[Listed], int]:
    """The files of a crate with their recorded SHA-256, and how many more files the crate
    names by hash only ('#' identifiers: not in the crate)."""
    graph = json.loads((folder / METADATA).read_text(encoding="utf-8"))["@graph"]
    hashed = [item for item in graph if "sha256" in item]
    listed = [
        Listed(unquote(item["@id"]), folder / unquote(item["@id"]), item["sha256"])
        for item in hashed
        if not item["@id"].startswith("#")
    ]
    return sorted(listed, key=lambda item: item.name), len(hashed) - len(listed)


def provenance_listing(folder: Path, workflow: Path, raw_dir: Path | None) -> list[Listed]:
    """Every file provenance.json lists (inputs and outputs of every job), named as in the
    crate: results by their path, the workflow's below workflow/, the exports' below
    exports/."""
    provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    exports = {name: Path(place) for name, place in provenance["place"]["exports"].items()}
    roots = {"results": folder, "workflow": workflow, **exports}
    if raw_dir:
        roots["exports"] = raw_dir
    listed = {}
    for step in provenance["steps"]:
        for record in [*step["inputs"], *step["outputs"]]:
            folder_name, path = record["folder"], record["path"]
            name = path if folder_name == "results" else f"{folder_name}/{path}"
            where = roots[folder_name] / path if folder_name in roots else Path(path)
            listed[name] = Listed(name, where, record["sha256"])
    return sorted(listed.values(), key=lambda item: item.name)


def file_state(item: Listed) -> str | None:
    """None if the file has its recorded hash, else 'missing' or 'changed'."""
    if not item.path.is_file():
        return None if item.sha256 == "(missing)" else "missing"
    return None if sha256(item.path) == item.sha256 else "changed"


def verify(
    folder: Path, workflow: Path | None = None, raw_dir: Path | None = None
) -> tuple[list[str], int]:
    """One line per missing or changed file and a summary, and how many files failed."""
    folder = Path(folder)
    if is_crate(folder):
        listed, unshipped = crate_listing(folder)
        source = f"{METADATA} of the crate"
    elif (folder / "provenance.json").is_file():
        listed = provenance_listing(folder, workflow or default_workflow(), raw_dir)
        unshipped, source = 0, "provenance.json"
    else:
        return [f"{folder}: neither an out_dir (provenance.json) nor a crate ({METADATA})"], 1
    lines = []
    for item in listed:
        if state := file_state(item):
            lines.append(f"{state:8} {item.name}")
    failed = len(lines)
    summary = (
        f"{failed} of {len(listed)} files listed in {source} are missing or changed"
        if failed
        else f"all {len(listed)} files listed in {source} have their recorded SHA-256"
    )
    if unshipped:
        summary += f"; {unshipped} more are named by hash only (not in the crate)"
    return [*lines, summary], failed


def default_workflow() -> Path:
    """The workflow folder of an out_dir's files: the current folder if it is a checkout
    of this workflow, else the checkout this package is installed from."""
    here = Path.cwd()
    if (here / "Snakefile").is_file():
        return here
    return Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# reproduce


def result_files(folder: Path) -> list[str]:
    """The result files of a crate (the files it lists, but the workflow), or of an out_dir
    (every file but NOT_RESULTS), as paths relative to it."""
    if is_crate(folder):
        listed = crate_listing(folder)[0]
        return [item.name for item in listed if not item.name.startswith(f"{WORKFLOW_DIR}/")]
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(name for name in names if not name.startswith(NOT_RESULTS))


def crate_metadata(folder: Path) -> dict[str, dict]:
    """The crate of a crate folder or of an out_dir, by @id ({} if there is none)."""
    for crate in (folder, folder / "audit"):
        if is_crate(crate):
            graph = json.loads((crate / METADATA).read_text(encoding="utf-8"))["@graph"]
            return {item["@id"]: item for item in graph}
    return {}


def recorded_run(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The analysis config of a run (without its folders) and the SOURCE_DATE_EPOCH its
    report was made with, if it was pinned."""
    crate = crate_metadata(folder)
    epoch = crate.get("#env-SOURCE_DATE_EPOCH", {}).get("value")
    if (folder / "provenance.json").is_file():
        provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
        return provenance["config"], epoch
    return json.loads(crate["#workflow-config"]["value"]), epoch


def copy_workflow(source: Path, target: Path, from_crate: bool) -> None:
    names = (
        [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
        if from_crate
        else workflow_files(source)
    )
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)


def compare(original: Path, rerun: Path, names: Sequence[str]) -> list[str]:
    """One line per result file that differs from the rerun's or that the rerun lacks."""
    lines = []
    for name in names:
        again = rerun / name
        if not again.is_file():
            lines.append(f"missing  {name}")
        elif again.read_bytes() != (original / name).read_bytes():
            lines.append(f"differs  {name}")
    return lines


def reproduce(
    folder: Path,
    raw_dir: Path,
    cores: int = 2,
    workflow: Path | None = None,
    keep: bool = False,
) -> tuple[list[str], int]:
    """Rerun the study on `raw_dir` with the recorded config into a temporary folder, with
    the crate's copy of the workflow (or, for an out_dir, `workflow`), and compare every
    result file byte for byte. Returns report lines and how many files differ."""
    folder, raw_dir = Path(folder).resolve(), Path(raw_dir).resolve()
    from_crate = is_crate(folder)
    source = folder / WORKFLOW_DIR if from_crate else (workflow or default_workflow())
    config, epoch = recorded_run(folder)
    scratch = Path(tempfile.mkdtemp(prefix="sinet-bm-reproduce-"))
    began = time.monotonic()
    try:
        code = scratch / "workflow"
        copy_workflow(source, code, from_crate)
        out_dir = scratch / "out"
        settings = scratch / "config.json"  # JSON is YAML; a file keeps odd folder names intact
        settings.write_text(json.dumps(config | {"raw_dir": str(raw_dir), "out_dir": str(out_dir)}))
        environment = {**os.environ, "PYTHONPATH": str(code)}
        environment.pop("SOURCE_DATE_EPOCH", None)
        if epoch:
            environment["SOURCE_DATE_EPOCH"] = epoch
        run = subprocess.run(
            [snakemake_command(), "--cores", str(cores), "--configfile", str(settings)],
            cwd=code,
            env=environment,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - began
        if run.returncode != 0:
            return [run.stderr[-3000:], f"the rerun failed (exit {run.returncode})"], 1
        rerun = out_dir / "audit" if from_crate else out_dir
        names = result_files(folder)
        lines = compare(folder, rerun, names)
        lines.append(
            f"{len(names) - len(lines)} of {len(names)} result files are byte-identical to "
            f"the rerun's ({seconds:.0f} s, {cores} cores"
            + (f"; kept in {scratch})" if keep else ")")
        )
        return lines, len(lines) - 1
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def snakemake_command() -> str:
    """The Snakemake of this environment."""
    beside = Path(sys.executable).parent / "snakemake"
    return str(beside) if beside.is_file() else "snakemake"
