import ast
import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import tempfile
import threading
from functools import cache
from pathlib import Path

from snakemake.io import apply_wildcards
from snakemake.iocontainers import Wildcards
from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")

PACKAGE = Path("sinet_bm")
SYNTHETIC_DIR = Path("resources/synthetic")
OUT = Path(config["out_dir"])
# Not steps of the audit record: the target, the rules that write the record (the report
# and the audit crate), and simulate, which makes the exports (recorded by name and hash
# like anyone's exports).
NOT_AUDITED = {"all", "report", "audit_crate", "simulate"}


# ---------------------------------------------------------------------------------------
# Facts read from the package's source without importing it (importing pandas would cost
# every Snakemake start half a second): constants, and which modules a script runs.
# Parsing the files costs a start another tenth of a second, so what is read from each file
# is kept in Snakemake's folder under the hash of the file's text, and a file is parsed
# again only when its text has changed.

SOURCE_FACTS = Path(".snakemake/sinet_bm/source_facts.json")


def module_path(name):
    return f"{PACKAGE}/{name}.py"


def statements(body):
    """Every statement of a block, nested ones included. Imports are statements, so these
    are all that need looking at (ast.walk would visit every expression too)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from statements(getattr(node, field, ()))


def imports_of(tree):
    """Modules of the package that a module imports, anywhere in it."""
    found = set()
    for node in statements(tree.body):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE.name:
                found |= {alias.name for alias in node.names}
            elif node.module.startswith(f"{PACKAGE.name}."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith(f"{PACKAGE.name}.")
            }
    return sorted(found)


def literal_or_none(node):
    """The text of a literal value (for ast.literal_eval), None for anything else."""
    try:
        return repr(ast.literal_eval(node))
    except (ValueError, TypeError):
        return None


def constants_of(tree):
    """The module's top-level assignments to a name: name -> literal text or None (the
    first assignment, as Python would have it before the module reassigns it)."""
    assigned = [
        (target.id, node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    return {name: literal_or_none(value) for name, value in reversed(assigned)}


# Bumped whenever what source_facts keeps changes, so that older records are not read.
SOURCE_FACTS_VERSION = 1


@cache
def kept_facts():
    """path -> facts, as the previous start left them (nothing if unreadable)."""
    try:
        kept = json.loads(SOURCE_FACTS.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict) or kept.get("version") != SOURCE_FACTS_VERSION:
        return {}
    return kept["files"]


def keep_facts(files):
    """Written whole and then renamed, so that a concurrent start never reads half a file."""
    SOURCE_FACTS.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=SOURCE_FACTS.parent, suffix=".partial")
    with os.fdopen(handle, "w") as stream:
        json.dump(
            {"version": SOURCE_FACTS_VERSION, "files": files}, stream, sort_keys=True
        )
    os.replace(partial, SOURCE_FACTS)


@cache
def source_facts(path):
    """A source file's package imports and top-level constants, parsed only if the file's
    text is not the one they were last read from."""
    text = Path(path).read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    kept = kept_facts().get(path)
    if isinstance(kept, dict) and kept.get("sha256") == digest:
        return kept
    tree = ast.parse(text, filename=path)
    facts = {
        "sha256": digest,
        "imports": imports_of(tree),
        "constants": constants_of(tree),
    }
    kept_facts()[path] = facts
    with contextlib.suppress(OSError):  # a read-only folder: parsed at every start
        keep_facts(kept_facts())
    return facts


def package_constant(part, name):
    """A literal constant of a package module (contract.TABLES, figures.FIGURES, ...)."""
    path = module_path(part)
    constants = source_facts(path)["constants"]
    if name not in constants:
        return None
    if constants[name] is None:
        raise ValueError(
            f"{path}: {name} is not a literal, which the workflow must read"
        )
    return ast.literal_eval(constants[name])


def package_imports(path):
    return set(source_facts(path)["imports"])


@cache
def package_code(script):
    """Every package module a script runs (its imports, followed through the package) and
    the files those modules read (their `USES`): as inputs, so that editing any of them
    reruns the steps that run it, and only those."""
    seen, todo = set(), package_imports(f"scripts/{script}.py")
    while todo:
        part = todo.pop()
        seen.add(part)
        todo |= package_imports(module_path(part)) - seen
    files = [module_path(part) for part in ["__init__", *sorted(seen)]]
    uses = {path for part in seen for path in package_constant(part, "USES") or ()}
    return files + sorted(uses)


TABLES = package_constant("contract", "TABLES")
FIGURES = package_constant("figures", "FIGURES")
POOLED_FIGURES = package_constant("figures", "POOLED_FIGURES")
# Replicate work split into jobs by the {shard} wildcard: rule -> number of shards.
SHARDS = {
    "bootstrap_shard": config["bootstrap"]["shards"],
    "bias_check_shard": config["sensitivity"]["bias_check"]["shards"],
}


# ---------------------------------------------------------------------------------------
# paths


def check_out_dir(out_dir, raw_dir):
    """Results may not land among the exports or the workflow's own files; folder names
    may not hold Snakemake's path variables (<name>)."""
    for key, folder in (("out_dir", out_dir), ("raw_dir", raw_dir)):
        variable = folder and re.search(r"<[a-z][a-z0-9_]*>", str(folder))
        if variable:
            raise ValueError(
                f"{key} {folder} contains {variable.group(0)}, which Snakemake reads as a "
                "path variable; rename the folder"
            )
    out_dir, here = out_dir.resolve(), Path.cwd().resolve()
    if out_dir == here or out_dir in here.parents:
        raise ValueError(
            f"out_dir {out_dir} would put results among the workflow's files; "
            "choose a folder of its own (default: results)"
        )
    if raw_dir is not None:
        raw_dir = raw_dir.resolve()
        if (
            out_dir == raw_dir
            or raw_dir in out_dir.parents
            or out_dir in raw_dir.parents
        ):
            raise ValueError(
                f"out_dir {out_dir} and raw_dir {raw_dir} overlap; results and exports "
                "must live in separate folders so that no export is ever overwritten"
            )


# ---------------------------------------------------------------------------------------
# one centre, several centres, or a coordinator pooling centres' bundles

CENTRES = config["centres"]
BUNDLES = config["bundles"]
CENTRE_DIR = OUT / "centres"
DIALECT_KEYS = ("raw_format", "columns", "values", "ignore_columns")


def check_exports(out_dir):
    """Every export folder exists and lies apart from out_dir; the config's modes exclude
    each other. Said before any job runs, naming the centre and the key."""
    if CENTRES and config["raw_dir"]:
        raise ValueError(
            "raw_dir and centres are both set: with several centres each centre's folder is "
            "centres.<centre>.raw_dir; leave raw_dir empty"
        )
    if BUNDLES and (CENTRES or config["raw_dir"]):
        raise ValueError(
            "bundles is a coordinator's run over the centres' bundle.json files: leave "
            "raw_dir and centres empty"
        )
    for name, settings in CENTRES.items():
        folder = Path(settings["raw_dir"])
        if not folder.is_dir():
            raise ValueError(f"centres.{name}.raw_dir: {folder} is not a folder")
        check_out_dir(out_dir, folder)
    for path in BUNDLES:
        if not Path(path).is_file():
            raise ValueError(f"bundles: {path} is not a file")
    if not CENTRES and not BUNDLES:
        check_out_dir(out_dir, Path(config["raw_dir"]) if config["raw_dir"] else None)


def duplicate_centres(paths):
    """A centre named twice in one config file: YAML would keep the last silently."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    found = []

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(key) for key, _ in node.value]
        found.extend(sorted({key for key in keys if keys.count(key) > 1}))
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for path in paths:
        document = yaml.load(Path(path).read_text(), Loader=Loader) or {}
        found = [key for key in found if key in (document.get("centres") or {})]
        if found:
            raise ValueError(
                f"{path}: centre {found[0]!r} is listed twice under centres"
            )


def check_bundles():
    """A coordinator's bundles are read before any job runs: a malformed one, one of
    another version, two of one centre or other definitions stop the run, naming the file.
    """
    if not BUNDLES:
        return
    from sinet_bm.bundle import BundleError, read_bundles

    try:
        read_bundles(BUNDLES)
    except BundleError as error:
        raise ValueError(str(error)) from None


duplicate_centres(workflow.configfiles)
check_exports(OUT)
check_bundles()

# Each analysed cohort has a folder of results, its root: the one centre in out_dir; with
# several centres, each centre in centres/<centre>/ and all of them together in out_dir.
# Data roots are those analysed from their own exports.
DATA_ROOTS = [str(CENTRE_DIR / name) for name in CENTRES] or (
    [] if BUNDLES else [str(OUT)]
)
ROOTS = ([str(OUT)] if CENTRES else []) + DATA_ROOTS
# out_dir's role: the union of the centres' rows; their pooled rows (from bundles, this
# run's or the centres'); a coordinator's run, which has the pooled rows only.
UNION_ROOTS = [str(OUT)] if CENTRES else []
POOLED_ROOTS = [str(OUT)] if CENTRES or BUNDLES else []
COORDINATOR_ROOTS = [str(OUT)] if BUNDLES else []


def alternatives(roots):
    """A wildcard regex matching exactly these roots (none: matching nothing)."""
    return "|".join(re.escape(root) for root in roots) or "(?!)"


wildcard_constraints:
    root=alternatives(ROOTS),
    shard=r"\d+",


def out(path):
    """A path below out_dir."""
    return str(OUT / path)


def at_root(path):
    """A path below the results folder of the cohort a job analyses."""
    return f"{{root}}/{path}"


def log(name):
    return at_root(f"logs/{name}.log")


def bench(name):
    return at_root(f"benchmarks/{name}.tsv")


def centre_of(root):
    """The centre a root belongs to ('' for the single centre of out_dir)."""
    path = Path(root)
    return path.name if path.parent == CENTRE_DIR else ""


def export_settings(root):
    """Folder and dialect of a data root's exports: a centre's own keys, else the config's."""
    centre = CENTRES.get(centre_of(root), {})
    folder = centre.get("raw_dir") or config["raw_dir"]
    settings = {key: centre.get(key, config[key]) for key in DIALECT_KEYS}
    return {"raw_dir": str(Path(folder)) if folder else str(SYNTHETIC_DIR)} | settings


def export_folders():
    """The folders a run reads from, by the name provenance gives them."""
    if BUNDLES:
        return {
            f"bundles/{number}": str(Path(path).parent)
            for number, path in enumerate(BUNDLES, start=1)
        }
    return {
        f"exports/{centre_of(root)}" if centre_of(root) else "exports": export_settings(
            root
        )["raw_dir"]
        for root in DATA_ROOTS
    }


def centre_files(path):
    """A file of every centre's results."""
    return [str(CENTRE_DIR / name / path) for name in CENTRES]


def centre_bundles():
    """The bundles the pooled rows are computed from: the centres' of this run, or those
    sent to the coordinator."""
    return list(BUNDLES) or centre_files("share/bundle.json")


def export_setting(key):
    return lambda wildcards: export_settings(wildcards.root)[key]


def raw_exports(wildcards):
    """The export files validation reads; missing ones are reported by validation itself."""
    folder = Path(export_settings(wildcards.root)["raw_dir"])
    if folder == SYNTHETIC_DIR:
        return {f"{table}_csv": str(SYNTHETIC_DIR / f"{table}.csv") for table in TABLES}
    found = {}
    for table in TABLES:
        for extension in ("csv", "xlsx"):
            path = folder / f"{table}.{extension}"
            if path.is_file():
                found[f"{table}_{extension}"] = str(path)
    return found


def all_export_files():
    return [
        path
        for root in DATA_ROOTS
        for path in raw_exports(Wildcards(fromdict={"root": root})).values()
    ]


def shards(rule_name):
    return list(range(1, SHARDS[rule_name] + 1))


def sensitivity_settings():
    """Section 4's settings without the bias check, which has rules of its own."""
    return {
        key: value
        for key, value in config["sensitivity"].items()
        if key != "bias_check"
    }


def bootstrap_settings():
    """What one resample needs; the number of shards only says who computes which."""
    settings = {key: config["bootstrap"][key] for key in ("replicates", "seed")}
    return settings | {
        "rmst_horizon_months": config["sensitivity"]["rmst_horizon_months"]
    }


def synthetic_design():
    """The simulator's settings without its seed (each use has its own seed)."""
    return {key: value for key, value in config["synthetic"].items() if key != "seed"}


def figure_outputs():
    """The figures, each registered for Snakemake's report with its caption and category."""
    return {
        name: report(
            at_root(f"figures/{name}.svg"),
            caption=f"../report/{name}.rst",
            category=category,
        )
        for name, category in FIGURES.items()
    }


def pooled_figure_outputs():
    return {
        name: report(
            at_root(f"figures/{name}.svg"),
            caption="../report/pooled.rst",
            category="Several centres",
        )
        for name in POOLED_FIGURES
    }


def consortium_inputs():
    """What the report shows of several centres (nothing for one centre)."""
    if not POOLED_ROOTS:
        return {}
    return {
        "pooled": out("estimates/pooled.csv"),
        "pooled_inputs": out("tables/pooled_inputs.csv"),
        "centres": out("tables/centres.csv"),
        "left_out": out("tables/pooled_left_out.csv"),
        "pooled_figures": [out(f"figures/{name}.svg") for name in POOLED_FIGURES],
    }


def estimate_parts(wildcards):
    """The parts of a cohort's estimates.csv; the union's has the pooled rows too."""
    parts = [
        f"{wildcards.root}/estimates/{part}.csv"
        for part in ("cohort", "survival", "sensitivity")
    ]
    return parts + (
        [f"{wildcards.root}/estimates/pooled.csv"]
        if wildcards.root in UNION_ROOTS
        else []
    )


# ---------------------------------------------------------------------------------------
# Resources. Peak memory and wall time of every rule were measured (benchmark files) on
# exports of 0.5, 4.8, 49 and 501 MB (the default cohort and 10^4 to 10^6 patients); memory
# grows about linearly with the export's size. Each rule asks for a measured base plus
# a slope per MB of export, with 20-50% headroom, and three times the measured time.


def export_mb():
    """Size of the raw exports (of all centres), the one measure that memory and time scale
    with. Files not written yet (the synthetic cohort before simulate) count as small.
    """
    paths = map(Path, all_export_files())
    return sum(path.stat().st_size for path in paths if path.is_file()) / 1e6


def arrow_threads(wildcards):
    """Threads of a step whose work is mostly Arrow's (reading the exports' CSV, reading and
    writing parquet): Snakemake gives a job OMP_NUM_THREADS=threads, and Arrow's pool takes
    that many threads. On 2 cores two threads make validation and derivation of 10^6
    patients 1 s faster each, and nothing else can run then (everything else needs their
    output, except the bias check); on a small export one thread is as fast, and the other
    core is left to the bias check."""
    return 2 if export_mb() >= 20 else 1


def memory(base_mb, per_export_mb=0.0):
    return lambda wildcards: math.ceil(base_mb + per_export_mb * export_mb())


def minutes(base=2, per_export_mb=0.01):
    """Slurm's time limit in minutes: 7 at 10^6 patients, where the slowest step takes 31 s."""
    return lambda wildcards: math.ceil(base + per_export_mb * export_mb())


def per_shard(replicates, shards):
    return math.ceil(replicates / shards)


def bootstrap_minutes(wildcards):
    """A resample of a 500 MB export (666,000 stage IV patients) takes 3.3 s, of the
    default cohort 4 ms; three times that for the shard's share of them."""
    resamples = per_shard(
        config["bootstrap"]["replicates"], config["bootstrap"]["shards"]
    )
    return math.ceil(2 + 3 * resamples * (0.004 + 0.0066 * export_mb()) / 60)


def bias_check_minutes(wildcards):
    """A simulated cohort of 458 patients takes 0.2 s; time grows with its size."""
    check = config["sensitivity"]["bias_check"]
    cohorts = per_shard(check["replicates"], check["shards"])
    return math.ceil(2 + 3 * cohorts * check["n_eligible"] * 0.0005 / 60)


# ---------------------------------------------------------------------------------------
# the study's outputs, and the audit record of the jobs that made them


def final_outputs():
    if BUNDLES:
        return [
            out("estimates.csv"),
            out("tables/centres.csv"),
            out("provenance.json"),
            out("report/report.html"),
            out("report/report.pdf"),
        ]
    study = [
        out("estimates.csv"),
        out("tables/table1.csv"),
        out("tables/flow.csv"),
        out("tables/immortal_time_bias.csv"),
        *expand(out("figures/{figure}.svg"), figure=FIGURES),
        out("provenance.json"),
        out("report/report.html"),
        out("report/report.pdf"),
        out("audit"),
        out("audit.zip"),
    ]
    return study + expand("{root}/share/bundle.json", root=DATA_ROOTS)


# Which cohorts each step runs on: those that read exports on the data roots, the union
# and pooling steps on out_dir, the figures and the report on out_dir, the rest (the study's
# own steps) on every root with a study.
STEP_ROOTS = {
    "validate_exports": DATA_ROOTS,
    "derive_endpoints": DATA_ROOTS,
    "share_bundle": DATA_ROOTS,
    "combine_centres": UNION_ROOTS,
    "pool_centres": POOLED_ROOTS,
    "plot_pooled": POOLED_ROOTS,
    "collect_pooled": COORDINATOR_ROOTS,
    "report_pooled": COORDINATOR_ROOTS,
    "plot_figures": ROOTS[:1],
    "report": ROOTS[:1],
    "audit_crate": ROOTS[:1],
}


def audited_steps():
    """The rules whose every run the audit appendix describes."""
    return [step for step in workflow.rules if step.name not in NOT_AUDITED]


def step_jobs(step):
    """(name, wildcards) of each job of a step: one per cohort root, and per shard. A step
    without a root (the bias check) runs once where there is a study."""
    roots = STEP_ROOTS.get(step.name, ROOTS)
    if "root" in step.wildcard_names:
        roots = [{"root": root} for root in roots]
    else:
        roots = [{}] if roots else []
    named = [
        (step.name if len(roots) < 2 else f"{step.name} ({root_name(r['root'])})", r)
        for r in roots
    ]
    if step.name not in SHARDS:
        return named
    return [
        (f"{name} (shard {k})", wildcards | {"shard": k})
        for name, wildcards in named
        for k in shards(step.name)
    ]


def root_name(root):
    return centre_of(root) or "all centres"


def job_paths(paths, wildcards):
    return [apply_wildcards(str(path), wildcards) for path in paths]


def analysis_outputs():
    return [
        path
        for step in audited_steps()
        for _, wildcards in step_jobs(step)
        for path in job_paths(step.output, wildcards)
    ]


def step_inputs(step, wildcards):
    """Input paths, with input functions called as Snakemake would."""
    paths = []
    for item in step.input:
        if callable(item) or item.is_callable():
            function = (
                item
                if callable(item)
                else getattr(item._file, "callable", None) or item._file
            )
            found = function(Wildcards(fromdict=wildcards))
            paths += list(found.values()) if isinstance(found, dict) else list(found)
        else:
            paths.append(str(item))
    return paths


def step_params(step, wildcards):
    """The job's params; those computed from the wildcards (a centre's dialect) are
    evaluated, those computed from the outputs are folders, which the record leaves out.
    """
    values = {}
    for name in step.params._names:
        value = getattr(step.params, name)
        if not callable(value):
            values[name] = value
        elif len(inspect.signature(value).parameters) == 1:
            values[name] = value(Wildcards(fromdict=wildcards))
    return values


def job_manifest(step, wildcards):
    """What a job reads, writes, is told and runs."""
    return {
        "inputs": job_paths(step_inputs(step, wildcards), wildcards),
        "outputs": job_paths(step.output, wildcards),
        "logs": job_paths(step.log, wildcards),
        "benchmark": (
            job_paths([step.benchmark], wildcards)[0] if step.benchmark else None
        ),
        "params": step_params(step, wildcards),
        "script": os.path.normpath(os.path.join("rules", step.script)),
        "conda_env": os.path.normpath(os.path.join("rules", str(step.conda_env))),
    }


def rule_manifest():
    """Every audited job, for provenance.json."""
    return {
        name: job_manifest(step, wildcards)
        for step in audited_steps()
        for name, wildcards in step_jobs(step)
    }


def report_manifest():
    """The report's job, for the audit crate: provenance.json, which the report writes,
    cannot hold it. Its params are left out: they are the config, which the crate records
    once, and the folders, which it does not record."""
    step = workflow.get_rule("report")
    return {
        name: job_manifest(step, wildcards) | {"params": {}}
        for name, wildcards in step_jobs(step)
    }


def workflow_files():
    """The workflow's own files, which the audit crate copies (sinet_bm.audit)."""
    patterns = package_constant("audit", "WORKFLOW_FILES")
    found = {str(path) for pattern in patterns for path in Path().glob(pattern)}
    return sorted(path for path in found if Path(path).is_file())


def start_message():
    if CENTRES:
        source = f"{len(CENTRES)} centres ({', '.join(CENTRES)})"
    elif BUNDLES:
        source = f"the bundles of {len(BUNDLES)} centres"
    else:
        source = config["raw_dir"] or f"the built-in SYNTHETIC cohort ({SYNTHETIC_DIR})"
    return f"siNET-BM: analysing {source}; results in {OUT}/"


def file_refresh_snapshot():
    """After a successful run: file this export's snapshot for the next run's changelog."""
    from sinet_bm.refresh import file_snapshot

    if BUNDLES:  # a coordinator has no export to compare with the next
        return
    file_snapshot(out("refresh/snapshot.json"), out("refresh/history"))


def cancel_rescheduling():
    """Snakemake's scheduler starts a one-second threading.Timer after every round of job
    selection (its --max-jobs-per-timespan check), and Python waits for the last one before
    it exits: up to a second of every run. Once the run has ended nothing listens to them.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def remove_stale_results():
    """A failed run must not leave results that could pass for this run's."""
    removed = []
    for step in workflow.rules:
        if step.name == "simulate":
            continue
        for name, wildcards in step_jobs(step):
            for path in map(Path, job_paths(step.output, wildcards)):
                if path.is_dir():  # the audit crate
                    shutil.rmtree(path)
                    removed.append(str(path))
                elif path.is_file():
                    path.unlink()
                    removed.append(str(path))
    if removed:
        print(
            f"siNET-BM: the run failed; removed {len(removed)} earlier result file(s) "
            f"so that none of them can be mistaken for this run's. Findings of validation, "
            f"if any, are in {out('validation/issues.csv')}."
        )
