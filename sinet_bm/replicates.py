"""Replicate work split into shards: the percentile bootstrap of the adjusted BM hazard ratio
and of the RMST difference, and the simulation check of immortal-time bias.

Each replicate draws from its own stream, a child of the one configured seed indexed by the
replicate's number. A shard is only a range of replicate numbers, so the results are the
same however many shards or cluster jobs computed them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError

from sinet_bm.models import ADJUSTED_TERMS, Row, cox_data, fit_cox, row, stage_iv_of
from sinet_bm.sensitivity import CountingProcessCox, bm_intervals, fit_time_varying, rmst

STATISTICS = {
    "hr_os_bm_adjusted_bootstrap": "hazard ratio of BM in the adjusted Cox model",
    "rmst_os_diff_bootstrap": "difference BM - no BM of the restricted mean OS",
}
COVARIATES = list(ADJUSTED_TERMS.values())


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


def without_deathless_levels(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The limit of the model when a grade or sex level has no deaths in a resample.

    Its coefficient then runs to minus infinity, and in that limit the level's patients
    weigh nothing in any risk set: the partial likelihood is that of the other patients
    without the covariate. R's coxph reports the same BM coefficient with a warning; leaving
    such resamples out instead would bias the interval.
    """
    covariates = list(COVARIATES)
    for name in ("male", "g2", "g3"):
        level = data[name].astype(bool)
        if level.any() and not data.loc[level, "dead"].any():
            data, covariates = data[~level], [c for c in covariates if c != name]
    return data, covariates


def adjusted_bm_log_hr(stage_iv: pd.DataFrame) -> float:
    """log HR of BM in the adjusted model; NaN where a resample leaves it undefined (BM or
    another covariate without variation, no events, a fit that still diverges)."""
    data, covariates = without_deathless_levels(cox_data(stage_iv))
    if not data["dead"].any() or any(data[name].nunique() < 2 for name in covariates):
        return np.nan
    stop = data["os_months"].to_numpy(dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        try:
            # entry before the first time: every patient is at risk from the start, deaths on
            # the day of diagnosis included, as in the right-censored model of section 3
            fit = CountingProcessCox(0.95).fit(
                np.full(len(data), stop.min() - 1.0),
                stop,
                data["dead"].to_numpy(dtype=bool),
                data[covariates].astype(float),
            )
        except (ConvergenceError, np.linalg.LinAlgError):
            return np.nan
    return float(fit.params_["bm"])


def rmst_difference(stage_iv: pd.DataFrame, horizon: float) -> float:
    bm = stage_iv["bm"].to_numpy(dtype=bool)
    if bm.all() or not bm.any():
        return np.nan
    means = [
        rmst(group["os_months"], group["dead"].astype(bool), horizon)[0]
        for group in (stage_iv[bm], stage_iv[~bm])
    ]
    return means[0] - means[1]


def statistics(stage_iv: pd.DataFrame, horizon: float) -> dict[str, float]:
    return {
        "hr_os_bm_adjusted_bootstrap": float(np.exp(adjusted_bm_log_hr(stage_iv))),
        "rmst_os_diff_bootstrap": rmst_difference(stage_iv, horizon),
    }


def bootstrap_replicates(
    stage_iv: pd.DataFrame, replicates: range, settings: BootstrapSettings
) -> pd.DataFrame:
    """The statistics on resamples (with replacement, of stage IV patients) `replicates`."""
    rows = []
    for replicate in replicates:
        draw = replicate_rng(settings.seed, replicate).integers(0, len(stage_iv), len(stage_iv))
        resample = stage_iv.iloc[draw].reset_index(drop=True)
        rows.append(
            {"replicate": replicate + 1} | statistics(resample, settings.rmst_horizon_months)
        )
    columns = ["replicate", *STATISTICS]
    return pd.DataFrame(rows, columns=columns).astype({"replicate": int})


def percentile_rows(
    stage_iv: pd.DataFrame, draws: pd.DataFrame, settings: BootstrapSettings, level: float
) -> list[Row]:
    """Point estimate on the data, CI from the percentiles of the replicates that have one."""
    if len(draws) != settings.replicates or not draws["replicate"].is_unique:
        raise ValueError(
            f"expected replicates 1..{settings.replicates} once each, got {len(draws)} rows"
        )
    point = statistics(stage_iv, settings.rmst_horizon_months)
    rows = []
    for estimate, what in STATISTICS.items():
        values = draws[estimate].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        method = (
            f"percentile bootstrap of the {what}: {settings.replicates} resamples of stage IV "
            f"patients, seed {settings.seed}"
        )
        if len(finite) < settings.replicates:
            method += f"; {settings.replicates - len(finite)} without a finite value left out"
        if not np.isfinite(point[estimate]) or len(finite) < 2:
            rows.append(
                row(estimate, "stage_iv", len(stage_iv), method=f"{method}: not computable")
            )
            continue
        tail = (1 - level) / 2
        bounds = np.quantile(finite, [tail, 1 - tail])
        rows.append(
            row(
                estimate,
                "stage_iv",
                len(stage_iv),
                point[estimate],
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


def redraw_bm_onset(stage_iv: pd.DataFrame, rng: np.random.Generator, check: BiasCheck):
    """BM that do not change the hazard: onset drawn independently of survival, and seen
    only by patients still followed when it happens (as in any registry)."""
    synchronous = rng.random(len(stage_iv)) < check.synchronous_share
    onset = np.where(synchronous, 0.0, rng.exponential(check.onset_mean_months, len(stage_iv)))
    seen = onset < stage_iv["os_months"].to_numpy()
    return stage_iv.assign(bm=seen, bm_months=np.where(seen, onset, np.nan))


def bias_check_replicates(
    endpoints_of: Callable[[int], pd.DataFrame],
    replicates: range,
    check: BiasCheck,
    level: float,
) -> pd.DataFrame:
    """Naive 'BM ever' and time-dependent hazard ratios when the true BM effect is none.

    `endpoints_of(seed)` gives the endpoints of one simulated cohort; replicate k's seed is
    child k of the check's seed, so a shard of replicates gives the rows the whole would.
    """
    rows = []
    for replicate in replicates:
        seed = replicate_seed(check.seed, replicate)
        stage_iv = stage_iv_of(endpoints_of(seed))
        stage_iv = redraw_bm_onset(stage_iv, np.random.default_rng(seed), check)
        naive = fit_cox(stage_iv, ["bm"], "os_months", "dead", level)
        timedep = fit_time_varying(bm_intervals(stage_iv), ["bm"], "dead", level)
        rows.append(
            {
                "replicate": replicate + 1,
                "seed": seed,
                "patients": len(stage_iv),
                "with_bm": int(stage_iv["bm"].sum()),
                "hr_naive": float(naive.fitter.hazard_ratios_["bm"]) if naive.fitter else None,
                "hr_timedep": float(timedep.fitter.hazard_ratios_["bm"])
                if timedep.fitter
                else None,
            }
        )
    return pd.DataFrame(rows, columns=BIAS_COLUMNS)


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
