"""sinet_bm.models and sinet_bm.sensitivity against R, whose survival package
biostatisticians trust.

Each dataset's per-patient data go to one Rscript run (tests/r/reference.R) that computes the
same quantities with survfit (log-log band, quantile.survfit's median rule), survdiff, coxph
(Efron ties) and fisher.test (both run to full precision: see reference.R) and binom.test;
every number is then compared with ours. Datasets: the default synthetic cohort, four
simulated cohorts of other sizes and truths, and R's own classic data sets lung and veteran,
exported by R during the test.

The sensitivity estimates (docs/estimates.md, section 4) go the same way through
tests/r/sensitivity.R (see "section 4" below), on the same cohorts, one with SREs under
antiresorptive exposure, veteran and mgus2.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sinet_bm import cohort as cohort_module
from sinet_bm import estimators, ingest, results, sensitivity, survival
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints, populations
from sinet_bm.simulate import (
    SyntheticDesign,
    design_from_config,
    scaled,
    simulate_cohort,
    write_exports,
)

RSCRIPT = shutil.which("Rscript")
if RSCRIPT is None:
    pytest.skip(
        "Rscript not found: `make test` installs r-base-core and r-cran-survival",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parent.parent
R_DIR = REPO / "tests" / "r"
LEVEL = 0.95  # R's default conf.level everywhere in reference.R


@dataclass(frozen=True)
class Tolerance:
    relative: float = 0.0
    absolute: float = 0.0

    def __str__(self) -> str:
        parts = [f"{kind} {limit:g}" for kind, limit in vars(self).items() if limit]
        return " or ".join(parts) or "exact"


# A KM median or CI bound is an event time of the data: it must come out the same time.
TIME = Tolerance(relative=1e-9)
# Coefficients and what is computed from them (HRs, Wald CIs, odds ratios and their exact
# CIs, Clopper-Pearson bounds), chi-squares and log-likelihoods.
ESTIMATE = Tolerance(relative=1e-6)
P_VALUE = Tolerance(absolute=1e-8)


@dataclass(frozen=True)
class Task:
    """One analysis, run by R on the rows where `subset` (an R expression) holds.

    `name` is the estimate id the pipeline (or, for lung and veteran, this module) gives the
    result; for Cox models it names the model and `terms` maps estimate ids to covariates.
    """

    quantity: str
    name: str
    kind: str
    subset: str
    variables: tuple[str, ...]
    terms: tuple[tuple[str, str], ...] = ()

    @property
    def r_variables(self) -> str:
        return ";".join([*self.variables, *(covariate for _, covariate in self.terms)])


@dataclass(frozen=True)
class Dataset:
    data: pd.DataFrame
    tasks: list[Task]
    rows: dict[str, results.Row]
    fits: dict[str, estimators.CoxFit]


@dataclass(frozen=True)
class Comparison:
    quantity: str
    name: str
    ours: float | None
    r: float | None
    tolerance: Tolerance

    @property
    def agrees(self) -> bool:
        if self.ours is None or self.r is None:
            return self.ours is None and self.r is None
        return math.isclose(
            self.ours, self.r, rel_tol=self.tolerance.relative, abs_tol=self.tolerance.absolute
        )

    def __str__(self) -> str:
        text = f"{self.name}: ours {self.ours!r}, R {self.r!r}"
        if self.ours is not None and self.r is not None:
            difference = abs(self.ours - self.r)
            text += f", difference {difference:.3g} ({difference / abs(self.r):.3g} relative)"
        return f"{text}; allowed {self.tolerance}"


# --- what R is asked for --------------------------------------------------------------------

BM = "stage_iv & bm"


def binomial(name: str, subset: str, success: str) -> Task:
    return Task("clopper_pearson", name, "binom", subset, (success,))


COHORT_TASKS = [
    Task("km_median", "median_os_bm", "km", BM, ("os_months", "dead")),
    Task("km_median", "median_os_no_bm", "km", "stage_iv & !bm", ("os_months", "dead")),
    Task(
        "km_median",
        "median_months_to_morphologic_km",
        "km",
        f"{BM} & sstr_only",
        ("months_to_morphologic", "visible"),
    ),
    Task("reverse_km_followup", "median_followup_months", "km", "TRUE", ("os_months", "!dead")),
    Task("logrank", "test_os_logrank", "logrank", "stage_iv", ("os_months", "dead", "bm")),
    Task(
        "cox_crude", "crude", "cox", "stage_iv", ("os_months", "dead"), (("hr_os_bm_crude", "bm"),)
    ),
    Task(
        "cox_adjusted",
        "adjusted",
        "cox",
        "stage_iv & graded",
        ("os_months", "dead"),
        tuple(survival.ADJUSTED_TERMS.items()),
    ),
    Task("fisher", "test_functioning_bm", "fisher", "stage_iv", ("bm", "functioning")),
    Task("fisher", "test_sre_antiresorptive", "fisher", BM, ("antiresorptive", "sre")),
    binomial("prop_stage_iv", "TRUE", "stage_iv"),
    binomial("prop_bm", "stage_iv", "bm"),
    binomial("prop_male", "TRUE", "male"),
    binomial("prop_functioning", "TRUE", "functioning"),
    binomial("prop_functioning_bm", BM, "functioning"),
    binomial("prop_sstr_only", BM, "sstr_only"),
    *(binomial(f"prop_{kind}", BM, f"bm_type == '{kind}'") for kind in cohort_module.BM_TYPES),
    binomial("prop_sre", BM, "sre"),
    *(
        binomial(f"prop_sre_{kind}", f"{BM} & bm_type == '{kind}'", "sre")
        for kind in cohort_module.BM_TYPES
    ),
    binomial("prop_sre_antiresorptive", f"{BM} & antiresorptive", "sre"),
    binomial("prop_sre_no_antiresorptive", f"{BM} & !antiresorptive", "sre"),
]
# Section 5: the same comparisons within functioning and non-functioning stage IV tumours,
# and the model with the BM x functioning interaction. Terms without an estimate of their
# own are compared under the names `<model>:<covariate>`.
SUBGROUPS = {"functioning": "functioning", "nonfunctioning": "!functioning"}
OTHER_TERMS = tuple(list(survival.ADJUSTED_TERMS.values())[1:])
for name, condition in SUBGROUPS.items():
    COHORT_TASKS += [
        Task(
            "km_median", f"median_os_bm_{name}", "km", f"{BM} & {condition}", ("os_months", "dead")
        ),
        Task(
            "km_median",
            f"median_os_no_bm_{name}",
            "km",
            f"stage_iv & !bm & {condition}",
            ("os_months", "dead"),
        ),
        Task(
            "logrank",
            f"test_os_logrank_{name}",
            "logrank",
            f"stage_iv & {condition}",
            ("os_months", "dead", "bm"),
        ),
        Task(
            "cox_adjusted",
            f"adjusted_{name}",
            "cox",
            f"stage_iv & graded & {condition}",
            ("os_months", "dead"),
            (
                (f"hr_os_bm_adjusted_{name}", "bm"),
                *tuple((f"adjusted_{name}:{term}", term) for term in OTHER_TERMS),
            ),
        ),
    ]
COHORT_TASKS.append(
    Task(
        "cox_adjusted",
        "interaction",
        "cox",
        "stage_iv & graded",
        ("os_months", "dead"),
        (
            ("test_bm_functioning_interaction", survival.INTERACTION),
            *tuple((f"interaction:{term}", term) for term in ("bm", "functioning", *OTHER_TERMS)),
        ),
    )
)
# Estimates R is not asked for: counts, sample medians, and the PH test (survival 3's
# cox.zph is an exact score test, not the contract's Grambsch-Therneau approximation).
NOT_COMPARED = {
    "n_exported",
    "n_excluded_period",
    "n_excluded_age",
    "n_eligible",
    "n_stage_iv",
    "n_bm",
    "n_sre",
    "median_age_years",
    "median_months_to_morphologic",
    "test_ph_global",
}


def classic_tasks(group: str, adjusted: tuple[str, ...]) -> list[Task]:
    """lung and veteran: OS by `group` (coded 1/2; our `group` flag is code 2)."""
    return [
        Task("km_median", "median_group", "km", "group", ("time", "dead")),
        Task("km_median", "median_other", "km", "!group", ("time", "dead")),
        Task("reverse_km_followup", "median_followup", "km", "TRUE", ("time", "!dead")),
        Task("logrank", "logrank", "logrank", "TRUE", ("time", "dead", group)),
        Task("cox_crude", "crude", "cox", "TRUE", ("time", "dead"), (("hr_crude", group),)),
        Task(
            "cox_adjusted",
            "adjusted",
            "cox",
            "TRUE",
            ("time", "dead"),
            tuple((f"hr_{name}_adjusted", name) for name in adjusted),
        ),
        Task("fisher", "fisher_death_by_group", "fisher", "TRUE", ("group", "dead")),
        binomial("prop_dead", "TRUE", "dead"),
        binomial("prop_dead_group", "group", "dead"),
        binomial("prop_dead_other", "!group", "dead"),
    ]


QUANTITIES = sorted({task.quantity for task in COHORT_TASKS})


# --- the datasets ---------------------------------------------------------------------------

SIMULATED = {
    "n300_strong_bm_effect": (replace(scaled(SyntheticDesign(), 300), os_median_bm_months=60.0), 1),
    "n2000_weibull_1.2_hr_g3_4": (
        replace(scaled(SyntheticDesign(), 2000), os_weibull_shape=1.2, os_hr_g3=4.0),
        2,
    ),
    # none of its 3 G3 patients dies: the adjusted model has no MLE, neither in R nor here
    "n120_weibull_3_no_sex_effect": (
        replace(scaled(SyntheticDesign(), 120), os_weibull_shape=3.0, os_hr_male=1.0),
        3,
    ),
    "n600_weibull_1.5_hr_g2_2": (
        replace(scaled(SyntheticDesign(), 600), os_weibull_shape=1.5, os_hr_g2=2.0),
        4,
    ),
}
CLASSIC = {
    # lung: status 1 = censored, 2 = dead; sex 1 = male, 2 = female
    "lung": ("status", 2, "sex", ("age", "sex")),
    # veteran: status 1 = dead; trt 1 = standard, 2 = test chemotherapy
    "veteran": ("status", 1, "trt", ("trt", "karno", "age")),
}
DATASETS = ["default", *SIMULATED, *CLASSIC]


def endpoints_of(tables: dict[str, pd.DataFrame], folder: Path, config: dict) -> pd.DataFrame:
    """Export, validate and derive as the pipeline does."""
    write_exports(tables, folder)
    definitions = Definitions.from_config(config["definitions"])
    fmt = ingest.format_from_config(config)
    validation = ingest.validate_folder(folder, fmt, definitions, strict=False)
    assert not validation.has_errors, validation.findings.head()
    return derive_endpoints(validation.tables, Definitions.from_config(config["definitions"]))


def cohort(endpoints: pd.DataFrame) -> Dataset:
    """The pipeline's own rows for the contract's ids; R gets the eligible patients."""
    rows = cohort_module.cohort_estimates(endpoints, LEVEL) + survival.survival_estimates(
        endpoints, LEVEL
    )
    stage_iv = populations(endpoints)["stage_iv"].reset_index(drop=True)
    adjusted = list(survival.ADJUSTED_TERMS.values())
    fits = {  # the fits behind survival_estimates' rows, for their log-likelihoods
        "crude": estimators.fit_cox(stage_iv, ["bm"], "os_months", "dead", LEVEL),
        "adjusted": estimators.fit_cox(
            survival.cox_data(stage_iv), adjusted, "os_months", "dead", LEVEL
        ),
        "interaction": survival.interaction_cox(stage_iv, LEVEL),
    }
    for name, population in (("functioning", True), ("nonfunctioning", False)):
        group = stage_iv[stage_iv["functioning"] == population].reset_index(drop=True)
        fits[f"adjusted_{name}"] = estimators.fit_cox(
            survival.cox_data(group), adjusted, "os_months", "dead", LEVEL
        )
    for task in COHORT_TASKS:  # rows of the terms that have no estimate id of their own
        if task.kind == "cox":
            others = {e: c for e, c in task.terms if ":" in e}
            rows += results.term_rows(fits[task.name], others, "stage_iv", LEVEL, task.name)
    eligible = populations(endpoints)["all"]
    grade = eligible["grade"]
    data = eligible[
        [
            "os_months",
            "dead",
            "stage_iv",
            "bm",
            "age_years",
            "male",
            "functioning",
            "sstr_only",
            "months_to_morphologic",
            "bm_type",
            "antiresorptive",
            "sre",
        ]
    ].assign(
        graded=grade.notna(),
        g2=grade == "G2",
        g3=grade == "G3",
        visible=eligible["morphologic_visible"].fillna(False).astype(bool),
        **{survival.INTERACTION: eligible["bm"] & eligible["functioning"]},
    )
    return Dataset(data, COHORT_TASKS, {row["estimate"]: row for row in rows}, fits)


def classic(
    frame: pd.DataFrame, status: str, dead_code: int, group: str, adjusted: tuple[str, ...]
) -> Dataset:
    """Our generic functions on one of R's data sets, complete cases of the variables used."""
    data = frame[list(dict.fromkeys(["time", status, group, *adjusted]))].dropna()
    data = data.reset_index(drop=True)
    data = data.assign(dead=data[status] == dead_code, group=data[group] == 2).drop(columns=status)
    time, dead, flag = data["time"], data["dead"], data["group"]
    n = len(data)

    def km(name: str, durations: pd.Series, events: pd.Series) -> results.Row:
        return estimators.km_median(name, "all", durations, events, LEVEL)

    rows = [
        km("median_group", time[flag], dead[flag]),
        km("median_other", time[~flag], dead[~flag]),
        km("median_followup", time, ~dead),
        estimators.logrank("logrank", "all", time, dead, flag),
        estimators.fisher_odds_ratio(
            "fisher_death_by_group", "all", cohort_module.two_by_two(flag, dead), LEVEL, "death"
        ),
        estimators.proportion("prop_dead", "all", int(dead.sum()), n, LEVEL),
        estimators.proportion(
            "prop_dead_group", "all", int(dead[flag].sum()), int(flag.sum()), LEVEL
        ),
        estimators.proportion(
            "prop_dead_other", "all", int(dead[~flag].sum()), int((~flag).sum()), LEVEL
        ),
    ]
    fits = {
        "crude": estimators.fit_cox(data, [group], "time", "dead", LEVEL),
        "adjusted": estimators.fit_cox(data, list(adjusted), "time", "dead", LEVEL),
    }
    tasks = classic_tasks(group, adjusted)
    for task in tasks:
        if task.kind == "cox":
            rows += results.term_rows(fits[task.name], dict(task.terms), "all", LEVEL, task.name)
    return Dataset(data, tasks, {row["estimate"]: row for row in rows}, fits)


# --- R and the comparison -------------------------------------------------------------------


def rscript(*args: str | Path) -> None:
    result = subprocess.run([RSCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def write_for_r(frame: pd.DataFrame, path: Path) -> None:
    """Flags as 0/1; floats as C99 hex literals, which R reads bit for bit (read.csv rounds
    a few 17-digit decimals to the neighbouring double)."""
    out = frame.copy()
    for name, column in out.items():
        if pd.api.types.is_bool_dtype(column):
            out[name] = column.astype(int)
        elif pd.api.types.is_float_dtype(column):
            out[name] = [value.hex() if np.isfinite(value) else "" for value in column]
    out.to_csv(path, index=False)


def r_values(dataset: Dataset, folder: Path) -> dict[str, float | None]:
    write_for_r(dataset.data, folder / "data.csv")
    tasks = pd.DataFrame(
        [
            {"name": t.name, "kind": t.kind, "subset": t.subset, "variables": t.r_variables}
            for t in dataset.tasks
        ]
    )
    tasks.to_csv(folder / "tasks.csv", index=False)
    rscript(R_DIR / "reference.R", folder / "data.csv", folder / "tasks.csv", folder / "r.csv")
    out = pd.read_csv(folder / "r.csv", dtype=str, keep_default_na=False)
    return {name: None if text == "NA" else float(text) for name, text in out.to_numpy()}


ROW_FIELDS = {
    "km": {"median": "value", "lower": "ci_lower", "upper": "ci_upper"},
    "logrank": {"chisq": "value", "p": "p_value"},
    "fisher": {"estimate": "value", "lower": "ci_lower", "upper": "ci_upper", "p": "p_value"},
    "binom": {"estimate": "value", "lower": "ci_lower", "upper": "ci_upper"},
    "cox": {"hr": "value", "lower": "ci_lower", "upper": "ci_upper", "p": "p_value"},
}
COX_FIELDS = ("coef", *ROW_FIELDS["cox"])


def our_values(task: Task, dataset: Dataset) -> dict[str, object]:
    """Our numbers under R's names for them (`<field>`, or `<covariate>.<field>` for Cox)."""
    if task.kind != "cox":
        row = dataset.rows[task.name]
        return {field: row[column] for field, column in ROW_FIELDS[task.kind].items()}
    fitter = dataset.fits[task.name].fitter
    if fitter is None:  # no estimates (e.g. an infinite coefficient): R must have none either
        return {"loglik": None} | {f"{c}.{f}": None for _, c in task.terms for f in COX_FIELDS}
    values: dict[str, object] = {"loglik": fitter.log_likelihood_}
    for estimate, covariate in task.terms:
        values[f"{covariate}.coef"] = fitter.params_.get(covariate)
        row = dataset.rows[estimate]
        values |= {f"{covariate}.{f}": row[c] for f, c in ROW_FIELDS["cox"].items()}
    return values


def tolerance(kind: str, field: str) -> Tolerance:
    if kind == "km":
        return TIME
    return P_VALUE if field.split(".")[-1] == "p" else ESTIMATE


def compare(dataset: Dataset, reference: dict[str, float | None]) -> list[Comparison]:
    return [
        Comparison(
            task.quantity,
            f"{task.name}.{field}",
            None if value is None or np.isnan(value) else float(value),
            reference[f"{task.name}.{field}"],
            tolerance(task.kind, field),
        )
        for task in dataset.tasks
        for field, value in our_values(task, dataset).items()
    ]


@pytest.fixture(scope="module")
def classic_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("classic")
    rscript(R_DIR / "classic.R", folder)
    return folder


@pytest.fixture(scope="module", params=DATASETS)
def compared(
    request: pytest.FixtureRequest,
    config: dict,
    classic_exports: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Comparison]:
    """Every comparison on one dataset: one simulation (or R export) and one Rscript run."""
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    if name == "default":
        design = design_from_config(config["synthetic"])
        tables = simulate_cohort(design, config["synthetic"]["seed"])
        dataset = cohort(endpoints_of(tables, folder / "exports", config))
    elif name in SIMULATED:
        design, seed = SIMULATED[name]
        dataset = cohort(endpoints_of(simulate_cohort(design, seed), folder / "exports", config))
    else:
        frame = pd.read_csv(classic_exports / f"{name}.csv")
        dataset = classic(frame, *CLASSIC[name])
    return compare(dataset, r_values(dataset, folder))


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_matches_r(compared: list[Comparison], quantity: str) -> None:
    """Every number of this quantity on this dataset agrees with R within tolerance."""
    selected = [c for c in compared if c.quantity == quantity]
    assert selected, f"nothing compared for {quantity}"
    disagreeing = [str(c) for c in selected if not c.agrees]
    assert not disagreeing, "\n".join(disagreeing)


def test_every_contract_estimate_r_can_compute_is_compared(
    tiny: ingest.Validation, config: dict
) -> None:
    """A new KM, Cox, Fisher or proportion estimate in the pipeline gets its R counterpart."""
    endpoints = derive_endpoints(tiny.tables, Definitions.from_config(config["definitions"]))
    rows = cohort_module.cohort_estimates(endpoints, LEVEL) + survival.survival_estimates(
        endpoints, LEVEL
    )
    compared = {t.name for t in COHORT_TASKS if t.kind != "cox"}
    compared |= {estimate for t in COHORT_TASKS for estimate, _ in t.terms}
    assert {row["estimate"] for row in rows} - compared == NOT_COMPARED


# --- section 4: the sensitivity estimates against R -----------------------------------------
#
# One Rscript run (tests/r/sensitivity.R) per dataset fits R's coxph on our counting-process
# data and on intervals R builds itself (survival::tmerge) from the per-patient data, the
# landmark models, survival's restricted means and the multi-state survfit (Aalen-Johansen)
# curves. The intervals R builds are compared with ours cell by cell, and the R curves with
# ours at every time of R's curve.

# Aalen-Johansen values are sums of products of the same counts in another order.
CIF = Tolerance(relative=1e-9, absolute=1e-12)
# Counts, interval bounds and flags are copies of the data: they must be equal.
EXACT = Tolerance()


@dataclass(frozen=True)
class SensitivityData:
    """Section 4's inputs: stage IV patients (os_months, dead, bm, bm_months, age_years, male,
    grade) and the SRE times from the BM date (sensitivity.sre_times' columns), either may be
    absent; `rows` are our section 4 rows by estimate id."""

    stage_iv: pd.DataFrame | None
    sre: pd.DataFrame | None
    settings: sensitivity.SensitivitySettings
    rows: dict[str, results.Row]

    @property
    def sre_model(self) -> bool:
        return "hr_sre_antiresorptive_timedep" in self.rows


COX_ROW_FIELDS = {"hr": "value", "lower": "ci_lower", "upper": "ci_upper", "p": "p_value"}
ARMS = {1: "antiresorptive", 0: "no_antiresorptive"}


def sensitivity_settings(config: dict) -> sensitivity.SensitivitySettings:
    return sensitivity.SensitivitySettings(
        landmarks_months=tuple(config["sensitivity"]["landmarks_months"]),
        rmst_horizon_months=config["sensitivity"]["rmst_horizon_months"],
        cif_months=tuple(config["sensitivity"]["cif_months"]),
        days_per_month=config["definitions"]["days_per_month"],
    )


def compared_ids(settings: sensitivity.SensitivitySettings) -> set[str]:
    """The section 4 estimate ids whose numbers our_sensitivity_values hands to R."""
    ids = set(sensitivity.TIMEDEP_TERMS) | {"rmst_os_bm", "rmst_os_no_bm", "rmst_os_diff"}
    for m in settings.landmarks_months:
        ids |= {f"n_landmark_{m:g}", f"hr_os_bm_landmark_{m:g}"}
    ids |= {f"cif_sre_{m:g}_{arm}" for m in settings.cif_months for arm in ARMS.values()}
    return ids | {"hr_sre_antiresorptive_timedep"}


def time_varying_values(
    fit: estimators.TimeVaryingFit, rows: dict[str, results.Row], terms: dict[str, str]
) -> dict[str, float | None]:
    """A counting-process Cox model under cox.R's names; all None where we have no model."""
    fitter = fit.fitter
    values: dict[str, float | None] = {"loglik": fitter.log_likelihood_ if fitter else None}
    for estimate, covariate in terms.items():
        values[f"{covariate}.coef"] = fitter.params_[covariate] if fitter else None
        values |= {f"{covariate}.{f}": rows[estimate][c] for f, c in COX_ROW_FIELDS.items()}
    return values


def prefixed(prefix: str, values: dict[str, float | None]) -> dict[str, float | None]:
    return {f"{prefix}.{name}": value for name, value in values.items()}


def our_sensitivity_values(data: SensitivityData) -> dict[str, float | None]:
    """Our numbers under sensitivity.R's names for them."""
    rows, settings, values = data.rows, data.settings, {}
    if data.stage_iv is not None:
        intervals = sensitivity.bm_intervals(data.stage_iv)
        terms = sensitivity.TIMEDEP_TERMS
        fit = estimators.fit_time_varying(intervals, list(terms.values()), "dead", LEVEL)
        model = time_varying_values(fit, rows, terms)
        values |= prefixed("timedep", model) | prefixed("timedep_r", model)
        values["timedep_r.patients"] = rows["hr_os_bm_timedep"]["n"]
        for m in settings.landmarks_months:
            row = rows[f"hr_os_bm_landmark_{m:g}"]
            values[f"landmark_{m:g}.n"] = rows[f"n_landmark_{m:g}"]["value"]
            values |= {f"landmark_{m:g}.bm_landmark.{f}": row[c] for f, c in COX_ROW_FIELDS.items()}
        for group, estimate in ((1, "rmst_os_bm"), (0, "rmst_os_no_bm")):
            row = rows[estimate]
            patients = data.stage_iv[data.stage_iv["bm"] == bool(group)]
            _, se = estimators.rmst(
                patients["os_months"], patients["dead"].astype(bool), settings.rmst_horizon_months
            )
            values |= prefixed(
                f"rmst.{group}",
                {
                    "n": row["n"],
                    "rmean": row["value"],
                    "se": se,
                    "lower": row["ci_lower"],
                    "upper": row["ci_upper"],
                },
            )
        row = rows["rmst_os_diff"]
        values |= {"rmst.diff.estimate": row["value"]}
        values |= {"rmst.diff.lower": row["ci_lower"], "rmst.diff.upper": row["ci_upper"]}
    if data.sre is not None:
        for arm, label in ARMS.items():
            for m in settings.cif_months:
                row = rows[f"cif_sre_{m:g}_{label}"]
                values[f"cif.{arm}.{m:g}"] = row["value"]
                values[f"cif.{arm}.n"] = row["n"]
    if data.sre_model:
        terms = {"hr_sre_antiresorptive_timedep": "exposed"}
        intervals = sensitivity.exposure_intervals(data.sre)
        computable = rows["hr_sre_antiresorptive_timedep"]["value"] is not None
        fit = (
            estimators.fit_time_varying(intervals, ["exposed"], "event", LEVEL)
            if computable
            else estimators.TimeVaryingFit(None, 0, "not computable")
        )
        model = time_varying_values(fit, rows, terms)
        values |= prefixed("sre_timedep", model) | prefixed("sre_timedep_r", model)
        values["sre_timedep_r.patients"] = rows["hr_sre_antiresorptive_timedep"]["n"]
    return values


SENSITIVITY_QUANTITIES = {  # R's name prefix: the quantity compared
    "timedep": "timedep_cox",
    "timedep_r": "timedep_cox_on_r_intervals",
    "landmark": "landmark_cox",
    "rmst": "rmst",
    "cif": "cif",
    "sre_timedep": "sre_timedep_cox",
    "sre_timedep_r": "sre_timedep_cox_on_r_intervals",
}


def sensitivity_tolerance(name: str) -> Tolerance:
    field = name.split(".")[-1]
    if field in ("n", "patients"):
        return EXACT
    if name.startswith("cif."):
        return CIF
    return P_VALUE if field == "p" else ESTIMATE


def value_comparisons(
    ours: dict[str, float | None], reference: dict[str, float | None]
) -> list[Comparison]:
    comparisons = []
    for name, value in ours.items():
        prefix = name.split(".")[0]
        quantity = SENSITIVITY_QUANTITIES["landmark" if prefix.startswith("landmark_") else prefix]
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        comparisons.append(
            Comparison(
                quantity,
                name,
                None if missing else float(value),
                reference[name],
                sensitivity_tolerance(name),
            )
        )
    return comparisons


def interval_comparisons(
    quantity: str, ours: pd.DataFrame, r: pd.DataFrame, columns: list[str]
) -> list[Comparison]:
    """Cell by cell, intervals matched by patient and start; one missing on a side fails."""
    merged = (
        ours[["id", "start", *columns]]
        .astype(float)
        .merge(r[["id", "start", *columns]], on=["id", "start"], how="outer", suffixes=("", "_r"))
    )
    return [
        Comparison(
            quantity,
            f"patient {line['id']:g} from {float(line['start'])!r}: {column}",
            None if np.isnan(line[column]) else line[column],
            None if np.isnan(line[f"{column}_r"]) else line[f"{column}_r"],
            EXACT,
        )
        for _, line in merged.iterrows()
        for column in columns
    ]


def curve_comparisons(sre: pd.DataFrame, curves: pd.DataFrame) -> list[Comparison]:
    """Our Aalen-Johansen steps at every time of R's curve, and our numbers at risk."""
    comparisons = []
    for arm, label in ARMS.items():
        group = sre[sre["antiresorptive"] == bool(arm)]
        r_curve = curves[curves["arm"] == arm]
        if group.empty:
            comparisons.append(Comparison("cif_curve", f"{label}: times", 0, len(r_curve), EXACT))
            continue
        for cause in (1, 2):
            ours = estimators.aalen_johansen(
                group["time"].to_numpy(), group["cause"].to_numpy(), of=cause
            )
            comparisons += [
                Comparison(
                    "cif_curve",
                    f"{label}: CIF of cause {cause} at {float(time)!r}",
                    sensitivity.cif_at(ours, time, np.inf),
                    r_value,
                    CIF,
                )
                for time, r_value in zip(r_curve["time"], r_curve[f"cif_{cause}"], strict=True)
            ]
        at_risk = dict(zip(r_curve["time"], r_curve["n_risk"], strict=True))
        comparisons += [
            Comparison(
                "cif_curve",
                f"{label}: at risk at {float(time)!r}",
                float(n),
                at_risk.get(time),
                EXACT,
            )
            for time, n in zip(ours["time"], ours["at_risk"], strict=True)
        ]
    return comparisons


def r_sensitivity(data: SensitivityData, folder: Path) -> dict[str, object]:
    """One Rscript run: R's values, the intervals R built, and R's CIF curves."""
    settings = data.settings
    pd.DataFrame(
        {
            "name": ["landmarks", "horizon", "cif_times"],
            "value": [
                ";".join(f"{m!r}" for m in map(float, settings.landmarks_months)),
                repr(float(settings.rmst_horizon_months)),
                ";".join(f"{m!r}" for m in map(float, settings.cif_months)),
            ],
        }
    ).to_csv(folder / "settings.csv", index=False)
    if data.stage_iv is not None:
        columns = ["os_months", "dead", "bm", "bm_months", "age_years", "male", "grade"]
        write_for_r(data.stage_iv[columns], folder / "patients.csv")
        write_for_r(sensitivity.bm_intervals(data.stage_iv), folder / "intervals.csv")
    if data.sre is not None:
        write_for_r(
            data.sre[["time", "cause", "antiresorptive", "exposure_start"]], folder / "sre.csv"
        )
    if data.sre_model:
        write_for_r(sensitivity.exposure_intervals(data.sre), folder / "exposure.csv")
    rscript(R_DIR / "sensitivity.R", folder)
    out = pd.read_csv(folder / "r.csv", dtype=str, keep_default_na=False)
    result: dict[str, object] = {
        "values": {name: None if text == "NA" else float(text) for name, text in out.to_numpy()}
    }
    for name in ("r_intervals", "r_exposure", "r_curves"):
        if (folder / f"{name}.csv").exists():
            result[name] = pd.read_csv(
                folder / f"{name}.csv", dtype=float, float_precision="round_trip"
            )
    return result


def compare_sensitivity(data: SensitivityData, r: dict[str, object]) -> list[Comparison]:
    comparisons = value_comparisons(our_sensitivity_values(data), r["values"])
    if data.stage_iv is not None:
        comparisons += interval_comparisons(
            "timedep_intervals",
            sensitivity.bm_intervals(data.stage_iv),
            r["r_intervals"],
            ["stop", "dead", "bm", "age_years", "male", "g2", "g3"],
        )
    if data.sre is not None:
        comparisons += curve_comparisons(data.sre, r["r_curves"])
    if data.sre_model:
        comparisons += interval_comparisons(
            "exposure_intervals",
            sensitivity.exposure_intervals(data.sre),
            r["r_exposure"],
            ["stop", "event", "exposed"],
        )
    return comparisons


# --- section 4: the datasets ----------------------------------------------------------------

VETERAN_GRADES = {"squamous": "G1", "large": "G1", "smallcell": "G2", "adeno": "G3"}


def cohort_sensitivity(
    endpoints: pd.DataFrame, settings: sensitivity.SensitivitySettings
) -> SensitivityData:
    """The pipeline's section 4 rows; R gets the stage IV patients and the SRE times."""
    pop = populations(endpoints)
    rows = sensitivity.sensitivity_estimates(endpoints, settings, LEVEL)
    stage_iv = pop["stage_iv"].reset_index(drop=True)
    sre = sensitivity.sre_times(pop["bm"].reset_index(drop=True), settings.days_per_month)
    return SensitivityData(stage_iv, sre, settings, {row["estimate"]: row for row in rows})


def sre_under_exposure(sre: pd.DataFrame) -> pd.DataFrame:
    """SREs under antiresorptive exposure, which the simulation never makes: every other
    patient with an SRE and no antiresorptive therapy gets a first start at a multiple of
    their time (before the BM date, on it, while at risk, on the SRE date, after it)."""
    flipped = sre.index[(sre["cause"] == 1) & ~sre["antiresorptive"]][::2]
    factors = np.resize([-0.5, 0.0, 0.3, 0.7, 1.0, 1.5], len(flipped))
    out = sre.copy()
    out.loc[flipped, "antiresorptive"] = True
    out.loc[flipped, "exposure_start"] = out.loc[flipped, "time"] * factors
    return out


def veteran_sensitivity(frame: pd.DataFrame) -> SensitivityData:
    """veteran on the stage IV columns, times in days: 'BM' = the test chemotherapy (trt 2),
    switching on 10 * (diagtime - 3) days from time 0, an artificial time-dependent covariate
    that switches before time 0, on it, during follow-up and after its end; 'male' = prior
    therapy; 'grade' from the cell type. RMST by trt up to 400 days."""
    test_arm = frame["trt"] == 2
    stage_iv = pd.DataFrame(
        {
            "os_months": frame["time"].astype(float),
            "dead": frame["status"] == 1,
            "bm": test_arm,
            "bm_months": np.where(test_arm, 10.0 * (frame["diagtime"] - 3), np.nan),
            "age_years": frame["age"].astype(float),
            "male": frame["prior"] == 10,
            "grade": frame["celltype"].map(VETERAN_GRADES),
        }
    )
    settings = sensitivity.SensitivitySettings((30, 90, 180), 400, (), 1.0)
    rows = sensitivity.time_dependent_bm(stage_iv, LEVEL)
    for days in settings.landmarks_months:
        rows += sensitivity.landmark(stage_iv, days, LEVEL)
    rows += sensitivity.rmst_rows(stage_iv, settings.rmst_horizon_months)
    return SensitivityData(stage_iv, None, settings, {row["estimate"]: row for row in rows})


def mgus2_sensitivity(frame: pd.DataFrame) -> SensitivityData:
    """mgus2 as in survival's competing-risks vignette: progression to a plasma cell
    malignancy (cause 1) or death first (cause 2), months from diagnosis, by sex ('arm' 1 =
    male). 424 months is the men's last follow-up and after the women's: their CIF there is
    empty, and R's summary(extend = FALSE) leaves that time out."""
    progressed = frame["pstat"] == 1
    sre = pd.DataFrame(
        {
            "time": np.where(progressed, frame["ptime"], frame["futime"]).astype(float),
            "cause": np.where(progressed, 1, 2 * frame["death"]),
            "antiresorptive": frame["sex"] == "M",
            "exposure_start": np.nan,
        }
    )
    settings = sensitivity.SensitivitySettings((), 0, (60, 120, 240, 360, 424), 1.0)
    rows = sensitivity.cif_rows(sre, settings.cif_months)
    return SensitivityData(None, sre, settings, {row["estimate"]: row for row in rows})


STAGE_IV_QUANTITIES = [
    "timedep_intervals",
    "timedep_cox",
    "timedep_cox_on_r_intervals",
    "landmark_cox",
    "rmst",
]
SRE_QUANTITIES = ["cif", "cif_curve"]
SRE_MODEL_QUANTITIES = ["exposure_intervals", "sre_timedep_cox", "sre_timedep_cox_on_r_intervals"]
SENSITIVITY_DATASETS = {
    **dict.fromkeys(
        ["default", *SIMULATED], STAGE_IV_QUANTITIES + SRE_QUANTITIES + SRE_MODEL_QUANTITIES
    ),
    "n2000_sre_under_exposure": SRE_QUANTITIES + SRE_MODEL_QUANTITIES,
    "veteran": STAGE_IV_QUANTITIES,
    "mgus2": SRE_QUANTITIES,
}


@dataclass(frozen=True)
class SensitivityResult:
    data: SensitivityData
    r: dict[str, float | None]
    comparisons: list[Comparison]


@pytest.fixture(scope="module")
def sensitivity_results(
    config: dict, classic_exports: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], SensitivityResult]:
    """Each dataset's section 4 comparisons, computed (one Rscript run) when first asked for."""
    settings = sensitivity_settings(config)
    cache: dict[str, SensitivityResult] = {}

    def simulated(design: SyntheticDesign, seed: int, folder: Path) -> SensitivityData:
        endpoints = endpoints_of(simulate_cohort(design, seed), folder / "exports", config)
        return cohort_sensitivity(endpoints, settings)

    def result(name: str) -> SensitivityResult:
        if name in cache:
            return cache[name]
        folder = tmp_path_factory.mktemp(f"sensitivity_{name}")
        if name == "default":
            design = design_from_config(config["synthetic"])
            data = simulated(design, config["synthetic"]["seed"], folder)
        elif name in SIMULATED:
            data = simulated(*SIMULATED[name], folder)
        elif name == "n2000_sre_under_exposure":
            sre = sre_under_exposure(simulated(*SIMULATED["n2000_weibull_1.2_hr_g3_4"], folder).sre)
            rows = sensitivity.cif_rows(sre, settings.cif_months)
            rows.append(sensitivity.sre_antiresorptive_timedep(sre, LEVEL))
            data = SensitivityData(None, sre, settings, {row["estimate"]: row for row in rows})
        elif name == "veteran":
            data = veteran_sensitivity(pd.read_csv(classic_exports / "veteran.csv"))
        else:
            data = mgus2_sensitivity(pd.read_csv(classic_exports / "mgus2.csv"))
        r = r_sensitivity(data, folder)
        cache[name] = SensitivityResult(data, r["values"], compare_sensitivity(data, r))
        return cache[name]

    return result


# Genuine disagreements with R, explained. Each is reported as an expected failure as long
# as it disagrees, and fails the test once it agrees (so that its entry is removed); any
# other disagreement fails.
@pytest.mark.parametrize(
    ("dataset", "quantity"),
    [
        (name, quantity)
        for name, quantities in SENSITIVITY_DATASETS.items()
        for quantity in quantities
    ],
)
def test_sensitivity_matches_r(
    sensitivity_results: Callable[[str], SensitivityResult], dataset: str, quantity: str
) -> None:
    """Every section 4 number of this quantity on this dataset agrees with R."""
    compared = sensitivity_results(dataset).comparisons
    assert {c.quantity for c in compared} == set(SENSITIVITY_DATASETS[dataset])
    selected = [c for c in compared if c.quantity == quantity]
    assert selected, f"nothing compared for {quantity}"
    disagreeing = [str(c) for c in selected if not c.agrees]
    assert not disagreeing, "\n".join(disagreeing)


def test_sre_model_has_a_finite_estimate_exactly_where_r_has_one(
    sensitivity_results: Callable[[str], SensitivityResult],
) -> None:
    """The default cohort has no SRE under antiresorptive exposure: R's partial likelihood
    rises towards a coefficient of -inf ('may be infinite'), and the contract leaves the
    estimate empty. With SREs under exposure both sides have one."""
    default = sensitivity_results("default")
    row = default.data.rows["hr_sre_antiresorptive_timedep"]
    assert row["value"] is None and "no SRE with antiresorptive exposure" in row["method"]
    for prefix in ("sre_timedep", "sre_timedep_r"):
        assert default.r[f"{prefix}.loglik"] is None  # NA only where R warned "infinite"
        assert default.r[f"{prefix}.exposed.hr"] is None
    exposed = sensitivity_results("n2000_sre_under_exposure")
    assert exposed.data.rows["hr_sre_antiresorptive_timedep"]["value"] is not None
    assert exposed.r["sre_timedep.exposed.hr"] is not None


def test_every_section_4_estimate_is_compared(tiny: ingest.Validation, config: dict) -> None:
    """A new sensitivity estimate in the pipeline gets its R counterpart."""
    endpoints = derive_endpoints(tiny.tables, Definitions.from_config(config["definitions"]))
    settings = sensitivity_settings(config)
    rows = sensitivity.sensitivity_estimates(endpoints, settings, LEVEL)
    assert {row["estimate"] for row in rows} == compared_ids(settings)
