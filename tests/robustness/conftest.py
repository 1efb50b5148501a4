"""Shared set-up for the robustness tests.

Helpers live in `robust_helpers.py` and `robust_strategies.py` beside this file (the
tests folder has no `__init__.py`, so this folder is put on `sys.path` here). Compiled
XLA programs are cached in a temporary folder for the session, as `nnspec train` caches
them in `~/.cache/nnspec/xla`: a run and its repeat then compile once, and the
subprocesses of the crash tests start in a second instead of three.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _import_the_whole_package() -> None:
    """Hypothesis also draws constants found in the project's loaded modules: with every
    nnspec module loaded up front, the fuzz tests draw the same cases whichever tests ran
    before them (a run of `nnspec train` would otherwise load more modules part-way)."""
    import importlib
    import pkgutil

    import nnspec
    for info in pkgutil.iter_modules(nnspec.__path__):
        try:
            importlib.import_module(f"nnspec.{info.name}")
        except ImportError:  # an optional extra that is not installed
            pass


_import_the_whole_package()


@pytest.fixture(scope="session", autouse=True)
def xla_cache(tmp_path_factory) -> Path:
    """The folder that plays `XDG_CACHE_HOME` for this session (and its subprocesses)."""
    import jax
    home = tmp_path_factory.mktemp("xdg-cache")
    if os.environ.get("NNSPEC_NO_CACHE") or jax.config.jax_compilation_cache_dir:
        return home  # turned off, or already set up by an earlier test in this process
    (home / "nnspec" / "xla").mkdir(parents=True)
    jax.config.update("jax_compilation_cache_dir", str(home / "nnspec" / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return home


@pytest.fixture
def subprocess_env(xla_cache: Path) -> dict[str, str]:
    """The environment for `nnspec` subprocesses: this session's compile cache, no colour."""
    return {**os.environ, "XDG_CACHE_HOME": str(xla_cache), "NO_COLOR": "1"}


def pytest_terminal_summary(terminalreporter) -> None:
    from robust_helpers import COUNTS
    if COUNTS:
        terminalreporter.write_line("robustness: " + ", ".join(f"{k} {v:,}" for k, v in sorted(COUNTS.items())))
