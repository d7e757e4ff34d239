"""Replicate work split into shards, and gathered: the percentile bootstrap of the adjusted
BM hazard ratio and of the RMST difference, and the simulation check of immortal-time bias.

Each replicate draws from its own stream, a child of the one configured seed indexed by the
replicate's number. A shard is only a range of replicate numbers, so the results are the
same however many shards or cluster jobs computed them. What each replicate computes is in
`sinet_bm.sensitivity`; this module only splits, seeds and gathers, so that gathering stays
quick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sinet_bm.results import Row, row

STATISTICS = {
    "hr_os_bm_adjusted_bootstrap": "hazard ratio of BM in the adjusted Cox model",
    "rmst_os_diff_bootstrap": "difference BM - no BM of the restricted mean OS",
}
# Replicate 0 is the data itself: the point estimate, computed by the first shard.
ORIGINAL = 0


def shard_replicates(shard: int, shards: int, replicates: int) -> range:
    """Replicate numbers (0-based) of shard `shard` of `shards` (1-based): contiguous,
    balanced to within one, and together covering every replicate exactly once."""
    if not 1 <= shard <= shards:
        raise ValueError(f"shard {shard} is not one of 1..{shards}")
    return range((shard - 1) * replicates // shards, shard * replicates // shards)


def replicate_rng(seed: int, replicate: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replicate,)))


def replicate_seed(seed: int, replicate: int) -> int:
    """An integer seed for code that takes one (the simulator), from the same tree."""
    return int(np.random.SeedSequence(seed, spawn_key=(replicate,)).generate_state(1)[0])


@dataclass(frozen=True)
class BootstrapSettings:
    replicates: int
    seed: int
    rmst_horizon_months: float


def percentile_rows(
    draws: pd.DataFrame, settings: BootstrapSettings, level: float, n: int
) -> list[Row]:
    """Point estimate (replicate 0, the data), CI from the percentiles of the resamples
    (1..replicates) that have a finite value; `n` = the stage IV patients resampled."""
    resamples = draws[draws["replicate"] != ORIGINAL]
    expected = set(range(1, settings.replicates + 1))
    if set(resamples["replicate"]) != expected or not resamples["replicate"].is_unique:
        raise ValueError(
            f"expected replicates 1..{settings.replicates} once each, got {len(resamples)} rows"
        )
    point = draws.loc[draws["replicate"] == ORIGINAL]
    if len(point) != 1:
        raise ValueError("expected the point estimate (replicate 0) once")
    rows = []
    for estimate, what in STATISTICS.items():
        values = resamples[estimate].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        value = float(point[estimate].iloc[0])
        method = (
            f"percentile bootstrap of the {what}: {settings.replicates} resamples of stage IV "
            f"patients, seed {settings.seed}"
        )
        if len(finite) < settings.replicates:
            method += f"; {settings.replicates - len(finite)} without a finite value left out"
        if not np.isfinite(value) or len(finite) < 2:
            rows.append(row(estimate, "stage_iv", n, method=f"{method}: not computable"))
            continue
        tail = (1 - level) / 2
        bounds = np.quantile(finite, [tail, 1 - tail])
        rows.append(
            row(
                estimate,
                "stage_iv",
                n,
                value,
                (float(bounds[0]), float(bounds[1])),
                method=f"{method}; numpy linear-interpolation quantiles",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# how large is immortal-time bias? A check on simulated cohorts


@dataclass(frozen=True)
class BiasCheck:
    replicates: int
    n_eligible: int
    seed: int
    synchronous_share: float
    onset_mean_months: float
    shards: int = 1


BIAS_COLUMNS = ["replicate", "seed", "patients", "with_bm", "hr_naive", "hr_timedep"]


def bias_check_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The replicates in order, and their geometric mean as a last row."""
    table = table.sort_values("replicate", kind="stable").reset_index(drop=True)
    summary = {
        "replicate": "geometric mean",
        "seed": None,
        "patients": table["patients"].mean(),
        "with_bm": table["with_bm"].mean(),
        "hr_naive": float(np.exp(np.log(table["hr_naive"]).mean())),
        "hr_timedep": float(np.exp(np.log(table["hr_timedep"]).mean())),
    }
    return pd.concat(
        [table.astype({"replicate": object}), pd.DataFrame([summary])], ignore_index=True
    )
