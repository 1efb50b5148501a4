"""What `nnspec env` reports besides JAX's devices, and what an internal error adds to
its traceback: versions (read from the installed packages' metadata, so nothing heavy is
imported to learn them), where nnspec keeps its caches, which optional extras are there.

No JAX here: an internal error must be reportable however far the program got.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (distribution, module it is imported as, the nnspec extra that installs it, what for)
EXTRAS = (
    ("matplotlib", "matplotlib", "plot", "`nnspec plot`, `train --plot`"),
    ("pygls", "pygls", "lsp", "`nnspec lsp`"),
    ("safetensors", "safetensors", "export", "`export --format safetensors`"),
    ("jax2onnx", "jax2onnx", "onnx", "`export --format onnx`"),
    ("onnxruntime", "onnxruntime", "onnx", "`export --format onnx`"),
    ("pyarrow", "pyarrow", "parquet", "`data parquet(...)`"),
    ("tqdm", "tqdm", "notebook", "`nnspec.train(..., progress=True)`"),
    ("scikit-learn", "sklearn", "datasets", "`data builtin(\"digits\")`"),
)
CORE = ("jax", "jaxlib", "optax", "numpy")


def version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None; never raises."""
    try:
        return importlib.metadata.version(dist)
    except Exception:  # noqa: BLE001 (never raises)
        return None


def versions() -> dict[str, str | None]:
    """nnspec, Python and the core libraries' versions, none of them imported for it."""
    mine: str | None
    try:
        from nnspec import __version__ as mine
    except Exception:  # noqa: BLE001 (never raises)
        mine = version("nnspec")
    out: dict[str, str | None] = {"nnspec": mine, "python": platform.python_version()}
    for name in CORE:
        loaded = sys.modules.get(name)  # the version that runs, where it is already loaded
        out[name] = getattr(loaded, "__version__", None) or version(name)
    return out


def extras() -> list[dict[str, Any]]:
    """Each optional library: whether Python finds it (not imported: `find_spec` only
    locates it), its version, and the extra that installs it."""
    out = []
    for dist, module, extra, purpose in EXTRAS:
        try:
            found = importlib.util.find_spec(module) is not None
        except Exception:  # noqa: BLE001 - a broken installation: a parent package that fails, bad metadata
            found = False
        out.append({"name": dist, "module": module, "installed": found, "version": version(dist) if found else None,
                    "extra": extra, "for": purpose})
    return out


def xla_cache_dir() -> Path | None:
    """The folder of JAX's persistent compilation cache that the CLI sets
    (`$XDG_CACHE_HOME/nnspec/xla`, else `~/.cache/nnspec/xla`); None with `NNSPEC_NO_CACHE`."""
    if os.environ.get("NNSPEC_NO_CACHE"):
        return None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnspec" / "xla"


def _size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`; what cannot be read counts nothing."""
    files = total = 0
    for root, _, names in os.walk(folder):
        for n in names:
            try:
                total += os.stat(os.path.join(root, n)).st_size
                files += 1
            except OSError:
                pass
    return files, total


def caches() -> dict[str, Any]:
    """Where nnspec keeps things between runs: the compile cache, datasets, run folders."""
    xla = xla_cache_dir()
    compile_cache: dict[str, Any] = {"path": None if xla is None else str(xla), "exists": False,
                                     "files": 0, "bytes": 0,
                                     "disabled": "NNSPEC_NO_CACHE is set" if xla is None else None}
    if xla is not None and xla.is_dir():
        compile_cache["exists"] = True
        compile_cache["files"], compile_cache["bytes"] = _size(xla)
    from nnspec.stream import spool_folder
    spools = spool_folder()
    stream_cache: dict[str, Any] = {"path": str(spools), "exists": spools.is_dir(), "files": 0, "bytes": 0}
    if spools.is_dir():
        stream_cache["files"], stream_cache["bytes"] = _size(spools)
    return {
        "compile": compile_cache,
        # `stream` of a Parquet file: its features copied as float32 `.npy` files (nnspec/stream.py)
        "stream": stream_cache,
        # the built-in datasets are generated in memory; `digits` ships inside scikit-learn
        "datasets": {"path": None, "why": "nothing is downloaded: built-in datasets are generated in memory "
                                          "(`digits` is read from scikit-learn's package)"},
        "runs": {"path": str(Path("runs")), "absolute": str(Path.cwd() / "runs"),
                 "exists": Path("runs").is_dir(), "why": "relative to the current folder"},
    }


def _bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size, unit = float(n), "B"
    for unit in ("KB", "MB", "GB", "TB"):  # noqa: B007 - the unit it stopped at is shown
        size /= 1000
        if size < 1000:
            break
    return f"{size:.1f} {unit}"


def cache_lines(c: dict[str, Any]) -> list[str]:
    """`caches()` as `nnspec env`'s lines."""
    comp = c["compile"]
    if comp["path"] is None:
        compile_text = f"off ({comp['disabled']})"
    elif comp["exists"]:
        compile_text = f"{comp['path']} ({comp['files']} files, {_bytes(comp['bytes'])})"
    else:
        compile_text = f"{comp['path']} (empty: created by the first `train`)"
    runs, spools = c["runs"], c["stream"]
    spool_text = (f"{spools['path']} ({spools['files']} files, {_bytes(spools['bytes'])})" if spools["exists"] else
                  f"{spools['path']} (empty: `stream` of a Parquet file copies its features there)")
    return [f"compile cache  {compile_text}",
            f"stream spools  {spool_text}",
            f"datasets       none ({c['datasets']['why']})",
            f"runs           {runs['path']}/ ({runs['why']}: {runs['absolute']}"
            + ("" if runs["exists"] else ", none yet") + ")"]


def extra_lines(found: list[dict[str, Any]]) -> list[str]:
    width = max(len(e["name"]) for e in found)
    return [f"  {e['name']:<{width}}  " + ((e["version"] or "installed") if e["installed"]
                                            else f"-  (`pip install 'nnspec[{e['extra']}]'` for {e['for']})")
            for e in found]


def bug_report(argv: Sequence[str] | None) -> str:
    """The lines an internal error adds above its traceback: versions, platform, backend
    (only if JAX had started one) and the command line. Never raises: a failure here is
    reported in its place, and the traceback still follows."""
    lines = []
    try:
        v = versions()
        lines.append("  versions: " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in v))
    except Exception as exc:  # noqa: BLE001 (never raises)
        lines.append(f"  versions: unknown ({type(exc).__name__}: {exc})")
    try:
        lines.append(f"  platform: {platform.platform()} ({platform.machine() or 'unknown machine'})")
    except Exception as exc:  # noqa: BLE001 (never raises)
        lines.append(f"  platform: unknown ({type(exc).__name__}: {exc})")
    try:
        bridge = sys.modules.get("jax._src.xla_bridge")
        if bridge is not None and getattr(bridge, "_backends", None):  # started already: asking starts nothing
            lines.append(f"  backend: {sys.modules['jax'].default_backend()}")
    except Exception:  # noqa: BLE001, S110 (never raises; the backend is only a hint)
        pass
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        lines.append("  command: " + shlex.join(["nnspec", *map(str, words)]))
    except Exception as exc:  # noqa: BLE001 (never raises)
        lines.append(f"  command: unknown ({type(exc).__name__}: {exc})")
    return "\n".join(lines) + "\n"
