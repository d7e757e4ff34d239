"""What changed since the previous export analysed in the same out_dir.

Each run leaves a small snapshot: the exports' hashes and row counts, aggregate counts,
the headline estimates and one keyed fingerprint per patient id (so that patients added
and removed can be counted). It holds no patient rows, dates or clinical values. After a
successful run the workflow files the snapshot in `refresh/history/`; the next run's
changelog compares against the latest snapshot of a *different* export, so rerunning the
same export after a code change still compares with the export before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

FORMAT = 1
HEADLINE = [
    "n_eligible",
    "n_stage_iv",
    "n_bm",
    "prop_bm",
    "n_sre",
    "median_followup_months",
    "median_os_bm",
    "median_os_no_bm",
    "hr_os_bm_crude",
    "hr_os_bm_adjusted",
    "hr_os_bm_timedep",
    "rmst_os_diff",
]
COUNTS = ["patients_exported", "eligible", "deaths", "sre_events", "person_years"]
LAST, BEFORE = "last.json", "before.json"
# The endpoints' columns a snapshot reads (of a registry's 0.6 GB table, a tenth).
COLUMNS = ("patient_id", "eligible", "dead", "n_sre", "os_months")


def fingerprints(patient_ids: pd.Series) -> list[str]:
    """Sorted, so that the order of the export says nothing."""
    keyed = ("sinet-bm refresh\0" + patient_ids.astype(str)).map(
        lambda text: hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    return sorted(keyed)


def export_digest(files: Mapping[str, Mapping[str, Any]]) -> str:
    text = "\n".join(f"{table} {files[table]['sha256']}" for table in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot(
    summary: Mapping[str, Any], endpoints: pd.DataFrame, estimates: pd.DataFrame
) -> dict[str, Any]:
    eligible = endpoints[endpoints["eligible"]]
    values = estimates.set_index("estimate")["value"]
    return {
        "format": FORMAT,
        "export_digest": export_digest(summary["files"]),
        "files": {
            table: {"rows": record["rows"], "sha256": record["sha256"]}
            for table, record in sorted(summary["files"].items())
        },
        "counts": {
            "patients_exported": len(endpoints),
            "eligible": len(eligible),
            "deaths": int(eligible["dead"].sum()),
            "sre_events": int(eligible["n_sre"].sum()),
            "person_years": float(eligible["os_months"].sum() / 12),
        },
        "estimates": {
            name: None if pd.isna(values.get(name)) else float(values[name]) for name in HEADLINE
        },
        "patient_fingerprints": fingerprints(endpoints["patient_id"]),
    }


def previous_snapshot(current: Mapping[str, Any], history: Path) -> dict[str, Any] | None:
    """The latest filed snapshot of another export than the current one."""
    for name in (LAST, BEFORE):
        path = history / name
        if path.is_file():
            filed = json.loads(path.read_text())
            if filed["export_digest"] != current["export_digest"]:
                return filed
    return None


def changelog(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    if previous is None:
        return {"previous": None}
    old_ids, new_ids = set(previous["patient_fingerprints"]), set(current["patient_fingerprints"])
    counts = {
        name: {"old": previous["counts"][name], "new": current["counts"][name]} for name in COUNTS
    }
    estimates = []
    for name in HEADLINE:
        old, new = previous["estimates"].get(name), current["estimates"][name]
        change = None if old is None or new is None else new - old
        estimates.append({"estimate": name, "old": old, "new": new, "change": change})
    return {
        "previous": {"export_digest": previous["export_digest"]},
        "patients_added": len(new_ids - old_ids),
        "patients_removed": len(old_ids - new_ids),
        "counts": counts,
        "files": {
            table: {
                "old_rows": previous["files"].get(table, {}).get("rows"),
                "new_rows": record["rows"],
                "changed": previous["files"].get(table, {}).get("sha256") != record["sha256"],
            }
            for table, record in current["files"].items()
        },
        "estimates": estimates,
    }


def write_json(record: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def file_snapshot(snapshot_path: str | Path, history: str | Path) -> None:
    """After a successful run: the current snapshot becomes the last one filed; the one it
    replaces is kept as `before` when it belongs to another export. Files are replaced
    whole (rename), so a run killed here leaves the history as it was or as it will be."""
    snapshot_path, history = Path(snapshot_path), Path(history)
    if not snapshot_path.is_file():
        return
    history.mkdir(parents=True, exist_ok=True)
    current = json.loads(snapshot_path.read_text())
    last = history / LAST
    if last.is_file():
        if last.read_bytes() == snapshot_path.read_bytes():
            return
        if json.loads(last.read_text())["export_digest"] != current["export_digest"]:
            os.replace(last, history / BEFORE)
    partial = history / f".{LAST}.partial"
    shutil.copyfile(snapshot_path, partial)
    os.replace(partial, last)
