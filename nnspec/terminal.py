"""Whether to colour what nnspec writes to a stream: the one rule every command uses.

`--color always|never` decides; with `auto` (the default), a non-empty `NO_COLOR` turns
colour off (https://no-color.org), then a non-empty `FORCE_COLOR` other than `0` turns it on,
and otherwise the stream is coloured when it is a terminal.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

CHOICES = ("auto", "always", "never")


def use_color(stream: Any, choice: str = "auto", environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour `stream` under `--color CHOICE` and the environment `environ`."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", ""):
        return False
    force = env.get("FORCE_COLOR", "")
    if force and force != "0":
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed stream
        return False
