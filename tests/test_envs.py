"""The per-stage conda environments pin exactly the versions of requirements.lock."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LOCK = {
    name.lower().replace("_", "-"): version
    for name, version in (
        line.split("==")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
}


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_conda_pins_match_the_lock(env):
    spec = yaml.safe_load(env.read_text())
    pinned = [dep for dep in spec["dependencies"] if isinstance(dep, str) and "=" in dep]
    assert pinned
    for dependency in pinned:
        name, version = dependency.split("=")
        if name == "python":
            continue
        assert LOCK[name] == version, f"{env.name}: {dependency} vs lock {LOCK[name]}"


def test_every_rule_names_an_existing_env():
    rules = "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    for env in sorted((REPO / "envs").glob("*.yaml")):
        assert f'"../envs/{env.name}"' in rules, env.name
