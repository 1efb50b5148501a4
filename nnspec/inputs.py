"""The spec files a command line names: `-` for standard input, a folder for every `.nn`
file under it, each file once.

Under a folder named on the command line, a file is taken when its name ends in `.nn`
and does not start with `.`; a folder is not entered when its name starts with `.` (`.git`,
`.venv`) or when it is an nnspec run folder (it holds `run.json` or `checkpoint.npz`: its
`spec.nn` is a copy that `train` wrote), and symbolic links to folders are not followed.
The folder named itself is always searched, so `nnspec check runs/NAME` checks a run's copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STDIN = "-"
RUN_FILES = ("run.json", "checkpoint.npz")


class InputError(Exception):
    """A command-line path that names no spec (the CLI turns it into a usage error)."""


@dataclass(frozen=True)
class Input:
    """One spec to read: `path` on disk (or `-`), `name` as diagnostics show it."""

    path: str
    name: str

    @property
    def is_stdin(self) -> bool:
        return self.path == STDIN


def is_run_folder(folder: Path) -> bool:
    return any((folder / f).is_file() for f in RUN_FILES)


def specs_under(folder: Path) -> list[Path]:
    """Every `.nn` file under `folder` (see the module's docstring for what is skipped),
    sorted by path, component by component."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not is_run_folder(here / d)]
        found += [here / f for f in files if f.endswith(".nn") and not f.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def expand(args: list[str], *, folders: bool = True, stdin_name: str | None = None) -> list[Input]:
    """The specs `args` name, in order, each once: `-` is standard input (named
    `stdin_name`, else `<stdin>`), a folder (when `folders`) every `.nn` file under it."""
    out: list[Input] = []
    seen: set[str] = set()

    def add(path: str, name: str) -> None:
        key = path if path == STDIN else os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(Input(path, name))

    for arg in args:
        if arg == STDIN:
            add(STDIN, stdin_name or "<stdin>")
        elif folders and os.path.isdir(arg):
            specs = specs_under(Path(arg))
            if not specs:
                raise InputError(f"`{arg}` holds no `.nn` file (names starting with `.`, "
                                 "and run folders, are skipped)")
            for p in specs:
                add(str(p), str(p))
        else:
            add(arg, arg)
    return out
