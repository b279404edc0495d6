"""The container's promises that can be read from its files (scripts/container-check runs the rest)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_lock_pins_every_dependency_the_image_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in [*project["dependencies"], *extras["serve"], *extras["otel"]]}
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, re.M)}

    assert wanted - pinned == set(), "run the pip-compile of docs/operations.md"
    assert "setuptools" in pinned  # the build backend, installed with --no-build-isolation
    assert all("--hash=sha256:" in block for block in lock.split("==")[1:])


def test_the_image_installs_only_the_lock_and_runs_as_a_numeric_non_root_user() -> None:
    assert "pip install --require-hashes --no-deps -r requirements.lock" in DOCKERFILE
    assert "pip install --no-deps --no-build-isolation ." in DOCKERFILE
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users == ["10001:10001"]
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[.*/health/live", DOCKERFILE, re.M)
    assert DOCKERFILE.count("FROM ") == 2
