"""uv.lock: what every install uses. It must come from PyPI alone and agree with pyproject.toml.

CI also runs `uv lock --check` (which resolves against PyPI); these checks need no network.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
FILES_HOST = "https://files.pythonhosted.org/"


def _lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _packages() -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = _lock()["package"]
    return packages


def test_every_locked_package_comes_from_pypi_or_is_this_project() -> None:
    """A local mirror or index URL (this machine has some for pip) must never be committed."""
    for package in _packages():
        source = package["source"]
        if package["name"] == "marketplace-api":
            assert source == {"editable": "."}
            continue
        assert source == {"registry": PYPI}, package["name"]
        files = [package["sdist"]] if "sdist" in package else []
        files += package.get("wheels", [])
        assert files, f"{package['name']} has no file to install"
        for file in files:
            assert file["url"].startswith(FILES_HOST), file["url"]
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", file["hash"]), file["url"]


def _requirements(declared: list[str], extra: str | None) -> dict[tuple[str, str | None], Any]:
    out = {}
    for line in declared:
        req = Requirement(line)
        out[(canonicalize_name(req.name), extra)] = (sorted(req.extras), req.specifier)
    return out


def test_lock_was_made_from_the_dependencies_in_pyproject() -> None:
    """The project's entry in uv.lock records what it was resolved for: the same requirements
    (names, extras, version ranges) as pyproject.toml. A dependency added without `make lock`
    fails here."""
    project = _pyproject()["project"]
    declared = _requirements(project["dependencies"], None)
    for extra, lines in project["optional-dependencies"].items():
        declared.update(_requirements(lines, extra))

    (ours,) = (p for p in _packages() if p["name"] == "marketplace-api")
    locked = {}
    for item in ours["metadata"]["requires-dist"]:
        match = re.fullmatch(r"extra == '([\w-]+)'", item.get("marker", "extra == ''"))
        extra = match.group(1) if match and match.group(1) else None
        locked[(canonicalize_name(item["name"]), extra)] = (
            sorted(item.get("extras", [])),
            SpecifierSet(item.get("specifier", "")),
        )
    assert locked == declared
    assert sorted(ours["metadata"]["provides-extras"]) == sorted(project["optional-dependencies"])


def test_makefile_and_dockerfile_install_the_same_uv() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (make_version,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    (docker_version,) = re.findall(r"^ARG UV_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert make_version == docker_version
    required = _pyproject()["tool"]["uv"]["required-version"]
    assert SpecifierSet(required).contains(make_version)
    # Every install path uses the lock, never a fresh resolution.
    assert "uv sync --locked" in dockerfile
    assert "$(UV) sync --locked" in makefile
