"""The documentation in docs/: current with its sources, complete, and self-contained.

The generated blocks must be what `make docs` writes now, so that a schema changed without
`make docs` fails here. Every docs/ path the repository cites must exist, no file may point
at a document outside the repository, and every estimate, export column and endpoint must
be documented.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from sinet_bm import contract, docs
from sinet_bm.endpoints import ENDPOINT_COLUMNS
from sinet_bm.findings import FINDING_COLUMNS
from sinet_bm.results import ESTIMATE_COLUMNS

REPO = docs.REPO
# Documents that once lived beside the repository, and the folder that held them. The
# names are split so that this file does not itself mention them.
OUTSIDE = ("DATA_" + "CONTRACT", "STUDY" + ".md", "NOTES" + ".md", "STYLE" + ".md")
OUTSIDE_PATHS = re.compile(r"\.\./shared\b|(?<![\w.-])/wor" + "k/")
CITED_DOCS = re.compile(r"(?<![\w./-])docs/[\w./#-]*")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


@cache
def repository_files() -> tuple[Path, ...]:
    """Tracked and new files that git does not ignore: what a clone or a commit holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(REPO / name for name in sorted(set(listed.split("\0"))) if name)


@cache
def text_of(path: Path) -> str:
    """A file's text; binary files (figures) read as empty."""
    data = path.read_bytes() if path.is_file() else b""
    return "" if b"\0" in data else data.decode("utf-8", errors="replace")


def all_docs() -> str:
    return "\n".join(path.read_text() for path in docs.pages())


@pytest.mark.parametrize("page", docs.pages(), ids=lambda path: path.name)
def test_generated_blocks_are_current(page: Path):
    assert page.read_text() == docs.fill(page.read_text()), (
        f"{page.relative_to(REPO)} is out of date with its sources: run `make docs`"
    )


def test_every_block_is_on_a_page():
    used = {match["key"].split(" ")[0] for match in docs.BLOCK.finditer(all_docs())}
    assert used == set(docs.BLOCKS)


def test_an_unknown_block_is_an_error():
    with pytest.raises(ValueError, match="unknown generated block"):
        docs.fill("<!-- generated: nonsense -->\n<!-- end generated: nonsense -->\n")


def test_a_block_is_rewritten_and_the_prose_kept():
    stale = (
        "Prose.\n<!-- generated: columns therapies -->\nold\n"
        "<!-- end generated: columns therapies -->\nMore.\n"
    )
    filled = docs.fill(stale)
    assert filled.startswith("Prose.\n<!-- generated: columns therapies (from schemas/therapies")
    assert "old" not in filled and "| `end_date` | date | no |" in filled
    assert filled.endswith("<!-- end generated: columns therapies -->\nMore.\n")
    assert docs.fill(filled) == filled


def test_every_cited_docs_path_exists():
    cited = {
        (path.relative_to(REPO), found.split("#")[0].rstrip("."))
        for path in repository_files()
        for found in CITED_DOCS.findall(text_of(path))
    }
    assert cited, "no docs/ path cited anywhere"
    missing = sorted((str(path), target) for path, target in cited if not (REPO / target).exists())
    assert not missing, f"cited but not in the repository: {missing}"


def test_every_markdown_link_stays_inside_the_repository():
    for path in repository_files():
        if path.suffix != ".md":
            continue
        for target in MARKDOWN_LINK.findall(text_of(path)):
            if re.match(r"[a-z]+:|#", target):
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            where = f"{path.relative_to(REPO)} links to {target}"
            assert resolved.is_relative_to(REPO), f"{where}, outside the repository"
            assert resolved.exists(), f"{where}, which does not exist"


def test_no_file_refers_outside_the_repository():
    found = [
        (str(path.relative_to(REPO)), hit)
        for path in repository_files()
        for hit in [
            *(name for name in OUTSIDE if name in text_of(path)),
            *OUTSIDE_PATHS.findall(text_of(path)),
        ]
    ]
    assert not found, f"references to files outside the repository: {found}"


def test_every_estimate_is_documented():
    text = (REPO / "docs" / "estimates.md").read_text()
    catalogue = yaml.safe_load((REPO / "schemas" / "estimates.yaml").read_text())
    for section in catalogue["sections"]:
        assert f"### Section {section['section']}. {section['title']}" in text
        for estimate in section["estimates"]:
            assert f"`{estimate['id']}`" in text, estimate["id"]
    for column in ESTIMATE_COLUMNS:
        assert f"`{column}`" in text, column


def test_every_population_is_defined():
    text = (REPO / "docs" / "endpoints.md").read_text()
    catalogue = yaml.safe_load((REPO / "schemas" / "estimates.yaml").read_text())
    used = {e["population"] for s in catalogue["sections"] for e in s["estimates"]}
    for population in used:
        assert f"| `{population}` |" in text, f"population {population} not in endpoints.md"


@pytest.mark.parametrize("table", contract.TABLES)
def test_every_export_column_is_documented(table: str):
    text = (REPO / "docs" / "export-format.md").read_text()
    section = text.split(f"\n## {table}\n", 1)[1].split("\n## ", 1)[0]
    for column in contract.columns(table):
        assert f"| `{column}` |" in section, f"{table}.{column}"


def test_every_finding_column_is_documented():
    text = (REPO / "docs" / "export-format.md").read_text()
    for column in FINDING_COLUMNS:
        assert f"`{column}`" in text, column


def test_the_endpoint_table_lists_every_endpoint_in_order():
    text = (REPO / "docs" / "endpoints.md").read_text()
    section = text.split("\n## The endpoint table\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert listed == ENDPOINT_COLUMNS
