"""Shared fixtures: the repository's config, and the tiny hand-made export."""

from pathlib import Path

import pytest
import yaml

from sinet_bm import checks, ingest

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "data" / "tiny"


@pytest.fixture(scope="session")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="session")
def tiny(config) -> ingest.Validation:
    return ingest.validate_folder(
        TINY,
        REPO / "schemas",
        ingest.format_from_config(config),
        checks.definitions_from_config(config["definitions"]),
        strict=False,
    )
