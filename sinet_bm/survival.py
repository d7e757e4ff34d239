"""Overall survival by BM status (docs/estimates.md, sections 3 and 5).

Section 3: in stage IV, Kaplan–Meier medians, the log-rank test, Cox models crude and
adjusted for age, sex and grade, and the proportional-hazards check. Section 5, the paper's
title claim ("especially in functioning tumours"): the same comparison within functioning
and non-functioning tumours, and the BM × functioning interaction in one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sinet_bm.endpoints import populations, stage_iv_of
from sinet_bm.estimators import (
    CoxFit,
    StoredCox,
    fit_cox,
    global_test,
    km_median,
    logrank,
    schoenfeld_tests,
)
from sinet_bm.results import Row, row, term_rows

ADJUSTED_TERMS = {
    "hr_os_bm_adjusted": "bm",
    "hr_os_age_adjusted": "age_years",
    "hr_os_male_adjusted": "male",
    "hr_os_g2_adjusted": "g2",
    "hr_os_g3_adjusted": "g3",
}
ADJUSTED = "Cox adjusted for age, sex and grade (complete cases)"
# Section 5: the subgroups by functioning status, and their population names.
SUBGROUPS = {"functioning": True, "nonfunctioning": False}
INTERACTION = "bm_x_functioning"
# The endpoints' columns these analyses read: a registry's full table takes 0.6 GB and
# seconds to read, these a tenth of it.
COLUMNS = (
    "eligible",
    "stage_iv",
    "functioning",
    "bm",
    "os_months",
    "dead",
    "age_years",
    "male",
    "grade",
)


def cox_data(stage_iv: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Model frame: OS, BM, age per year, male, G2 and G3 against G1; complete cases."""
    columns = ["os_months", "dead", "bm", "age_years", "male", "grade", *keep]
    data = stage_iv[columns].copy()
    data = data[data["grade"].notna()]
    data["g2"] = data["grade"] == "G2"
    data["g3"] = data["grade"] == "G3"
    return data.drop(columns="grade").reset_index(drop=True)


def adjusted_model(stage_iv: pd.DataFrame, level: float, strata: Sequence[str] = ()) -> CoxFit:
    """OS on BM, age, sex and grade in the stage IV patients with a known grade."""
    terms = list(ADJUSTED_TERMS.values())
    data = cox_data(stage_iv, strata)
    return fit_cox(data, terms, "os_months", "dead", level, strata)


def stratified_rows(stage_iv: pd.DataFrame, level: float) -> list[Row]:
    """Section 6, where rows are pooled: the crude and adjusted models with one baseline
    hazard per centre, so that a centre's own survival does not pass for an effect of BM."""
    strata = ["centre"]
    crude = fit_cox(stage_iv, ["bm"], "os_months", "dead", level, strata)
    rows = term_rows(
        crude,
        {"hr_os_bm_crude_stratified": "bm"},
        "stage_iv",
        level,
        "Cox, BM only, stratified by centre",
    )
    adjusted = adjusted_model(stage_iv, level, strata)
    return rows + term_rows(
        adjusted,
        {"hr_os_bm_adjusted_stratified": "bm"},
        "stage_iv",
        level,
        f"{ADJUSTED}, stratified by centre",
    )


def model_record(fit: CoxFit) -> dict[str, object]:
    """A fitted model as JSON: its terms, coefficients and their covariance, or why it has
    none. The residual figure reads the adjusted model from it instead of refitting it."""
    if fit.fitter is None:
        return {"terms": [], "coefficients": [], "variance": [], "failure": fit.failure}
    return {
        "terms": list(fit.fitter.params_.index),
        "coefficients": fit.fitter.params_.tolist(),
        "variance": fit.fitter.variance_matrix_.to_numpy().tolist(),
        "failure": "",
    }


def stored_adjusted_model(record: Mapping[str, Any], stage_iv: pd.DataFrame) -> CoxFit:
    """The adjusted model of `model_record` on its data, as `adjusted_model` fitted it."""
    terms = list(record["terms"])
    frame = cox_data(stage_iv)[["os_months", "dead", *terms]].astype(float)
    fitter = (
        StoredCox(
            pd.Series(record["coefficients"], index=terms, dtype=float),
            pd.DataFrame(record["variance"], index=terms, columns=terms, dtype=float),
        )
        if terms
        else None
    )
    return CoxFit(fitter, frame, "os_months", "dead", {}, str(record["failure"]))


def ph_tests_table(fit: CoxFit) -> pd.DataFrame:
    """The PH check per covariate, for the report's appendix (empty if the model failed)."""
    if fit.fitter is None:
        return pd.DataFrame(columns=["term", "chi_square", "df", "p_value"])
    return schoenfeld_tests(fit)


def os_by_bm(stage_iv: pd.DataFrame, population: str, suffix: str, level: float) -> list[Row]:
    """KM medians of OS with and without BM, and the log-rank test between them."""
    time, dead, bm = stage_iv["os_months"], stage_iv["dead"].astype(bool), stage_iv["bm"]
    return [
        km_median(f"median_os_bm{suffix}", population, time[bm], dead[bm], level),
        km_median(f"median_os_no_bm{suffix}", population, time[~bm], dead[~bm], level),
        logrank(f"test_os_logrank{suffix}", population, time, dead, bm.astype(bool)),
    ]


@dataclass(frozen=True)
class SurvivalResults:
    """The rows of estimates.csv, and the adjusted model and its PH tests, fitted once for
    the rows, the appendix table and the residual figure."""

    rows: list[Row]
    adjusted: CoxFit
    ph_tests: pd.DataFrame


def survival_results(
    endpoints: pd.DataFrame, level: float, stratified: bool = False
) -> SurvivalResults:
    """Section 3's OS estimates in stage IV, then section 5's subgroups; for the union of
    several centres also the models stratified by centre."""
    stage_iv = stage_iv_of(endpoints)
    rows = os_by_bm(stage_iv, "stage_iv", "", level)
    crude = fit_cox(stage_iv, ["bm"], "os_months", "dead", level)
    rows += term_rows(crude, {"hr_os_bm_crude": "bm"}, "stage_iv", level, "Cox, BM only")
    adjusted = adjusted_model(stage_iv, level)
    rows += term_rows(adjusted, ADJUSTED_TERMS, "stage_iv", level, ADJUSTED)
    ph_tests = ph_tests_table(adjusted)
    rows.append(ph_test_row(adjusted, ph_tests))
    rows += subgroup_estimates(endpoints, level)
    if stratified:
        rows += stratified_rows(stage_iv, level)
    return SurvivalResults(rows, adjusted, ph_tests)


def survival_estimates(endpoints: pd.DataFrame, level: float) -> list[Row]:
    return survival_results(endpoints, level).rows


def ph_test_row(fit: CoxFit, ph_tests: pd.DataFrame) -> Row:
    """The global line of the PH tests as a row of estimates.csv."""
    if fit.fitter is None:
        return row(
            "test_ph_global",
            "stage_iv",
            fit.n,
            method=f"Schoenfeld global test: not computable, {fit.failure}",
        )
    statistic, p_value, df = global_test(ph_tests)
    return row(
        "test_ph_global",
        "stage_iv",
        fit.n,
        statistic,
        p_value=p_value,
        method=f"Grambsch-Therneau global test of scaled Schoenfeld residuals, KM-transformed "
        f"time; chi-square with {df} df",
    )


# ---------------------------------------------------------------------------------------
# section 5: BM and survival by functioning status


def subgroup_estimates(endpoints: pd.DataFrame, level: float) -> list[Row]:
    """Within functioning and non-functioning stage IV tumours: KM medians, log-rank and the
    adjusted BM hazard ratio; then the interaction of BM with functioning status."""
    pop = populations(endpoints)
    rows = []
    for name in SUBGROUPS:
        population = f"stage_iv_{name}"
        group = pop[population].reset_index(drop=True)
        rows += os_by_bm(group, population, f"_{name}", level)
        fit = fit_cox(cox_data(group), list(ADJUSTED_TERMS.values()), "os_months", "dead", level)
        what = f"{ADJUSTED}, {name} tumours only"
        rows += term_rows(fit, {f"hr_os_bm_adjusted_{name}": "bm"}, population, level, what)
    rows += term_rows(
        interaction_cox(pop["stage_iv"], level),
        {"test_bm_functioning_interaction": INTERACTION},
        "stage_iv",
        level,
        "Cox with BM, functioning and BM x functioning, adjusted for age, sex and grade "
        "(complete cases, functioning known): ratio of the BM hazard ratios, functioning over "
        "non-functioning",
    )
    return rows


def interaction_cox(stage_iv: pd.DataFrame, level: float) -> CoxFit:
    data = cox_data(stage_iv, keep=["functioning"])
    data = data[data["functioning"].notna()].reset_index(drop=True)
    data["functioning"] = data["functioning"].astype(bool)
    data[INTERACTION] = data["bm"] & data["functioning"]
    covariates = ["bm", "functioning", INTERACTION, *list(ADJUSTED_TERMS.values())[1:]]
    return fit_cox(data, covariates, "os_months", "dead", level)
