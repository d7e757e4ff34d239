"""One row per patient with every derived endpoint (docs/endpoints.md), and the study's
populations.

Every table's patient_id is first turned into codes of one set of patients (validation
writes it as categoricals of one shared set, so that this costs no lookup); per-patient
dates and counts are then unbuffered numpy reductions by code and a patient's row takes
its patient's values by code: no group-by and no per-patient Python, so that a registry
export of a million patients takes seconds. Times are in months of `days_per_month` days,
counted from whole calendar days.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sinet_bm.contract import (
    Definitions,
    categories,
    earliest,
    first_positive_dates,
    grade_conditions,
    latest,
    positive_exam,
    select_category,
)

if TYPE_CHECKING:
    import pyarrow as pa


def days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


def eligibility(patients: pd.DataFrame, definitions: Definitions) -> pd.DataFrame:
    """Age at diagnosis and the first failing inclusion criterion (period, then age)."""
    age_years = days(patients["diagnosis_date"], patients["birth_date"]) / definitions.days_per_year
    in_period = patients["diagnosis_date"].between(definitions.study_start, definitions.study_end)
    excluded = [~in_period, age_years < definitions.min_age_years]
    return pd.DataFrame(
        {
            "age_years": age_years,
            "exclusion_reason": select_category(excluded, ["study_period", "age"], ""),
            "eligible": ~np.logical_or.reduce(excluded),
        },
        index=patients.index,
    )


def tumour_grade(patients: pd.DataFrame, definitions: Definitions) -> pd.DataFrame:
    """The given grade wins; Ki-67 fills in only where the grade is missing."""
    grades = categories("patients", "grade")
    given = pd.Categorical(patients["grade"], categories=grades).codes
    derived = np.select(
        grade_conditions(patients["ki67_percent"], definitions), range(len(grades)), -1
    )
    has_given = given >= 0
    grade = pd.Categorical.from_codes(np.where(has_given, given, derived), categories=grades)
    source = select_category([has_given, derived >= 0], ["given", "ki67"], "missing")
    return pd.DataFrame({"grade": grade, "grade_source": source}, index=patients.index)


def read_tables(paths: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """The validated tables, with patient_id as one categorical for all four: validation
    writes one shared dictionary of ids, so that each table's ids become codes of it without
    a Python string per id and table (a table with other ids is read as it is). Columns
    stay one block each: no copy into pandas' two-dimensional blocks. The files are read
    side by side: each file's id dictionary is decoded by one thread."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with ThreadPoolExecutor() as pool:
        tables = dict(zip(paths, pool.map(pq.read_table, paths.values()), strict=True))
    shared = tables["patients"].column("patient_id").combine_chunks()
    dtype = pd.CategoricalDtype(shared.dictionary.to_numpy(zero_copy_only=False))
    frames = {}
    for name, table in tables.items():
        ids = table.column("patient_id").combine_chunks()
        if not ids.type.equals(shared.type) or not ids.dictionary.equals(shared.dictionary):
            frames[name] = table.to_pandas(split_blocks=True)
            continue
        frame = table.drop_columns(["patient_id"]).to_pandas(split_blocks=True)
        codes = pc.fill_null(ids.indices, -1).to_numpy()
        frame.insert(
            table.schema.get_field_index("patient_id"),
            "patient_id",
            pd.Categorical.from_codes(codes, dtype=dtype),
        )
        frames[name] = frame
    return frames


def patient_codes(tables: Mapping[str, pd.DataFrame]) -> tuple[dict[str, np.ndarray], int]:
    """Per table, each row's patient as a code of one set of ids (the patients' categories
    when they are categorical, else their distinct ids; -1: empty or not there), and the
    number of codes: every per-patient array is indexed by these codes."""
    ids = tables["patients"]["patient_id"]
    if isinstance(ids.dtype, pd.CategoricalDtype):
        dtype = ids.dtype
    else:
        dtype = pd.CategoricalDtype(pd.unique(ids.dropna()))
    codes = {
        name: pd.Categorical(table["patient_id"], dtype=dtype).codes
        for name, table in tables.items()
    }
    return codes, len(dtype.categories)


def count(codes: np.ndarray, counted: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes[counted & (codes >= 0)], minlength=size)


def bone_findings(
    imaging: pd.DataFrame, codes: np.ndarray, bm_date: np.ndarray, definitions: Definitions
) -> pd.DataFrame:
    """BM date, SSTR-only detection, time to morphologic visibility and BM type, per patient
    code; empty (NaT, NaN, false, missing) for patients without a positive exam. Morphologic
    exams are taken out first: they are few, and only they decide the rest."""
    size = len(bm_date)
    exam_date = imaging["exam_date"].to_numpy()
    morphologic = np.flatnonzero(flag(imaging["bone_morphologic"]) & (codes >= 0))
    exams = Exams(codes[morphologic], exam_date[morphologic])
    bm = pd.Series(bm_date)
    first = pd.Series(earliest(exams.codes, exams.dates, size))
    positive = pd.Series(count(codes, positive_exam(imaging), size) > 0)
    sstr_only = positive & ~(first <= bm)
    visible = first.notna()
    until = first.where(visible, pd.Series(latest(codes, exam_date, size)))
    lesion = pd.Categorical(imaging["lesion_type"])
    types = bm_type(exams, lesion.codes[morphologic], lesion.categories, first.to_numpy())
    types[~positive.to_numpy()] = -1
    return pd.DataFrame(
        {
            "bm_date": bm,
            "first_morphologic_date": first,
            "sstr_only": sstr_only,
            "months_to_morphologic": (days(until, bm) / definitions.days_per_month).where(
                sstr_only
            ),
            "morphologic_visible": visible.astype("boolean").where(sstr_only),
            "bm_type": pd.Categorical.from_codes(types, dtype=bm_types()),
        }
    )


@dataclass(frozen=True)
class Exams:
    """Some exams: each one's patient code and date."""

    codes: np.ndarray
    dates: np.ndarray


def flag(values: pd.Series) -> np.ndarray:
    """A boolean column with missing as false."""
    return values.to_numpy(dtype=bool, na_value=False)


@cache
def bm_types() -> pd.CategoricalDtype:
    """The BM types: the lesion types (`mixed` among them) and `unknown`."""
    return pd.CategoricalDtype([*categories("imaging", "lesion_type"), "unknown"])


def bm_type(
    morphologic: Exams, lesion: np.ndarray, categories: pd.Index, first: np.ndarray
) -> np.ndarray:
    """Codes of bm_types(): the lesion type (codes of `categories`, -1: none) at each
    patient's first morphologic exam; different types on that date (or none) make `mixed`,
    a patient without morphologic exam `unknown`."""
    size = len(first)
    on_first = morphologic.dates == first[morphologic.codes]
    kept = on_first & (lesion >= 0)
    lowest = np.full(size, len(categories))
    highest = np.full(size, -1)
    np.minimum.at(lowest, morphologic.codes[kept], lesion[kept])
    np.maximum.at(highest, morphologic.codes[kept], lesion[kept])
    known = bm_types().categories
    types = known.get_indexer([*categories, "mixed"])
    single = np.where(lowest == highest, lowest, len(categories))
    found = count(morphologic.codes, on_first, size) > 0
    return np.where(found, types[single], known.get_loc("unknown"))


def skeletal_events(events: pd.DataFrame, codes: np.ndarray, bm_date: np.ndarray) -> pd.DataFrame:
    """SREs on or after the BM date count; earlier ones (and those without BM) are left out."""
    size = len(bm_date)
    own_bm = pd.Series(np.append(bm_date, np.datetime64("NaT", "ns"))[codes])
    counted = (events["event_date"].reset_index(drop=True) >= own_bm).to_numpy()
    without_bm = own_bm.isna().to_numpy()
    return pd.DataFrame(
        {
            "n_sre": count(codes, counted, size),
            "n_sre_before_bm": count(codes, ~counted & ~without_bm, size),
            "n_sre_without_bm": count(codes, without_bm, size),
            "first_sre_date": earliest(
                np.where(counted, codes, -1), events["event_date"].to_numpy(), size
            ),
        }
    )


def antiresorptive(
    therapies: pd.DataFrame, codes: np.ndarray, size: int, definitions: Definitions
) -> np.ndarray:
    """First start of any antiresorptive episode, whatever its date, per patient code."""
    episodes = therapies["therapy"].isin(definitions.antiresorptive_therapies).to_numpy()
    return earliest(np.where(episodes, codes, -1), therapies["start_date"].to_numpy(), size)


def of_patients(values: pd.DataFrame, codes: np.ndarray) -> dict[str, pd.Series]:
    """Per patient row, the values of its code (missing for a patient without an id)."""
    return {
        name: pd.Series(column.array.take(codes, allow_fill=True))
        for name, column in values.items()
    }


def as_text(values: pd.Series) -> pd.Series:
    """The column as `astype(str)` writes it (missing: "nan"); a categorical converts its
    categories, not every row."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(str)
    texts = np.append(values.cat.categories.astype(str).to_numpy(dtype=object), "nan")
    return pd.Series(texts[values.cat.codes.to_numpy()], index=values.index)


def as_text_category(values: pd.Series) -> pd.Series:
    """`as_text` as a categorical of those texts: a code per row, no string per row."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(str).astype("category")
    texts = pd.Index(np.append(values.cat.categories.astype(str).to_numpy(dtype=object), "nan"))
    distinct = texts.unique()
    codes = distinct.get_indexer(texts)[values.cat.codes.to_numpy()]
    return pd.Series(pd.Categorical.from_codes(codes, categories=distinct), index=values.index)


# The text columns derived as categoricals, and what stands for a missing value when they
# are given as Python strings: None for a grade neither given nor derived, NaN for the BM
# type of a patient without BM (sex, site and stage write a missing value as "nan").
TEXT_MISSING = {
    "exclusion_reason": None,
    "sex": None,
    "primary_site": None,
    "uicc_stage": None,
    "grade": None,
    "grade_source": None,
    "bm_type": np.nan,
}


def as_strings(values: pd.Series, missing: object) -> pd.Series:
    """A categorical's values as Python strings, one object per category."""
    texts = np.append(values.cat.categories.to_numpy(dtype=object), missing)
    return pd.Series(texts[values.cat.codes.to_numpy()], index=values.index)


def derive_endpoints(tables: Mapping[str, pd.DataFrame], definitions: Definitions) -> pd.DataFrame:
    """One row per patient, text as Python strings (as analyses in memory use it)."""
    endpoints = endpoint_table(tables, definitions)
    texts = {name: as_strings(endpoints[name], missing) for name, missing in TEXT_MISSING.items()}
    return pd.DataFrame(
        {name: texts.get(name, endpoints[name]) for name in endpoints.columns}, copy=False
    )


def endpoint_table(tables: Mapping[str, pd.DataFrame], definitions: Definitions) -> pd.DataFrame:
    """One row per patient, the TEXT_MISSING columns as categoricals: the endpoints file is
    written from these codes rather than from a million Python strings per column."""
    codes, size = patient_codes(tables)
    # A new index without copying the columns (reset_index would copy and consolidate them).
    patients = tables["patients"].set_axis(pd.RangeIndex(len(tables["patients"])), copy=False)
    imaging = tables["imaging"]
    out: dict[str, pd.Series | np.ndarray] = {
        "patient_id": as_text(patients["patient_id"]),
        "sex": as_text_category(patients["sex"]),
        "male": (patients["sex"] == "male").to_numpy(),
        "diagnosis_date": patients["diagnosis_date"],
        "primary_site": as_text_category(patients["primary_site"]),
        "uicc_stage": as_text_category(patients["uicc_stage"]),
        "stage_iv": (patients["uicc_stage"] == "IV").to_numpy(),
        "ki67_percent": patients["ki67_percent"],
        "functioning": patients["functioning"].astype(bool),
    }
    for frame in (eligibility(patients, definitions), tumour_grade(patients, definitions)):
        out |= {name: frame[name] for name in frame.columns}
    bm_date = first_positive_dates(imaging, codes["imaging"], size)
    start = antiresorptive(tables["therapies"], codes["therapies"], size, definitions)
    out |= of_patients(
        bone_findings(imaging, codes["imaging"], bm_date, definitions), codes["patients"]
    )
    out |= of_patients(
        skeletal_events(tables["skeletal_events"], codes["skeletal_events"], bm_date),
        codes["patients"],
    )
    out |= of_patients(pd.DataFrame({"antiresorptive_start": start}), codes["patients"])
    out["bm"] = out["bm_date"].notna()
    out["sstr_only"] = out["sstr_only"].astype("boolean").fillna(False).astype(bool)
    out["morphologic_visible"] = out["morphologic_visible"].astype("boolean")
    for name in ("n_sre", "n_sre_before_bm", "n_sre_without_bm"):
        out[name] = out[name].fillna(0).astype(int)
    out["sre"] = out["n_sre"] > 0
    out["antiresorptive"] = out["antiresorptive_start"].notna()
    out["dead"] = (patients["vital_status"] == "dead").to_numpy()
    out["last_followup_date"] = patients["last_followup_date"]
    out["os_months"] = (
        days(out["last_followup_date"], out["diagnosis_date"]) / definitions.days_per_month
    )
    out["bm_months"] = days(out["bm_date"], out["diagnosis_date"]) / definitions.days_per_month
    out["population_bm"] = out["eligible"] & out["stage_iv"] & out["bm"]
    return pd.DataFrame({name: out[name] for name in ENDPOINT_COLUMNS}, copy=False)


def first_seen(values: pd.Series) -> pa.DictionaryArray:
    """A categorical as arrow dictionary of the categories it uses, in the order of their
    first row: the dictionary that parquet would build from the same values as strings."""
    import pyarrow as arrow

    codes = values.cat.codes.to_numpy()
    present = codes >= 0
    order, used = pd.factorize(codes[present])
    indices = np.full(len(codes), -1, dtype=np.int32)
    indices[present] = order
    dictionary = arrow.array(values.cat.categories.to_numpy(dtype=object)[used], arrow.string())
    return arrow.DictionaryArray.from_arrays(arrow.array(indices, mask=~present), dictionary)


def write_endpoints(endpoints: pd.DataFrame, path: str) -> None:
    """The endpoint table as parquet, its categoricals as text: the same file as if they
    were Python strings (the file's schema says string, so readers see no difference),
    written from their codes, which costs a fraction. No column statistics: nothing filters
    on them, and they cost a tenth of the writing."""
    import pyarrow as arrow
    import pyarrow.parquet as pq

    names = list(endpoints.columns)
    text = [name for name in names if isinstance(endpoints[name].dtype, pd.CategoricalDtype)]
    table = arrow.Table.from_pandas(endpoints.drop(columns=text), preserve_index=False)
    columns = {name: table.column(name) for name in table.column_names}
    columns |= {name: first_seen(endpoints[name]) for name in text}
    pandas = json.loads(table.schema.metadata[b"pandas"])
    described = {column["name"]: column for column in pandas["columns"]}
    pandas["columns"] = [
        described.get(name)
        or {
            "name": name,
            "field_name": name,
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": None,
        }
        for name in names
    ]
    written = arrow.table([columns[name] for name in names], names=names)
    as_strings = arrow.schema(
        [
            field.with_type(arrow.string()) if field.name in text else field
            for field in written.schema
        ],
        metadata={b"pandas": json.dumps(pandas).encode()},
    )
    with pq.ParquetWriter(
        path, written.schema, write_statistics=False, store_schema=False
    ) as writer:
        writer.write_table(written)
        # What store_schema would record for the same columns as strings.
        writer.add_key_value_metadata(
            {
                b"ARROW:schema": base64.b64encode(as_strings.serialize().to_pybytes()),
                **as_strings.metadata,
            }
        )


ENDPOINT_COLUMNS = [
    "patient_id",
    "eligible",
    "exclusion_reason",
    "sex",
    "male",
    "age_years",
    "diagnosis_date",
    "primary_site",
    "uicc_stage",
    "stage_iv",
    "ki67_percent",
    "grade",
    "grade_source",
    "functioning",
    "bm",
    "population_bm",
    "bm_date",
    "bm_months",
    "sstr_only",
    "first_morphologic_date",
    "months_to_morphologic",
    "morphologic_visible",
    "bm_type",
    "antiresorptive",
    "antiresorptive_start",
    "sre",
    "n_sre",
    "n_sre_before_bm",
    "n_sre_without_bm",
    "first_sre_date",
    "dead",
    "last_followup_date",
    "os_months",
]


def populations(endpoints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's populations, as `estimates.csv` names them: every exported patient, the
    eligible (`all`), stage IV, stage IV with BM, and stage IV by functioning status
    (missing functioning: in neither)."""
    eligible = endpoints[endpoints["eligible"]]
    stage_iv = eligible[eligible["stage_iv"]]
    functioning = stage_iv["functioning"]
    return {
        "exported": endpoints,
        "all": eligible,
        "stage_iv": stage_iv,
        "bm": stage_iv[stage_iv["bm"]],
        "stage_iv_functioning": stage_iv[functioning.eq(True)],
        "stage_iv_nonfunctioning": stage_iv[functioning.eq(False)],
    }


def stage_iv_of(endpoints: pd.DataFrame) -> pd.DataFrame:
    return populations(endpoints)["stage_iv"].reset_index(drop=True)
