"""sinet_bm.pooling against R: metafor (rma, predict, escalc), mantelhaen.test, survdiff
with strata, and the contract's actuarial life table computed in R from cut() and table().

All cases go to one Rscript run (tests/r/pooling.R), and every number R gives is compared
with ours. The cases are the hard ones for pooling few, small centres: strong heterogeneity
and none (REML τ² on the boundary 0), two centres, one centre (no random effects: R is
asked for the fixed effect only), proportions of 0 and of all, levels 0.95 and 0.90;
Mantel–Haenszel tables with |Σ(a − E a)| below and above the 0.5 of the continuity
correction and with a zero cell; log-rank with heavy ties, a centre without BM patients and
one without events; life tables with times on interval ends, at widths 1 and 0.1.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sinet_bm.pooling import (
    MantelHaenszel,
    MetaAnalysis,
    Pooled,
    life_table_counts,
    log_hazard_ratios,
    logit_proportions,
    logrank_contribution,
    pool_life_tables,
    stratified_logrank,
)

RSCRIPT = shutil.which("Rscript")
if RSCRIPT is None:
    pytest.skip(
        "Rscript not found: `make test` installs r-base-core, r-cran-survival and r-cran-metafor",
        allow_module_level=True,
    )

R_SCRIPT = Path(__file__).resolve().parent / "r" / "pooling.R"
METAFOR_MISSING = 3  # pooling.R's exit status without metafor

# Estimates, SEs, CI bounds, τ², I², Q and chi-squares: both sides solve the same equations
# in doubles (metafor's REML iterated to 1e-12, see pooling.R).
ESTIMATE = {"rel": 1e-9, "abs": 1e-12}
P_VALUE = {"rel": 0.0, "abs": 1e-12}
# τ² and I² where the REML root is 0: ours are 0 exactly; metafor's are too when it starts
# there (it halves a step below 0 until the step vanishes), within its threshold otherwise.
TAU2_AT_ZERO = {"rel": 0.0, "abs": 1e-10}
COUNT = {"rel": 0.0, "abs": 0.0}
SURVIVAL = {"rel": 1e-14, "abs": 0.0}


@dataclass(frozen=True)
class Compared:
    name: str
    ours: float | None
    r: float | None
    rel: float
    abs: float

    @property
    def agrees(self) -> bool:
        if self.ours is None or self.r is None:
            return self.ours is None and self.r is None
        return math.isclose(self.ours, self.r, rel_tol=self.rel, abs_tol=self.abs)

    def __str__(self) -> str:
        text = f"{self.name}: ours {self.ours!r}, R {self.r!r}"
        if self.ours is not None and self.r is not None:
            text += f", difference {abs(self.ours - self.r):.3g}"
        return f"{text}; allowed rel {self.rel:g}, abs {self.abs:g}"


def check(comparisons: list[Compared]) -> None:
    assert comparisons
    wrong = [str(c) for c in comparisons if not c.agrees]
    assert not wrong, "\n".join(wrong)


# --- the cases ------------------------------------------------------------------------------

LEVELS = (0.95, 0.90)
PROPORTIONS = ([0, 4, 11, 9], [6, 25, 30, 9])  # x = 0 and x = m: half a patient added


def meta_inputs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261207)
    eight_v = rng.uniform(0.02, 0.3, 8)
    eight_y = rng.normal(0.3, 0.6, 8) + rng.normal(0, np.sqrt(eight_v))
    return {
        # HRs with Wald CIs far apart: τ² > 0, I² large
        "heterogeneous": log_hazard_ratios(
            [0.6, 1.1, 2.5, 3.8, 1.6], [0.4, 0.8, 1.7, 2.4, 0.9], [0.9, 1.5, 3.7, 6.0, 2.8], 0.95
        ),
        # spread below what the v explain: the REML root is τ² = 0
        "homogeneous": (np.array([0.20, 0.25, 0.18, 0.22]), np.array([0.04, 0.09, 0.05, 0.12])),
        "two_centres": (np.array([-0.1, 0.9]), np.array([0.05, 0.08])),
        "proportions": logit_proportions(*PROPORTIONS),
        "eight": (eight_y, eight_v),
        "one_centre": (np.array([0.3]), np.array([0.04])),
    }


def meta_cases() -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    for name, (y, v) in meta_inputs().items():
        for level in LEVELS:
            yield f"{name}_{round(100 * level)}", y, v, level


MH_TABLES = {
    "corrected": [[[5, 2], [3, 6]], [[4, 4], [2, 7]], [[8, 1], [5, 5]]],
    "uncorrected": [[[2, 1], [1, 2]], [[1, 1], [2, 1]], [[3, 3], [3, 3]]],
    "zero_cell": [[[3, 0], [2, 4]], [[5, 3], [1, 6]], [[2, 2], [3, 3]]],
}


def mh_difference(tables: list) -> float:
    """Σ(a − E a), which decides the continuity correction."""
    x = np.asarray(tables, dtype=float)
    n = x.sum(axis=(1, 2))
    return float(np.sum(x[:, 0, 0] - x[:, 0, :].sum(axis=1) * x[:, :, 0].sum(axis=1) / n))


def logrank_data() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    frames = []
    # integer months 1..5 in centres a–c: many deaths at each time, in both groups
    for centre, n, bm_share, death_rate in (
        ("a", 40, 0.4, 0.7),
        ("b", 25, 0.5, 0.6),
        ("c", 12, 0.0, 0.8),  # no BM patient: contributes nothing
        ("d", 8, 0.5, 0.0),  # no death
        ("e", 1, 1.0, 1.0),  # one patient
    ):
        frames.append(
            pd.DataFrame(
                {
                    "centre": centre,
                    "time": rng.integers(1, 6, n).astype(float),
                    "status": (rng.random(n) < death_rate).astype(int),
                    "group": (rng.random(n) < bm_share).astype(int),
                }
            )
        )
    ties = pd.concat(frames, ignore_index=True)
    two = pd.DataFrame(
        {
            "centre": np.repeat(["x", "y"], 30),
            "time": np.round(rng.exponential(20, 60), 1),  # some ties at one decimal
            "status": (rng.random(60) < 0.6).astype(int),
            "group": (rng.random(60) < 0.4).astype(int),
        }
    )
    return {"heavy_ties": ties, "two_centres": two}


@dataclass(frozen=True)
class LifeCase:
    width: float
    horizon: float
    centres: list[tuple[np.ndarray, np.ndarray]]


def life_cases() -> dict[str, LifeCase]:
    rng = np.random.default_rng(11)

    def centre(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return times, rng.random(len(times)) < 0.5

    monthly = [
        # whole months, many exactly on interval ends, some beyond the horizon
        centre(rng.integers(0, 30, 50).astype(float)),
        centre(np.round(rng.exponential(10, 40), 2)),
        centre(np.concatenate([np.arange(0.0, 25.0), [24.0, 24.0, 12.0]])),
    ]
    tenth = [
        # w = 0.1: ends j·0.1 that floor(t / w) would misplace (4.3, 8.6, …), and others
        centre(0.1 * rng.integers(0, 70, 60)),
        centre(np.array([0.1 * j for j in (43, 43, 29, 41, 50, 57, 59, 60, 61)])),
        centre(rng.uniform(0, 7, 30)),
    ]
    return {
        "monthly": LifeCase(1.0, 24.0, monthly),
        "tenth": LifeCase(0.1, 6.0, tenth),
    }


# --- R --------------------------------------------------------------------------------------


def hexed(values: np.ndarray) -> list[str]:
    """C99 hex literals, which R reads bit for bit."""
    return [float(value).hex() for value in values]


def write_inputs(folder: Path) -> None:
    pd.DataFrame(
        [
            {"case": case, "level": level, "y": yi.hex(), "v": vi.hex()}
            for case, y, v, level in meta_cases()
            for yi, vi in zip(y.tolist(), v.tolist(), strict=True)
        ]
    ).to_csv(folder / "meta.csv", index=False)
    x, m = PROPORTIONS
    pd.DataFrame({"case": "proportions", "x": x, "m": m}).to_csv(folder / "plo.csv", index=False)
    pd.DataFrame(
        [
            {"case": f"{name}_{round(100 * level)}", "level": level, "a": a, "b": b, "c": c, "d": d}
            for name, tables in MH_TABLES.items()
            for level in LEVELS
            for (a, b), (c, d) in tables
        ]
    ).to_csv(folder / "mh.csv", index=False)
    pd.concat(
        [data.assign(case=case, time=hexed(data["time"])) for case, data in logrank_data().items()]
    ).to_csv(folder / "logrank.csv", index=False)
    pd.DataFrame(
        [
            {
                "case": case,
                "width": life.width.hex(),
                "horizon": life.horizon.hex(),
                "time": t.hex(),
                "dead": int(d),
            }
            for case, life in life_cases().items()
            for times, dead in life.centres
            for t, d in zip(times.tolist(), dead.tolist(), strict=True)
        ]
    ).to_csv(folder / "life.csv", index=False)


@pytest.fixture(scope="module")
def r(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float | None]:
    folder = tmp_path_factory.mktemp("pooling")
    write_inputs(folder)
    run = subprocess.run(
        [RSCRIPT, str(R_SCRIPT), str(folder)], capture_output=True, text=True, timeout=120
    )
    if run.returncode == METAFOR_MISSING:
        pytest.skip(f"{run.stderr.strip()}: `make test` installs r-cran-metafor")
    assert run.returncode == 0, run.stderr
    out = pd.read_csv(folder / "r.csv", dtype=str, keep_default_na=False)
    return {name: None if text == "NA" else float(text) for name, text in out.to_numpy()}


# --- the comparisons ------------------------------------------------------------------------


def pooled_values(pooled: Pooled) -> dict[str, float]:
    return {
        "estimate": pooled.estimate,
        "se": pooled.se,
        "lower": pooled.ci[0],
        "upper": pooled.ci[1],
        "p": pooled.p,
    }


def meta_comparisons(r: dict[str, float | None]) -> list[Compared]:
    comparisons = []
    for case, y, v, level in meta_cases():
        fit = MetaAnalysis.fit(y, v, level)
        fe = pooled_values(fit.fixed) | {"q": fit.q, "q_p": fit.q_p}
        ours = {f"fe.{name}": value for name, value in fe.items()}
        if fit.k >= 2:
            re = pooled_values(fit.random) | {
                "tau2": fit.tau2,
                "i2": fit.i2,
                "q": fit.q,
                "q_p": fit.q_p,
                "pi_lower": fit.prediction[0],
                "pi_upper": fit.prediction[1],
            }
            ours |= {f"re.{name}": value for name, value in re.items()}
        else:
            assert fit.random is None and fit.tau2 is None and "one centre" in fit.reason
            assert f"meta.{case}.re.estimate" not in r
        for name, value in ours.items():
            limits = P_VALUE if name.endswith(("p", "q_p")) else ESTIMATE
            if name.endswith(("tau2", "i2")) and fit.tau2 == 0:
                limits = TAU2_AT_ZERO
            comparisons.append(
                Compared(f"meta.{case}.{name}", value, r[f"meta.{case}.{name}"], **limits)
            )
    return comparisons


def test_meta_analysis_matches_metafor(r: dict[str, float | None]) -> None:
    check(meta_comparisons(r))


def test_the_cases_are_the_hard_ones() -> None:
    fits = {name: MetaAnalysis.fit(y, v, 0.95) for name, (y, v) in meta_inputs().items()}
    assert fits["heterogeneous"].i2 > 0.75 and fits["eight"].tau2 > 0
    assert fits["homogeneous"].tau2 == 0.0 and fits["homogeneous"].i2 == 0.0
    assert fits["two_centres"].k == 2 and fits["two_centres"].tau2 > 0
    assert fits["one_centre"].random is None
    x, m = PROPORTIONS
    assert 0 in x and any(xi == mi for xi, mi in zip(x, m, strict=True))
    assert abs(mh_difference(MH_TABLES["corrected"])) >= 0.5
    assert abs(mh_difference(MH_TABLES["uncorrected"])) < 0.5
    assert np.any(np.asarray(MH_TABLES["zero_cell"]) == 0)
    ties = logrank_data()["heavy_ties"]
    deaths = ties[ties["status"] == 1].groupby(["centre", "time"]).size()
    assert deaths.max() >= 5
    assert ties.groupby("centre")["group"].sum()["c"] == 0
    assert ties.groupby("centre")["status"].sum()["d"] == 0
    # interval ends j·0.1 that floor(t / w) puts one interval too early
    tenth = np.concatenate([t for t, _ in life_cases()["tenth"].centres])
    j = np.round(tenth / 0.1)
    assert np.any((tenth == 0.1 * j) & (np.floor(tenth / 0.1) < j))


def test_the_prediction_interval_is_mu_plus_minus_t_sqrt_se2_plus_tau2(
    r: dict[str, float | None],
) -> None:
    """metafor's predict() for a knha model is t(k − 1) · √(SE² + τ²) on metafor's own SE and
    τ², as the contract defines the prediction interval (not Higgins et al.'s k − 2 df)."""
    for case, y, _, level in meta_cases():
        if len(y) < 2:
            continue
        mu, se, tau2 = (r[f"meta.{case}.re.{name}"] for name in ("estimate", "se", "tau2"))
        half = stats.t.ppf((1 + level) / 2, len(y) - 1) * math.sqrt(se**2 + tau2)
        check(
            [
                Compared(f"{case}.pi_lower", mu - half, r[f"meta.{case}.re.pi_lower"], **ESTIMATE),
                Compared(f"{case}.pi_upper", mu + half, r[f"meta.{case}.re.pi_upper"], **ESTIMATE),
            ]
        )


def test_logit_proportions_match_escalc(r: dict[str, float | None]) -> None:
    y, v = logit_proportions(*PROPORTIONS)
    check(
        [
            Compared(
                f"plo.{name}.{i + 1}",
                float(value),
                r[f"plo.proportions.{name}.{i + 1}"],
                **ESTIMATE,
            )
            for name, values in (("y", y), ("v", v))
            for i, value in enumerate(values)
        ]
    )


def test_mantel_haenszel_matches_mantelhaen_test(r: dict[str, float | None]) -> None:
    comparisons = []
    for name, tables in MH_TABLES.items():
        for level in LEVELS:
            case = f"mh.{name}_{round(100 * level)}"
            fit = MantelHaenszel.fit(tables, level)
            ours = {
                "estimate": fit.odds_ratio,
                "lower": fit.ci[0],
                "upper": fit.ci[1],
                "statistic": fit.statistic,
                "p": fit.p,
            }
            comparisons += [
                Compared(
                    f"{case}.{field}",
                    value,
                    r[f"{case}.{field}"],
                    **(P_VALUE if field == "p" else ESTIMATE),
                )
                for field, value in ours.items()
            ]
    check(comparisons)


def test_stratified_logrank_matches_survdiff(r: dict[str, float | None]) -> None:
    comparisons = []
    for case, data in logrank_data().items():
        contributions = [
            logrank_contribution(rows["time"], rows["status"] == 1, rows["group"] == 1)
            for _, rows in data.groupby("centre")
        ]
        test = stratified_logrank(contributions)
        ours = {
            "o_minus_e": test.o_minus_e,
            "variance": test.variance,
            "chisq": test.statistic,
            "p": test.p,
        }
        comparisons += [
            Compared(
                f"logrank.{case}.{field}",
                value,
                r[f"logrank.{case}.{field}"],
                **(P_VALUE if field == "p" else ESTIMATE),
            )
            for field, value in ours.items()
        ]
    check(comparisons)


def test_pooled_life_table_matches_the_actuarial_formula_in_r(r: dict[str, float | None]) -> None:
    comparisons = []
    for case, life in life_cases().items():
        pooled = pool_life_tables(
            [life_table_counts(t, d, life.width, life.horizon) for t, d in life.centres]
        )
        columns = {
            "at_risk": (pooled.at_risk, COUNT),
            "deaths": (pooled.deaths, COUNT),
            "censored": (pooled.censored, COUNT),
            "survival": (pooled.survival, SURVIVAL),
        }
        for field, (values, limits) in columns.items():
            comparisons += [
                Compared(
                    f"life.{case}.{field}.{j + 1}",
                    float(value),
                    r[f"life.{case}.{field}.{j + 1}"],
                    **limits,
                )
                for j, value in enumerate(values)
            ]
        months = life.horizon / 2
        j = round(months / life.width)
        comparisons.append(
            Compared(
                f"life.{case}.survival_at({months:g})",
                pooled.survival_at(months),
                r[f"life.{case}.survival.{j}"],
                **SURVIVAL,
            )
        )
    check(comparisons)
