"""The pooled rows of a finished multi-centre run against R (docs/estimates.md, section 6).

`r_comparison(run_folder, tmp)` writes what R needs from the run folder as CSV (R has no
parquet reader here): the union's stage IV patients (for the Cox models stratified by centre,
the stratified log-rank and the pooled life table, all recomputed from the rows) and each
centre's bundle inputs (HR and Wald CI, x of m, the 2x2 tables). tests/r/consortium.R then
computes every pooled number with coxph, metafor's rma/predict/escalc, survdiff and
mantelhaen.test, and the frame returned pairs each with the run's `estimates.csv`.

tests/test_centres.py runs it on the example consortium's run.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sinet_bm.bundle import HAZARD_RATIOS, PROPORTIONS, TABLES
from sinet_bm.endpoints import stage_iv_of
from sinet_bm.survival import cox_data

R_SCRIPT = Path(__file__).resolve().parent / "r" / "consortium.R"
METAFOR_MISSING = 3  # consortium.R's exit status without metafor

# The contract's tolerances: estimates and CI bounds (HR, proportions, OR) relative 1e-4;
# τ², I², Q, chi-squares and survival 1e-6 (absolute near 0); p-values relative 1e-4.
ESTIMATE = {"rel": 1e-4, "abs": 0.0}
HETEROGENEITY = {"rel": 1e-6, "abs": 1e-6}
P_VALUE = {"rel": 1e-4, "abs": 0.0}


def hexed(values: pd.Series) -> list[str]:
    """C99 hex literals, which R reads bit for bit."""
    return [float(value).hex() for value in values]


def bundles_of(run_folder: Path) -> dict[str, dict]:
    return {
        path.parent.parent.name: json.loads(path.read_text())
        for path in sorted((run_folder / "centres").glob("*/share/bundle.json"))
    }


def write_inputs(run_folder: Path, folder: Path) -> dict[str, dict]:
    union = pd.read_parquet(run_folder / "endpoints" / "patients.parquet")
    stage_iv = stage_iv_of(union)
    known = cox_data(stage_iv, keep=["centre"])  # grade known: the adjusted model's rows
    rows = pd.DataFrame(
        {
            "centre": stage_iv["centre"].astype(str),
            "os_months": hexed(stage_iv["os_months"]),
            "dead": stage_iv["dead"].astype(int),
            "bm": stage_iv["bm"].astype(int),
            "age_years": hexed(stage_iv["age_years"]),
            "male": stage_iv["male"].astype(int),
            "g2": (stage_iv["grade"] == "G2").astype(int),
            "g3": (stage_iv["grade"] == "G3").astype(int),
            "grade_known": stage_iv["grade"].notna().astype(int),
        }
    )
    assert rows["grade_known"].sum() == len(known)
    rows.to_csv(folder / "union.csv", index=False)

    bundles = bundles_of(run_folder)
    assert len(bundles) >= 2, f"no centres' bundles under {run_folder / 'centres'}"
    hr, plo, tables = [], [], []
    for centre, bundle in bundles.items():
        level = bundle["confidence_level"]
        for name in HAZARD_RATIOS:
            record = bundle["hazard_ratios"][name]
            if "hr" in record:
                hr.append(
                    {
                        "quantity": name,
                        "centre": centre,
                        "hr": float(record["hr"]).hex(),
                        "lower": float(record["ci"][0]).hex(),
                        "upper": float(record["ci"][1]).hex(),
                        "level": float(level).hex(),
                    }
                )
        for name in PROPORTIONS:
            record = bundle["proportions"][name]
            if "x" in record and record["m"] > 0:
                plo.append({"quantity": name, "centre": centre, "x": record["x"], "m": record["m"]})
        for name in TABLES:
            table = bundle["tables"][name]
            if isinstance(table, list):
                (a, b), (c, d) = table
                tables.append(
                    {
                        "quantity": name,
                        "centre": centre,
                        "a": a,
                        "b": b,
                        "c": c,
                        "d": d,
                        "level": level,
                    }
                )
    pd.DataFrame(hr).to_csv(folder / "hr.csv", index=False)
    pd.DataFrame(plo).to_csv(folder / "plo.csv", index=False)
    pd.DataFrame(tables).to_csv(folder / "tables.csv", index=False)
    return bundles


def run_r(folder: Path) -> pd.DataFrame:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript not found: `make test` installs r-base-core and R packages")
    run = subprocess.run(
        [rscript, str(R_SCRIPT), str(folder)], capture_output=True, text=True, timeout=120
    )
    if run.returncode == METAFOR_MISSING:
        pytest.skip(f"{run.stderr.strip()}: `make test` installs r-cran-metafor")
    assert run.returncode == 0, run.stderr
    return pd.read_csv(folder / "r.csv", dtype={"value": str}, keep_default_na=False)


def limits_of(estimate: str, field: str) -> dict[str, float]:
    if field == "p_value":
        return P_VALUE
    if estimate.endswith(("_tau2", "_i2", "_q")) or estimate.startswith(
        ("surv_os_", "test_os_logrank")
    ):
        return HETEROGENEITY
    return ESTIMATE


def kind_of(estimate: str, field: str) -> str:
    if field == "p_value":
        return "p"
    for suffix in ("_stratified", "_fe", "_re_pi", "_re", "_tau2", "_i2", "_q", "_mh"):
        if estimate.endswith(suffix):
            if suffix == "_stratified" and estimate.startswith("test_"):
                return "logrank"
            return {"_stratified": "cox"}.get(suffix, suffix.lstrip("_"))
    if estimate.startswith("surv_os_"):
        return "life_table"
    return "other"


def number(value: object) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def r_comparison(run_folder: Path, tmp: Path) -> pd.DataFrame:
    """(estimate, field, ours, r, rel_diff, abs_diff, kind, agrees) for every number R gives
    on the run's pooled rows and stratified Cox rows; ours from `<run_folder>/estimates.csv`.
    Also rows of R's own checks (plo_correction: escalc("PLO") minus the contract's formula
    at x = 0 and x = m, ours 0) and, for information only (agrees None), R's MH statistic
    and the number of centres whose 2x2 table has an empty margin (`degenerate`) or a zero
    cell (`zero_cell`). rel_diff is |ours − r| / max(|ours|, |r|)."""
    run_folder, tmp = Path(run_folder), Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    write_inputs(run_folder, tmp)
    r = run_r(tmp)
    ours = pd.read_csv(run_folder / "estimates.csv").set_index(["estimate", "population"])
    records = []
    for estimate, field, text in r[["estimate", "field", "value"]].itertuples(index=False):
        r_value = None if text == "NA" else float(text)
        if estimate == "plo_correction":
            mine: float | None = 0.0
            limits = {"rel": 0.0, "abs": 1e-12}
        elif field in ("degenerate", "zero_cell", "statistic"):
            mine, limits = None, None
        else:
            population = (
                "stage_iv"
                if estimate.endswith("_bm_crude_stratified")
                or estimate.endswith("_bm_adjusted_stratified")
                else "pooled"
            )
            key = (estimate, population)
            mine = number(ours.loc[key, field]) if key in ours.index else None
            limits = limits_of(estimate, field)
        if mine is not None and r_value is not None:
            abs_diff = abs(mine - r_value)
            scale = max(abs(mine), abs(r_value))
            rel_diff = abs_diff / scale if scale > 0 else 0.0
            agrees = (
                math.isclose(mine, r_value, rel_tol=limits["rel"], abs_tol=limits["abs"])
                if limits
                else None
            )
        else:
            abs_diff = rel_diff = math.nan
            agrees = (mine is None and r_value is None) if limits else None
        records.append(
            {
                "estimate": estimate,
                "field": field,
                "ours": mine,
                "r": r_value,
                "rel_diff": rel_diff,
                "abs_diff": abs_diff,
                "kind": "check" if estimate == "plo_correction" else kind_of(estimate, field),
                "agrees": agrees,
            }
        )
    frame = pd.DataFrame(records)
    for column in ("ours", "r", "rel_diff", "abs_diff"):
        frame[column] = frame[column].astype(float)
    return frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The largest differences per kind of number."""
    compared = frame[frame["agrees"].notna()].astype({"agrees": bool})
    return compared.groupby("kind").agg(
        n=("agrees", "size"),
        agree=("agrees", "sum"),
        max_rel_diff=("rel_diff", "max"),
        max_abs_diff=("abs_diff", "max"),
    )
