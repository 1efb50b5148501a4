"""`progress=` of `nnspec.train`, one rule for single runs and sweeps.

`progress=True` draws a bar with `tqdm.auto` (a widget in a notebook, text in a
terminal), one update per epoch; `False` or `None`, nothing; a callable gets each
epoch's callback as fit.py and sweep_fit.py call it. tqdm is the optional `notebook`
extra, imported only here, and only when a bar is asked for.
"""

from __future__ import annotations

from typing import Any

INSTALL = "pip install 'nnspec[notebook]'"


def require() -> Any:
    """tqdm.auto's `tqdm`; ImportError naming the extra without it (before any training)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(f"`progress=True` draws its bar with tqdm, which is not installed: {INSTALL}") from None
    return tqdm


def bar(total: int, desc: str, initial: int = 0) -> Any:
    """A `tqdm.auto` bar of `total` epochs, `initial` of them done already (a resumed run)."""
    return require()(total=total, initial=initial, desc=desc, unit="epoch")


def wanted(progress: Any) -> bool:
    """Whether `progress` asks for a bar (True), rather than nothing or a callable."""
    if progress is True:
        return True
    if progress is None or progress is False or callable(progress):
        return False
    raise TypeError(f"`progress` is True, False, None or a callable, not {type(progress).__name__}")
