"""The one way nnspec writes a file: whole or not at all, and never over what is not a file.

`write_atomic(path, data)`:

- a regular file (or a new one) is written to a temporary file in the same folder,
  fsynced and renamed into place: a reader, or a crash, sees the old content or the new,
  never half of it. A new file gets the user's umask (`0o666 & ~umask`, as any program's
  `open` gives); an existing file keeps its mode;
- a symlink is followed: its target is written (atomically), the link stays a link;
- anything else that exists and is not a directory (`/dev/null`, a terminal, a FIFO) is
  opened and written in place: renaming over it would replace a device with a file;
- a directory is refused.

Every failure is an `OSError` whose `filename` is the path the caller gave and whose
`strerror` reads as the end of `cannot write `PATH`: ...`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write `data` (text is UTF-8) to `path`, as the module docstring says."""
    shown = str(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        target = Path(os.path.realpath(path))  # through a symlink, not over it
        try:
            st: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "it is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_in_place(target, data)
        else:
            _replace(target, data, None if st is None else stat.S_IMODE(st.st_mode))
    except OSError as exc:
        # name the caller's path, not the resolved one or a temporary file beside it
        raise OSError(exc.errno, exc.strerror or str(exc), shown) from None


def _write_in_place(target: Path, data: bytes) -> None:
    # no O_CREAT: if the device vanished since the stat, fail rather than create a file
    fd = os.open(target, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _replace(target: Path, data: bytes, mode: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Created by hand, not by mkstemp: mkstemp makes every file 0600 whatever the umask.
    # The `.NAME.*.tmp` pattern is what a later run removes after a kill mid-write.
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary file name beside it")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        # The folder is not fsynced: after a power loss the rename may be lost, leaving
        # the old file whole, which is all this promises.
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
