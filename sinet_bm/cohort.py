"""The cohort and its counts (docs/estimates.md, section 3): the flow from export to BM,
Table 1, and the proportions and Fisher tests of BM, their detection and type, and SREs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from sinet_bm.contract import categories
from sinet_bm.endpoints import populations
from sinet_bm.estimators import fisher_odds_ratio, km_median, proportion, sample_median
from sinet_bm.results import Row, count

BM_TYPES = categories("imaging", "lesion_type")
# The endpoints' columns these counts and Table 1 read.
COLUMNS = (
    "eligible",
    "exclusion_reason",
    "stage_iv",
    "functioning",
    "bm",
    "sex",
    "male",
    "age_years",
    "primary_site",
    "grade",
    "ki67_percent",
    "sstr_only",
    "morphologic_visible",
    "months_to_morphologic",
    "bm_type",
    "antiresorptive",
    "sre",
    "n_sre",
    "n_sre_before_bm",
    "n_sre_without_bm",
    "dead",
    "os_months",
)


def two_by_two(exposed: pd.Series, outcome: pd.Series) -> np.ndarray:
    """[[exposed & outcome, exposed & not], [unexposed & outcome, unexposed & not]]."""
    exposed, outcome = exposed.astype(bool), outcome.astype(bool)
    return np.array(
        [
            [(exposed & outcome).sum(), (exposed & ~outcome).sum()],
            [(~exposed & outcome).sum(), (~exposed & ~outcome).sum()],
        ]
    )


def cohort_estimates(endpoints: pd.DataFrame, level: float) -> list[Row]:
    """Counts, proportions and Fisher tests: cohort flow, BM, detection, type and SREs."""
    pop = populations(endpoints)
    exported, eligible, stage_iv, bm = pop["exported"], pop["all"], pop["stage_iv"], pop["bm"]
    n_exp, n_all, n_iv, n_bm = len(exported), len(eligible), len(stage_iv), len(bm)
    reasons = exported["exclusion_reason"]
    sstr_only = bm[bm["sstr_only"]]
    rows = [
        count("n_exported", "exported", n_exp, n_exp),
        count("n_excluded_period", "exported", int((reasons == "study_period").sum()), n_exp),
        count("n_excluded_age", "exported", int((reasons == "age").sum()), n_exp),
        count("n_eligible", "all", n_all, n_all),
        count("n_stage_iv", "all", n_iv, n_all),
        proportion("prop_stage_iv", "all", n_iv, n_all, level),
        count("n_bm", "stage_iv", n_bm, n_iv),
        proportion("prop_bm", "stage_iv", n_bm, n_iv, level),
        proportion("prop_male", "all", int(eligible["male"].sum()), n_all, level),
        sample_median("median_age_years", "all", eligible["age_years"]),
        proportion("prop_functioning", "all", int(eligible["functioning"].sum()), n_all, level),
        proportion("prop_functioning_bm", "bm", int(bm["functioning"].sum()), n_bm, level),
        fisher_odds_ratio(
            "test_functioning_bm",
            "stage_iv",
            two_by_two(stage_iv["bm"], stage_iv["functioning"]),
            level,
            "functioning, BM vs no BM",
        ),
        proportion("prop_sstr_only", "bm", len(sstr_only), n_bm, level),
        sample_median(
            "median_months_to_morphologic",
            "bm",
            sstr_only.loc[
                sstr_only["morphologic_visible"].fillna(False).astype(bool), "months_to_morphologic"
            ],
        ),
        km_median(
            "median_months_to_morphologic_km",
            "bm",
            sstr_only["months_to_morphologic"],
            sstr_only["morphologic_visible"].fillna(False).astype(bool),
            level,
            "Kaplan-Meier median among SSTR-only BM (never visible: censored at last exam)",
        ),
    ]
    rows += [
        proportion(f"prop_{kind}", "bm", int((bm["bm_type"] == kind).sum()), n_bm, level)
        for kind in BM_TYPES
    ]
    rows.append(
        km_median(
            "median_followup_months",
            "all",
            eligible["os_months"],
            ~eligible["dead"],
            level,
            "reverse Kaplan-Meier median follow-up (death censors)",
        )
    )
    rows += sre_estimates(bm, level)
    return rows


def sre_estimates(bm: pd.DataFrame, level: float) -> list[Row]:
    n_bm = len(bm)
    n_sre = int(bm["sre"].sum())
    rows = [count("n_sre", "bm", n_sre, n_bm), proportion("prop_sre", "bm", n_sre, n_bm, level)]
    for kind in BM_TYPES:
        group = bm[bm["bm_type"] == kind]
        rows.append(
            proportion(f"prop_sre_{kind}", "bm", int(group["sre"].sum()), len(group), level)
        )
    treated, untreated = bm[bm["antiresorptive"]], bm[~bm["antiresorptive"]]
    rows += [
        proportion("prop_sre_antiresorptive", "bm", int(treated["sre"].sum()), len(treated), level),
        proportion(
            "prop_sre_no_antiresorptive", "bm", int(untreated["sre"].sum()), len(untreated), level
        ),
        fisher_odds_ratio(
            "test_sre_antiresorptive",
            "bm",
            two_by_two(bm["antiresorptive"], bm["sre"]),
            level,
            "SRE, with vs without antiresorptive therapy",
        ),
    ]
    return rows


# ---------------------------------------------------------------------------------------
# Table 1


TABLE1_GROUPS = ("cohort", "bm", "no_bm")
TABLE1_CATEGORICAL = {
    "sex": list(categories("patients", "sex")),
    "primary_site": list(categories("patients", "primary_site")),
    "grade": list(categories("patients", "grade")),
    "functioning": ["yes", "no"],
}
TABLE1_CONTINUOUS = ("age_years", "ki67_percent")


def table1_groups(endpoints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    pop = populations(endpoints)
    stage_iv = pop["stage_iv"]
    return {
        "cohort": pop["all"],
        "bm": stage_iv[stage_iv["bm"]],
        "no_bm": stage_iv[~stage_iv["bm"]],
    }


def table1_values(frame: pd.DataFrame, variable: str) -> pd.Series:
    if variable == "functioning":
        return frame["functioning"].map({True: "yes", False: "no"})
    return frame[variable]


def continuous_rows(variable: str, groups: dict[str, pd.DataFrame]) -> list[dict]:
    """Median and IQR per group; Mann-Whitney U between stage IV with and without BM."""
    out: dict[str, object] = {"variable": variable, "level": "", "kind": "continuous"}
    for name, frame in groups.items():
        values = frame[variable]
        observed = values.dropna()
        out |= {
            f"{name}_n": len(observed),
            f"{name}_median": observed.median() if len(observed) else None,
            f"{name}_q1": observed.quantile(0.25) if len(observed) else None,
            f"{name}_q3": observed.quantile(0.75) if len(observed) else None,
            f"{name}_missing": int(values.isna().sum()),
        }
    bm, no_bm = groups["bm"][variable].dropna(), groups["no_bm"][variable].dropna()
    if len(bm) and len(no_bm):
        test = stats.mannwhitneyu(bm, no_bm, alternative="two-sided", method="asymptotic")
        out |= {"p_value": test.pvalue, "test": "Mann-Whitney U (normal approximation)"}
    return [out]


def categorical_rows(variable: str, levels: list[str], groups: dict[str, pd.DataFrame]) -> list:
    """Counts and column percentages per level; Fisher (2 levels) or chi-square, BM vs no BM."""
    rows = []
    values = {name: table1_values(frame, variable) for name, frame in groups.items()}
    for level in levels:
        out: dict[str, object] = {"variable": variable, "level": level, "kind": "categorical"}
        for name, series in values.items():
            known = int(series.notna().sum())
            n = int((series == level).sum())
            out |= {
                f"{name}_n": n,
                f"{name}_percent": 100 * n / known if known else None,
                f"{name}_missing": int(series.isna().sum()),
            }
        rows.append(out)
    crosstab = np.array(
        [[int((values[g] == level).sum()) for level in levels] for g in ("bm", "no_bm")]
    )
    crosstab = crosstab[:, crosstab.sum(axis=0) > 0]
    if crosstab.shape[1] >= 2 and (crosstab.sum(axis=1) > 0).all():
        if crosstab.shape[1] == 2:
            p_value, test = stats.fisher_exact(crosstab).pvalue, "Fisher exact"
        else:
            p_value = stats.chi2_contingency(crosstab, correction=False).pvalue
            test = "chi-square"
        rows[0] |= {"p_value": p_value, "test": test}
    return rows


def cohort_flow(endpoints: pd.DataFrame) -> pd.DataFrame:
    """Counts behind the flow diagram, from export to BM, and SREs counted or left out."""
    pop = populations(endpoints)
    reasons = endpoints["exclusion_reason"]
    exported = endpoints
    steps = [
        ("exported", "", len(exported), None),
        (
            "excluded",
            "diagnosis outside the study period",
            int((reasons == "study_period").sum()),
            None,
        ),
        ("excluded", "age at diagnosis below the minimum", int((reasons == "age").sum()), None),
        ("eligible", "", len(pop["all"]), None),
        ("stage_iv", "", len(pop["stage_iv"]), None),
        ("bm", "", len(pop["bm"]), None),
        ("no_bm", "", len(pop["stage_iv"]) - len(pop["bm"]), None),
        (
            "sre_counted",
            "on or after the BM date, population bm",
            int(pop["bm"]["sre"].sum()),
            int(pop["bm"]["n_sre"].sum()),
        ),
        (
            "sre_left_out",
            "before the first positive bone imaging",
            int((exported["n_sre_before_bm"] > 0).sum()),
            int(exported["n_sre_before_bm"].sum()),
        ),
        (
            "sre_left_out",
            "no positive bone imaging at all",
            int((exported["n_sre_without_bm"] > 0).sum()),
            int(exported["n_sre_without_bm"].sum()),
        ),
    ]
    frame = pd.DataFrame(steps, columns=["step", "reason", "patients", "events"])
    frame["events"] = frame["events"].astype("Int64")
    return frame


def baseline_table(endpoints: pd.DataFrame) -> pd.DataFrame:
    """Table 1: eligible cohort, and stage IV by BM status."""
    groups = table1_groups(endpoints)
    rows = [
        {"variable": "patients", "level": "", "kind": "count"}
        | {f"{name}_n": len(frame) for name, frame in groups.items()}
    ]
    rows += continuous_rows("age_years", groups)
    for variable, levels in TABLE1_CATEGORICAL.items():
        rows += categorical_rows(variable, levels, groups)
        if variable == "grade":
            rows += continuous_rows("ki67_percent", groups)
    columns = ["variable", "level", "kind"]
    for name in TABLE1_GROUPS:
        columns += [f"{name}_{s}" for s in ("n", "percent", "median", "q1", "q3", "missing")]
    return pd.DataFrame(rows).reindex(columns=[*columns, "p_value", "test"])
