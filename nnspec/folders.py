"""The folder a command writes into: new or empty, or one nnspec wrote before (replaced
only when asked, and then only nnspec's own files), never a folder holding anything else.

A `Kind` says what sort of folder it is: the files nnspec may write there, how to tell
one nnspec wrote, the exception to raise and the words of its messages. `runs.RUN` (a
run folder) and `split.SPLIT` (the folder of `nnspec split --out`) are the two kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kind:
    noun: str  # "run": "the run folder", "holds a run"
    files: tuple[str, ...]  # every file nnspec may write in such a folder
    holds: Callable[[Path], bool]  # whether the folder holds one nnspec wrote
    error: type[Exception]  # raised for a folder that cannot be used (a usage error)
    taken: str  # the refusal without `overwrite`; `{path}` is the folder
    described: str  # how the message on someone else's folder names the kind: "an nnspec run folder"


def claim(path: Path, kind: Kind, *, overwrite: bool = False) -> bool:
    """`path` as a folder of `kind`: new or empty (False), or one holding a `kind` to
    `overwrite`, whose own files are then removed (True); anything else raises `kind.error`."""
    creatable(path, kind)
    if not path.exists() or empty_dir(path):
        return False
    names = sorted(p.name for p in path.iterdir())
    if kind.holds(path):
        foreign = [n for n in names if n not in kind.files and not _temporary(n, kind.files)]
        if foreign:
            raise kind.error(f"`{path}` holds a {kind.noun} and also files nnspec did not write "
                             f"({_few(foreign)}): choose a new folder")
        if not overwrite:
            raise kind.error(kind.taken.format(path=path))
        for name in kind.files:
            (path / name).unlink(missing_ok=True)
        return True
    raise kind.error(f"`{path}` is not empty and is not {kind.described} ({_few(names)}): "
                     f"nnspec never writes among files it did not create; choose a new or empty folder")


def creatable(out: Path, kind: Kind) -> None:
    """Refuse `out` if it, or the nearest of its parents that exists, is not a folder."""
    if out.exists() and not out.is_dir():
        raise kind.error(f"cannot use `{out}` as the {kind.noun} folder: it is a file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise kind.error(f"cannot create the {kind.noun} folder `{out}`: `{parent}` is a file")
            break


def empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _temporary(name: str, files: tuple[str, ...]) -> bool:
    """Whether `name` is the temporary file of a write to one of `files` (`files.write_atomic`
    writes `.NAME.*.tmp`), left behind by a process killed mid-write."""
    return name.endswith(".tmp") and any(name.startswith(f".{n}.") for n in files)


def _few(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
