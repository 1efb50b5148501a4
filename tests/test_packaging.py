"""Packaging: one version number, the license, the extras, the changelog.

The wheel itself (the grammar inside it, the PEP 639 metadata in its METADATA) is checked by
.ci/run, which builds it; these tests read the project's files.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

import nnspec

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Extras that are not for users of nnspec: the test suite, the benchmarks' baselines, the
# linters, and `all` itself.
NOT_FOR_USERS = {"test", "bench", "lint", "all"}


def test_the_version_is_written_once() -> None:
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "nnspec/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", nnspec.__version__)


def test_the_installed_metadata_has_that_version() -> None:
    assert importlib.metadata.version("nnspec") == nnspec.__version__


def test_the_changelog_names_this_version_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[([^\]]+)\]", text, flags=re.M)
    assert versions, "CHANGELOG.md has no `## [VERSION]` heading"
    first = next(v for v in versions if v != "Unreleased")
    assert first == nnspec.__version__


def test_the_vscode_extension_has_that_version() -> None:
    vscode = ROOT / "editors" / "vscode"
    assert json.loads((vscode / "package.json").read_text())["version"] == nnspec.__version__
    assert f"nnspec-{nnspec.__version__}.vsix" in (vscode / "README.md").read_text()


def test_the_license_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    # PEP 639: a license expression replaces the License :: classifiers
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]


def test_the_all_extra_holds_every_users_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    (line,) = extras["all"]
    match = re.fullmatch(r"nnspec\[([a-z0-9_,-]+)\]", line)
    assert match, line
    named = set(match.group(1).split(","))
    assert named == set(extras) - NOT_FOR_USERS


def test_the_test_extra_holds_every_users_library() -> None:
    """The suite runs every optional feature, so CI needs each user extra's libraries."""
    extras = PROJECT["optional-dependencies"]

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()

    tested = {name(r) for r in extras["test"]}
    for extra in set(extras) - NOT_FOR_USERS:
        for requirement in extras[extra]:
            assert name(requirement) in tested, f"the `{extra}` extra's {requirement} is not in `test`"


def test_project_urls_and_classifiers() -> None:
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= set(PROJECT["urls"])
    classifiers = PROJECT["classifiers"]
    assert "Typing :: Typed" in classifiers and (ROOT / "nnspec" / "py.typed").is_file()
    floor = tuple(int(p) for p in PROJECT["requires-python"].removeprefix(">=").split("."))
    listed = [tuple(int(p) for p in c.rsplit(" ", 1)[1].split("."))
              for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed and min(listed) == floor
