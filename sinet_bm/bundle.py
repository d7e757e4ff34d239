"""What may leave a centre: the aggregates a consortium needs to pool the study, and no more.

A bundle (`share/bundle.json`) holds, for one centre, the estimates the pooled rows combine
(hazard ratios with their intervals, the counts of three proportions), the BM group's
log-rank O, E and V, the two 2×2 tables of the Fisher tests, and a life table of overall
survival by BM on a fixed grid; with the centre's name, the pipeline's version, the section 2
definitions and the exports' SHA-256. It holds no row, no patient id, no patient's date and
no text from an export. With `privacy.min_cell_count` = k > 0 no count from 1 to k - 1
leaves: a quantity built on such a count is withheld and listed as withheld, and the life
table's intervals are merged (and its tail cut) until no such count remains.

The same code reads bundles back for pooling, so a consortium run over several centres'
rows and a coordinator's run over their bundles compute the pooled rows alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sinet_bm.cohort import two_by_two
from sinet_bm.endpoints import populations
from sinet_bm.pooling import LifeTable, LogrankContribution, life_table_counts, logrank_contribution

FORMAT = "sinet-bm bundle"
VERSION = 1
SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "bundle.schema.json"
TEMPLATES = Path(__file__).parent / "templates"
# Files this module reads: steps that use it rerun when one of them changes.
USES = (
    "schemas/bundle.schema.json",
    "sinet_bm/templates/bundle.html",
    "sinet_bm/templates/page.css",
)
# The estimates whose pooling the bundle feeds: hazard ratios (with their Wald intervals)
# and proportions (as counts x of m).
HAZARD_RATIOS = ("hr_os_bm_crude", "hr_os_bm_adjusted", "hr_os_bm_timedep")
PROPORTIONS = {
    "prop_bm": ("n_bm", "n_stage_iv", "stage IV patients with BM"),
    "prop_sstr_only": ("n_sstr_only", "n_bm", "BM patients whose BM were SSTR-only at first"),
    "prop_sre": ("n_sre", "n_bm", "BM patients with a skeletal-related event"),
}
TABLES = {
    "test_functioning_bm": "functioning tumours by BM (stage IV)",
    "test_sre_antiresorptive": "SREs by antiresorptive therapy (BM patients)",
}
# Section 1's canonical dialect (ingest.ExportFormat's defaults; ingest is not imported
# here, pandera would cost the step a second).
CANONICAL_FORMAT = {
    "delimiter": ",",
    "decimal": ".",
    "encoding": "utf-8",
    "date_format": "%Y-%m-%d",
}
GROUPS = {"bm": "stage IV with BM", "no_bm": "stage IV without BM"}


class BundleError(ValueError):
    """A bundle that cannot be pooled, with the file and what is wrong with it."""


# ---------------------------------------------------------------------------------------
# a centre's bundle


def counts(endpoints: pd.DataFrame) -> dict[str, int]:
    """The patient counts the pooled rows need, from the centre's endpoints."""
    pop = populations(endpoints)
    bm = pop["bm"]
    return {
        "n_eligible": len(pop["all"]),
        "n_stage_iv": len(pop["stage_iv"]),
        "n_bm": len(bm),
        "n_sstr_only": int(bm["sstr_only"].sum()),
        "n_sre": int(bm["sre"].sum()),
        "n_deaths": int(pop["all"]["dead"].sum()),
    }


def hazard_ratio(estimates: pd.DataFrame, estimate: str) -> dict[str, Any]:
    """An estimate of estimates.csv as the bundle carries it: HR, CI and n, or the reason
    it has none."""
    row = estimates.loc[estimate]
    if pd.isna(row["value"]):
        return {"n": int(row["n"]), "missing": str(row["method"])}
    return {
        "n": int(row["n"]),
        "hr": float(row["value"]),
        "ci": [float(row["ci_lower"]), float(row["ci_upper"])],
    }


def life_table_record(table: LifeTable) -> dict[str, Any]:
    starts = [float(start) for start in table.starts]
    return {
        "starts": starts,
        "ends": [start + table.width for start in starts],
        "width": table.width,
        "at_risk": table.at_risk.astype(int).tolist(),
        "deaths": table.deaths.astype(int).tolist(),
        "censored": table.censored.astype(int).tolist(),
    }


def build_bundle(
    endpoints: pd.DataFrame,
    estimates: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    centre: str,
    source: str,
    definitions: Mapping[str, Any],
    level: float,
    life_table_months: float,
    horizon_months: float,
    pipeline: Mapping[str, Any],
) -> dict[str, Any]:
    """Every aggregate the pooled rows need, before disclosure control."""
    by_id = estimates.set_index("estimate")
    pop = populations(endpoints)
    stage_iv, bm = pop["stage_iv"], pop["bm"]
    n = counts(endpoints)
    contribution = logrank_contribution(
        stage_iv["os_months"].to_numpy(float),
        stage_iv["dead"].to_numpy(bool),
        stage_iv["bm"].to_numpy(bool),
    )
    groups = {"bm": stage_iv[stage_iv["bm"]], "no_bm": stage_iv[~stage_iv["bm"]]}
    return {
        "format": FORMAT,
        "version": VERSION,
        "centre": centre,
        "source": source,
        "pipeline": dict(pipeline),
        "definitions": dict(definitions),
        "confidence_level": level,
        "exports": {table: record["sha256"] for table, record in summary["files"].items()},
        "synthetic": bool(summary["synthetic"]),
        "counts": n,
        "median_followup_months": float(by_id.loc["median_followup_months", "value"]),
        "hazard_ratios": {name: hazard_ratio(by_id, name) for name in HAZARD_RATIOS},
        "proportions": {name: {"x": n[x], "m": n[m]} for name, (x, m, _) in PROPORTIONS.items()},
        "logrank": {
            "n": n["n_stage_iv"],
            "observed": contribution.observed,
            "expected": contribution.expected,
            "variance": contribution.variance,
        },
        "tables": {
            "test_functioning_bm": two_by_two(stage_iv["bm"], stage_iv["functioning"]).tolist(),
            "test_sre_antiresorptive": two_by_two(bm["antiresorptive"], bm["sre"]).tolist(),
        },
        "life_tables": {
            name: {"n": len(group)}
            | life_table_record(
                life_table_counts(
                    group["os_months"].to_numpy(float),
                    group["dead"].to_numpy(bool),
                    life_table_months,
                    horizon_months,
                )
            )
            for name, group in groups.items()
        },
        "withheld": [],
    }


def export_source(
    files: Sequence[str],
    raw_format: Mapping[str, Any],
    columns: Mapping[str, Mapping[str, str]],
    values: Mapping[str, Mapping[str, Any]],
) -> str:
    """The export's files and dialect in words, from the centre's declaration (never from
    the export's content): the coordinator's table of centres shows it."""
    parts = [
        f"{key} {raw_format[key]!r}"
        for key, canonical in CANONICAL_FORMAT.items()
        if raw_format.get(key) not in (None, canonical)
    ]
    if renamed := sum(len(names) for names in columns.values()):
        parts.append(f"{renamed} columns renamed")
    if mapped := sum(len(names) for names in values.values()):
        parts.append(f"values mapped in {mapped} columns")
    return ", ".join(sorted(files)) + (f" ({'; '.join(parts)})" if parts else " (canonical)")


# ---------------------------------------------------------------------------------------
# disclosure control


def small(count: float, k: int) -> bool:
    """A count that would single out fewer than k patients (0 singles out no one)."""
    return 0 < count < k


def merge_life_table(record: Mapping[str, Any], k: int) -> tuple[dict[str, Any], str]:
    """The life table with adjacent intervals merged until each has no deaths or at least
    k, and no censorings or at least k, and its tail cut where fewer than k are at risk;
    with what was done, in words. An empty record: nothing of it may leave."""
    width, n = record["width"], record["n"]
    starts, at_risk = record["starts"], record["at_risk"]
    deaths, censored = record["deaths"], record["censored"]
    if small(n, k):
        return {}, f"a group of fewer than {k} patients"
    end = len(starts)
    while end and small(at_risk[end - 1], k):
        end -= 1

    def too_few(group: list[int]) -> bool:
        return any(small(sum(column[j] for j in group), k) for column in (deaths, censored))

    groups: list[list[int]] = []  # intervals merged together
    for i in range(end):
        if groups and too_few(groups[-1]):
            groups[-1].append(i)
        else:
            groups.append([i])
    while len(groups) > 1 and too_few(groups[-1]):
        last = groups.pop()  # the last group folds into the one before
        groups[-1] += last
    if not groups or too_few(groups[0]):
        return {}, f"fewer than {k} deaths or censorings however the intervals are merged"
    merged = {
        "n": n,
        "width": width,
        "starts": [starts[group[0]] for group in groups],
        "ends": [starts[group[-1]] + width for group in groups],
        "at_risk": [at_risk[group[0]] for group in groups],
        "deaths": [sum(deaths[j] for j in group) for group in groups],
        "censored": [sum(censored[j] for j in group) for group in groups],
    }
    if len(groups) == len(starts):
        note = "no interval merged"
    else:
        note = f"{len(starts)} intervals of {width:g} months merged into {len(groups)}"
    if end < len(starts):
        note += f"; cut at {starts[end - 1] + width:g} months (fewer than {k} at risk after)"
    return merged, note


def withhold(bundle: Mapping[str, Any], k: int) -> dict[str, Any]:
    """The bundle with every quantity built on a count from 1 to k - 1 withheld (k <= 1:
    nothing is), and the reasons listed under `withheld`."""
    out = json.loads(json.dumps(bundle))
    out["min_cell_count"] = k
    withheld = []

    def drop(section: str, name: str, reason: str) -> None:
        out[section][name] = {"withheld": reason}
        withheld.append({"quantity": f"{section}.{name}", "reason": reason})

    for name, value in list(out["counts"].items()):
        if small(value, k):
            drop("counts", name, f"a count below {k}")
    for name, record in list(out["hazard_ratios"].items()):
        if small(record["n"], k):
            drop("hazard_ratios", name, f"a model of fewer than {k} patients")
    for name, record in list(out["proportions"].items()):
        x, m = record["x"], record["m"]
        if small(x, k) or small(m - x, k):
            drop("proportions", name, f"a count below {k} in {x} of {m}")
    logrank = out["logrank"]
    if small(logrank["n"], k) or small(logrank["observed"], k):
        out["logrank"] = {"withheld": f"fewer than {k} stage IV patients or deaths with BM"}
        withheld.append({"quantity": "logrank", "reason": out["logrank"]["withheld"]})
    for name, table in list(out["tables"].items()):
        if any(small(cell, k) for row in table for cell in row):
            drop("tables", name, f"a cell below {k}")
    for name, record in list(out["life_tables"].items()):
        merged, note = merge_life_table(record, k)
        if not merged:
            drop("life_tables", name, note)
        else:
            out["life_tables"][name] = merged | {"disclosure": note}
    out["withheld"] = withheld
    return out


# ---------------------------------------------------------------------------------------
# the data-protection officer's page

LABELS = {
    "counts": {
        "n_eligible": "eligible patients (diagnosed in the study period, adults)",
        "n_stage_iv": "eligible patients with stage IV at diagnosis",
        "n_bm": "stage IV patients with bone metastases (BM)",
        "n_sstr_only": "BM patients whose BM were seen on SSTR imaging only at first",
        "n_sre": "BM patients with a skeletal-related event",
        "n_deaths": "deaths among the eligible patients",
    },
    "hazard_ratios": {
        "hr_os_bm_crude": "crude (BM only)",
        "hr_os_bm_adjusted": "adjusted for age, sex and grade",
        "hr_os_bm_timedep": "BM as a time-dependent covariate",
    },
    "proportions": {name: label for name, (_, _, label) in PROPORTIONS.items()},
    "tables": TABLES,
    "rows": {
        "test_functioning_bm": ("with BM", "without BM"),
        "test_sre_antiresorptive": ("antiresorptive therapy", "none"),
    },
    "columns": {
        "test_functioning_bm": ("functioning", "non-functioning"),
        "test_sre_antiresorptive": ("SRE", "no SRE"),
    },
    "life_tables": GROUPS,
}


def render_bundle_page(bundle: Mapping[str, Any]) -> str:
    """Every number of the bundle, in words: what a data-protection officer signs off."""
    from sinet_bm.report import environment

    env = environment(TEMPLATES)

    def shown(value: Any) -> str:
        return f"withheld: {value['withheld']}" if isinstance(value, dict) else str(value)

    return env.get_template("bundle.html").render(b=bundle, labels=LABELS, shown=shown)


# ---------------------------------------------------------------------------------------
# files


def write_bundle(bundle: Mapping[str, Any], path: str | Path) -> None:
    """Sorted keys and shortest float repr: the same aggregates give the same bytes."""
    Path(path).write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def schema_errors(bundle: Any) -> list[str]:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(bundle), key=lambda e: list(e.absolute_path))
    ]


@dataclass(frozen=True)
class Bundle:
    path: str
    content: dict[str, Any]

    @property
    def centre(self) -> str:
        return self.content["centre"]


def read_bundles(paths: Sequence[str | Path]) -> list[Bundle]:
    """Bundles checked before any pooling: valid against the schema and of this format's
    version, one per centre, and computed under the same definitions."""
    bundles = []
    for path in paths:
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{path}: not a readable bundle ({error})") from error
        same_format = isinstance(content, dict) and content.get("format") == FORMAT
        if same_format and content.get("version") != VERSION:
            raise BundleError(
                f"{path}: bundle version {content.get('version')!r}, this pipeline reads "
                f"version {VERSION}; rerun the centre with this pipeline version"
            )
        errors = schema_errors(content)
        if errors:
            raise BundleError(f"{path}: not a valid bundle: " + "; ".join(errors[:5]))
        bundles.append(Bundle(str(path), content))
    seen: dict[str, str] = {}
    for bundle in bundles:
        if bundle.centre in seen:
            raise BundleError(
                f"two bundles of centre {bundle.centre!r}: {seen[bundle.centre]} and "
                f"{bundle.path}; send one bundle per centre"
            )
        seen[bundle.centre] = bundle.path
    first = bundles[0] if bundles else None
    for bundle in bundles[1:]:
        differ = differing_keys(first.content["definitions"], bundle.content["definitions"])
        if differ:
            raise BundleError(
                f"{bundle.path} (centre {bundle.centre!r}) was computed with other definitions "
                f"than {first.path} (centre {first.centre!r}): {', '.join(differ)} differ; "
                "the centres must rerun with the same definitions"
            )
        if bundle.content["life_tables"] and first.content["life_tables"]:
            widths = {b.content["life_tables"].get("bm", {}).get("width") for b in (first, bundle)}
            if len(widths - {None}) > 1:
                raise BundleError(
                    f"{bundle.path}: life table intervals of another width than {first.path}; "
                    "set the same pooling.life_table_months"
                )
    return bundles


def differing_keys(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(first) | set(second))
    return [key for key in keys if first.get(key) != second.get(key)]


def logrank_of(bundle: Bundle) -> LogrankContribution | None:
    record = bundle.content["logrank"]
    if "withheld" in record:
        return None
    return LogrankContribution(record["observed"], record["expected"], record["variance"])


def life_table_of(bundle: Bundle, group: str) -> dict[str, Any] | None:
    record = bundle.content["life_tables"].get(group, {})
    return None if "withheld" in record else record
