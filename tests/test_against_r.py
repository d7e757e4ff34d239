"""sinet_bm.models against R, whose survival package biostatisticians trust.

Each dataset's per-patient data go to one Rscript run (tests/r/reference.R) that computes the
same quantities with survfit (log-log band, quantile.survfit's median rule), survdiff, coxph
(Efron ties) and fisher.test (both run to full precision: see reference.R) and binom.test;
every number is then compared with ours. Datasets: the default synthetic cohort, four
simulated cohorts of other sizes and truths, and R's own classic data sets lung and veteran,
exported by R during the test.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sinet_bm import checks, ingest, models
from sinet_bm.endpoints import derive_endpoints, rules_from_config
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
        return f"relative {self.relative:g}" if self.relative else f"absolute {self.absolute:g}"


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
    rows: dict[str, models.Row]
    fits: dict[str, models.CoxFit]


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
        tuple(models.ADJUSTED_TERMS.items()),
    ),
    Task("fisher", "test_functioning_bm", "fisher", "stage_iv", ("bm", "functioning")),
    Task("fisher", "test_sre_antiresorptive", "fisher", BM, ("antiresorptive", "sre")),
    binomial("prop_stage_iv", "TRUE", "stage_iv"),
    binomial("prop_bm", "stage_iv", "bm"),
    binomial("prop_male", "TRUE", "male"),
    binomial("prop_functioning", "TRUE", "functioning"),
    binomial("prop_functioning_bm", BM, "functioning"),
    binomial("prop_sstr_only", BM, "sstr_only"),
    *(binomial(f"prop_{kind}", BM, f"bm_type == '{kind}'") for kind in models.BM_TYPES),
    binomial("prop_sre", BM, "sre"),
    *(
        binomial(f"prop_sre_{kind}", f"{BM} & bm_type == '{kind}'", "sre")
        for kind in models.BM_TYPES
    ),
    binomial("prop_sre_antiresorptive", f"{BM} & antiresorptive", "sre"),
    binomial("prop_sre_no_antiresorptive", f"{BM} & !antiresorptive", "sre"),
]
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
    rules = checks.definitions_from_config(config["definitions"])
    fmt = ingest.format_from_config(config)
    validation = ingest.validate_folder(folder, REPO / "schemas", fmt, rules, strict=False)
    assert not validation.has_errors, validation.findings.head()
    return derive_endpoints(validation.tables, rules_from_config(config["definitions"]))


def cohort(endpoints: pd.DataFrame) -> Dataset:
    """The pipeline's own rows for the contract's ids; R gets the eligible patients."""
    rows = models.cohort_estimates(endpoints, LEVEL) + models.survival_estimates(endpoints, LEVEL)
    stage_iv = models.populations(endpoints)["stage_iv"].reset_index(drop=True)
    adjusted = list(models.ADJUSTED_TERMS.values())
    fits = {  # the fits behind survival_estimates' rows, for their log-likelihoods
        "crude": models.fit_cox(stage_iv, ["bm"], "os_months", "dead", LEVEL),
        "adjusted": models.fit_cox(models.cox_data(stage_iv), adjusted, "os_months", "dead", LEVEL),
    }
    eligible = models.populations(endpoints)["all"]
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

    def km(name: str, durations: pd.Series, events: pd.Series) -> models.Row:
        return models.km_median(name, "all", durations, events, LEVEL)

    rows = [
        km("median_group", time[flag], dead[flag]),
        km("median_other", time[~flag], dead[~flag]),
        km("median_followup", time, ~dead),
        models.logrank("logrank", "all", time, dead, flag),
        models.fisher_odds_ratio(
            "fisher_death_by_group", "all", models.two_by_two(flag, dead), LEVEL, "death"
        ),
        models.proportion("prop_dead", "all", int(dead.sum()), n, LEVEL),
        models.proportion("prop_dead_group", "all", int(dead[flag].sum()), int(flag.sum()), LEVEL),
        models.proportion(
            "prop_dead_other", "all", int(dead[~flag].sum()), int((~flag).sum()), LEVEL
        ),
    ]
    fits = {
        "crude": models.fit_cox(data, [group], "time", "dead", LEVEL),
        "adjusted": models.fit_cox(data, list(adjusted), "time", "dead", LEVEL),
    }
    tasks = classic_tasks(group, adjusted)
    for task in tasks:
        if task.kind == "cox":
            rows += models.cox_rows(fits[task.name], dict(task.terms), "all", LEVEL, task.name)
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
    endpoints = derive_endpoints(tiny.tables, rules_from_config(config["definitions"]))
    rows = models.cohort_estimates(endpoints, LEVEL) + models.survival_estimates(endpoints, LEVEL)
    compared = {t.name for t in COHORT_TASKS if t.kind != "cox"}
    compared |= {estimate for t in COHORT_TASKS for estimate, _ in t.terms}
    assert {row["estimate"] for row in rows} - compared == NOT_COMPARED
