"""Shared set-up for the tests: this folder on `sys.path`, so that a test file imports the
helpers beside it (`cli_helpers.py`) whatever pytest's import mode (the folder has no
`__init__.py`; `robustness/conftest.py` does the same for its own helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
