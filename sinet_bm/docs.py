"""The generated parts of `docs/`, written from the files that are their source.

The pages in `docs/` are written by hand, except the blocks between a line
`<!-- generated: NAME [ARG] ... -->` and a line `<!-- end generated: NAME [ARG] -->`. Each
block is rendered here from the file that holds its facts (a table's pandera schema, the
config schema, the estimates catalogue, the published values), so that the documentation
cannot drift from what the pipeline runs. `make docs` rewrites the blocks in place;
tests/test_docs.py fails when a page differs from what `make docs` would write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sinet_bm import checks, contract

REPO = Path(__file__).resolve().parent.parent
DOCS_DIR = REPO / "docs"
SCHEMA_DIR = REPO / "schemas"
BLOCK = re.compile(
    r"^<!-- generated: (?P<key>\w+(?: \w+)?)\b[^\n]*-->\n"
    r"(?P<body>.*?)"
    r"^<!-- end generated: (?P=key) -->$",
    flags=re.M | re.S,
)


# ---------------------------------------------------------------------------------------
# markdown pieces


def cell(text: object) -> str:
    """A table cell: pipes escaped, line breaks folded, so one row stays one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def code(values: Iterable[object]) -> str:
    return ", ".join(f"`{value}`" for value in values)


def literal(value: Any) -> str:
    """A default as it is written in config.yaml."""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list):
        return "`[" + ", ".join(str(item) for item in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}`"
    if value == "":
        return '`""` (empty)'
    return f"`{value}`"


# ---------------------------------------------------------------------------------------
# section 1: the export tables (schemas/<table>.yaml and the checks of sinet_bm.checks)


def constraint(column: Any) -> str:
    """What a column's cells may hold, in words: its pandera checks and uniqueness."""
    parts = []
    for check in column.checks:
        if check.name == "isin":
            parts.append(code(check.statistics["allowed_values"]))
        elif check.name == "in_range":
            parts.append(f"{check.statistics['min_value']} to {check.statistics['max_value']}")
        else:
            parts.append(f"matches `{check.statistics['pattern']}`")
    if column.unique:
        parts.append("unique")
    return "; ".join(parts)


def columns_block(table_name: str) -> str:
    schema = checks.load_schema(table_name)
    rows = [
        (
            f"`{name}`",
            checks.column_kind(column),
            "no" if column.nullable else "yes",
            constraint(column),
            column.description or "",
        )
        for name, column in schema.columns.items()
    ]
    text = table(["column", "type", "required", "allowed values", "meaning and rules"], rows)
    key = contract.unique_key(table_name)
    if key:
        text += f"\nEach combination ({', '.join(key)}) occurs at most once.\n"
    return text


def checks_block(table_name: str) -> str:
    schemas = {name: checks.load_schema(name) for name in contract.TABLES}
    found = checks.catalogue(schemas)
    found = found[found["table"] == table_name]
    rows = [
        (f"`{r.column}`" if r.column else "(header)", f"`{r.check}`", r.severity, r.description)
        for r in found.itertuples()
    ]
    return table(["column", "check", "severity", "rule"], rows)


def checks_total_block(_: str) -> str:
    schemas = {name: checks.load_schema(name) for name in contract.TABLES}
    found = checks.catalogue(schemas)
    counts = found["severity"].value_counts()
    return (
        f"Validation runs {len(found)} checks on the cells and rows: "
        f"{counts.get('error', 0)} give errors, {counts.get('warning', 0)} give warnings.\n"
    )


# ---------------------------------------------------------------------------------------
# settings (schemas/config.schema.yaml)


def config_schema() -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / "config.schema.yaml").read_text())


def setting_rows(properties: Mapping[str, Any], prefix: str) -> list[tuple[str, str, str]]:
    """One row per key, nested sections flattened to dotted keys."""
    rows = []
    for key, spec in properties.items():
        name = f"{prefix}{key}"
        if spec.get("type") == "object" and "properties" in spec:
            rows += setting_rows(spec["properties"], f"{name}.")
            continue
        default = literal(spec["default"]) if "default" in spec else "(none)"
        allowed = spec.get("enum") or spec.get("items", {}).get("enum")
        meaning = spec.get("description", "")
        if allowed:
            meaning += f" Allowed: {code(allowed)}."
        rows.append((f"`{name}`", default, meaning))
    return rows


def settings_block(section: str) -> str:
    properties = config_schema()["properties"]
    if section == "top":
        chosen = {
            key: spec
            for key, spec in properties.items()
            if spec.get("type") != "object" and "$ref" not in spec
        }
        return table(["key", "default", "meaning"], setting_rows(chosen, ""))
    if "properties" in properties[section]:
        rows = setting_rows(properties[section]["properties"], f"{section}.")
    else:
        rows = [(f"`{section}`", literal(properties[section].get("default")), "")]
    return table(["key", "default", "meaning"], rows)


def mapping_settings_block(_: str) -> str:
    """The per-table renaming keys of a dialect declaration."""
    properties = config_schema()["properties"]
    keys = ("columns", "values", "ignore_columns")
    return table(["key", "meaning"], [(f"`{key}`", properties[key]["description"]) for key in keys])


def config_default(dotted: str) -> Any:
    spec: Mapping[str, Any] = config_schema()
    for part in dotted.split("."):
        spec = spec["properties"][part]
    return spec["default"]


def example_block(name: str) -> str:
    """A dialect declaration the tests run, shown as it is."""
    text = (REPO / "tests" / "data" / f"{name}.yaml").read_text()
    return f"```yaml\n{text.rstrip()}\n```\n"


# ---------------------------------------------------------------------------------------
# sections 3 onward: the rows of estimates.csv (schemas/estimates.yaml)


def estimates_catalogue() -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / "estimates.yaml").read_text())


def estimate_name(entry: Mapping[str, Any]) -> str:
    """The id, and for an id with a placeholder the rows it stands for under the defaults."""
    name = f"`{entry['id']}`"
    for placeholder, key in (entry.get("each") or {}).items():
        if isinstance(key, list):
            name += f" (one row per {placeholder} in {code(key)})"
            continue
        values = config_default(key)
        ids = [entry["id"].replace("{" + placeholder + "}", f"{value:g}") for value in values]
        name += f" (one row per {placeholder} in `{key}`; by default {code(ids)})"
    if entry.get("only") == "centres":
        name += " (only where rows are pooled, `centres:`)"
    return name


def estimates_block(_: str) -> str:
    parts = []
    for section in estimates_catalogue()["sections"]:
        rows = [
            (estimate_name(e), f"`{e['population']}`", e["definition"])
            for e in section["estimates"]
        ]
        parts.append(
            f"### Section {section['section']}. {section['title']}\n\n"
            f"{' '.join(section['about'].split())}\n\n"
            + table(["estimate", "population", "definition"], rows)
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# the study (resources/published.csv, schemas/synthetic.schema.yaml)


def published_block(_: str) -> str:
    published = pd.read_csv(REPO / "resources" / "published.csv", dtype=str)
    rows = []
    for item in published.itertuples():
        if item.comparison == "value":
            rule = f"within ± {float(item.rounding) / 2:g} of {item.published_value}"
        else:
            rule = f"{item.comparison} {item.published_value}"
        rows.append((item.label, item.published_text, f"`{item.estimate}` ({item.field})", rule))
    return table(["quantity", "published", "estimates.csv row", "reproduced when"], rows)


def synthetic_block(_: str) -> str:
    schema = yaml.safe_load((SCHEMA_DIR / "synthetic.schema.yaml").read_text())
    rows = [
        (f"`synthetic.{key}`", literal(spec["default"]), spec.get("description", ""))
        for key, spec in schema["properties"].items()
    ]
    return table(["key", "default", "meaning"], rows)


# ---------------------------------------------------------------------------------------
# filling the pages

# Block name -> (the file its facts come from, the renderer; it gets the block's argument).
BLOCKS: dict[str, tuple[str, Callable[[str], str]]] = {
    "columns": ("schemas/{arg}.yaml", columns_block),
    "checks": ("schemas/{arg}.yaml and sinet_bm/checks.py", checks_block),
    "checks_total": ("schemas/*.yaml and sinet_bm/checks.py", checks_total_block),
    "settings": ("schemas/config.schema.yaml", settings_block),
    "mapping_settings": ("schemas/config.schema.yaml", mapping_settings_block),
    "example": ("tests/data/{arg}.yaml", example_block),
    "estimates": ("schemas/estimates.yaml", estimates_block),
    "published": ("resources/published.csv", published_block),
    "synthetic": ("schemas/synthetic.schema.yaml", synthetic_block),
}


def render_block(key: str) -> str:
    """A whole block, its marker lines included; the opening line names the source."""
    name, _, arg = key.partition(" ")
    if name not in BLOCKS:
        raise ValueError(f"unknown generated block {name!r}; known: {sorted(BLOCKS)}")
    source, render = BLOCKS[name]
    return (
        f"<!-- generated: {key} (from {source.format(arg=arg)} by `make docs`; "
        "do not edit) -->\n"
        f"{render(arg)}"
        f"<!-- end generated: {key} -->"
    )


def fill(text: str) -> str:
    """The page with every generated block rendered anew; the prose around is kept."""
    return BLOCK.sub(lambda match: render_block(match["key"]), text)


def pages() -> list[Path]:
    return sorted(DOCS_DIR.glob("*.md"))


def generated() -> dict[Path, str]:
    """Every page of docs/ as `make docs` writes it."""
    return {path: fill(path.read_text()) for path in pages()}


def write_docs() -> list[Path]:
    """Rewrite the pages whose blocks are out of date; returns the pages written."""
    written = []
    for path, text in generated().items():
        if path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write_docs():
        print(f"wrote {path.relative_to(REPO)}")
