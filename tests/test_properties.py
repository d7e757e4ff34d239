"""Property: one random corruption of a valid export gives at least that finding, never a crash."""

import shutil
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validation import clean_export, validate

DATA = Path(__file__).parent / "data"
FILES = {
    name: pd.read_csv(DATA / "tiny" / name, dtype=str, keep_default_na=False)
    for name in ("patients.csv", "imaging.csv", "therapies.csv", "skeletal_events.csv")
}
GARBAGE = st.sampled_from(["@@not-valid@@", "=1+1", "<b>x</b>", "☃ 2020-13-45", "-1e9 x"])


@st.composite
def corruption(draw) -> tuple[str, int, str, str]:
    file = draw(st.sampled_from(sorted(FILES)))
    table = FILES[file]
    line = draw(st.integers(min_value=2, max_value=len(table) + 1))
    column = draw(st.sampled_from(list(table.columns)))
    return file, line, column, draw(GARBAGE)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(corruption())
def test_a_garbage_cell_is_reported_where_it_is(config, tmp_path_factory, change):
    file, line, column, value = change
    folder = clean_export(tmp_path_factory.mktemp("property"))
    table = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    table.loc[line - 2, column] = value
    table.to_csv(folder / file, index=False)
    result = validate(folder, config)
    at_cell = result.findings[
        (result.findings["file"] == file)
        & (result.findings["line"] == line)
        & (result.findings["column"].str.contains(column, regex=False))
    ]
    assert len(at_cell) >= 1, result.findings
    assert result.has_errors
    shutil.rmtree(folder)
