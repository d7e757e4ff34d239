"""`estimates.csv`, the one tidy table every number of the report comes from.

One row per estimate (`ESTIMATE_COLUMNS`), as broom gives one row per model term. An
estimate that cannot be computed on the data at hand keeps its row, with an empty value and
the reason in `method`, so that a small centre's export runs end to end. This module only
builds, writes and reads rows; it imports no statistics, so that steps which only gather
results stay quick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

ESTIMATE_COLUMNS = [
    "estimate",
    "population",
    "n",
    "value",
    "ci_lower",
    "ci_upper",
    "p_value",
    "method",
]
Row = dict[str, object]


def row(
    estimate: str,
    population: str,
    n: int,
    value: float | None = None,
    ci: tuple[float | None, float | None] = (None, None),
    p_value: float | None = None,
    method: str = "",
) -> Row:
    return {
        "estimate": estimate,
        "population": population,
        "n": int(n),
        "value": value,
        "ci_lower": ci[0],
        "ci_upper": ci[1],
        "p_value": p_value,
        "method": method,
    }


def count(estimate: str, population: str, value: int, n: int) -> Row:
    return row(estimate, population, n, value, method="count")


def nan_to_none(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


class FittedModel(Protocol):
    """What a fitted regression model offers to `term_rows`: lifelines' `summary` columns
    (None when it could not be fitted), its patients, and why terms are missing."""

    @property
    def summary(self) -> pd.DataFrame | None: ...

    @property
    def n(self) -> int: ...

    @property
    def failure(self) -> str: ...

    @property
    def dropped(self) -> Mapping[str, str]: ...


def term_rows(
    fit: FittedModel, terms: Mapping[str, str], population: str, level: float, what: str
) -> list[Row]:
    """One row per model term (estimate id → covariate): hazard ratio, Wald CI and p."""
    percent = f"{level:.0%}"
    rows = []
    for estimate, covariate in terms.items():
        summary = fit.summary
        if summary is None or covariate in fit.dropped:
            reason = fit.dropped.get(covariate) or fit.failure
            rows.append(
                row(estimate, population, fit.n, method=f"{what}: not computable, {reason}")
            )
            continue
        term = summary.loc[covariate]
        hazard_ratio = float(term["exp(coef)"])
        lower, upper = (float(term[f"exp(coef) {side} {percent}"]) for side in ("lower", "upper"))
        if not np.all(np.isfinite([hazard_ratio, lower, upper])):
            rows.append(
                row(
                    estimate, population, fit.n, method=f"{what}: not computable, infinite estimate"
                )
            )
            continue
        rows.append(
            row(
                estimate,
                population,
                fit.n,
                hazard_ratio,
                (lower, upper),
                float(term["p"]),
                f"{what}; hazard ratio, Efron ties, Wald {percent} CI and p",
            )
        )
    return rows


def estimates_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as the typed frame: `n` an integer, the numbers float64, empty = missing."""
    frame = pd.DataFrame(list(rows), columns=ESTIMATE_COLUMNS)
    frame["n"] = frame["n"].astype("Int64")
    for name in ("value", "ci_lower", "ci_upper", "p_value"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def text_column(values: pd.Series, whole: pd.Series) -> pd.Series:
    """Shortest round-trip repr of each double, written as an integer where the row is a
    count (R's read.csv and a reader both expect 467, not 467.0); empty when missing."""
    text = values.map(lambda value: repr(float(value)))
    integral = whole & values.notna()
    text[integral] = values[integral].astype("int64").astype(str)
    return text.where(values.notna(), "")


def write_estimates(frame: pd.DataFrame, path: str | Path) -> None:
    """Full precision, never rounded; counts (ids n_…) as integers."""
    counts = frame["estimate"].str.startswith("n_")
    out = frame.astype({"n": "Int64"}).astype(object)
    for name in ("value", "ci_lower", "ci_upper", "p_value"):
        out[name] = text_column(frame[name].astype("float64"), counts)
    out.to_csv(path, index=False, lineterminator="\n")


def read_endpoints(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """The endpoint columns a step uses, its text columns as categoricals.

    A registry's full endpoints table is 0.6 GB in memory, most of it Python strings, and
    a text comparison or missing-value check goes string by string; as categories the
    same values take a byte per patient and compare as integers.
    """
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    text = [name for name in columns if schema.field(name).type in ("string", "large_string")]
    return pd.read_parquet(path, columns=list(columns), read_dictionary=text)


def read_result(path: str | Path) -> pd.DataFrame:
    """A result CSV of the pipeline; round-trip float parsing keeps every bit."""
    return pd.read_csv(path, float_precision="round_trip")


def read_estimates(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The parts in the given order, as one frame; an id may appear only once."""
    frame = pd.concat([read_result(path) for path in paths], ignore_index=True)
    duplicated = frame.loc[frame["estimate"].duplicated(), "estimate"].tolist()
    if duplicated:
        raise ValueError(f"estimate ids computed twice: {duplicated}")
    return estimates_frame(frame.to_dict("records"))
