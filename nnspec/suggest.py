"""Did-you-mean suggestions for unknown names."""

from __future__ import annotations

import difflib
from typing import Iterable, overload


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The most similar candidate, if any is similar enough to be a likely typo."""
    candidates = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


@overload
def did_you_mean(name: str, candidates: Iterable[str], *, fallback: str) -> str: ...
@overload
def did_you_mean(name: str, candidates: Iterable[str], *, fallback: None = None) -> str | None: ...
def did_you_mean(name: str, candidates: Iterable[str], *, fallback: str | None = None) -> str | None:
    """`did you mean `relu`?`, or `fallback` when nothing is close."""
    best = closest(name, candidates)
    return f"did you mean `{best}`?" if best is not None else fallback


def one_of(names: Iterable[str], limit: int = 12) -> str:
    """`a`, `b` or `c` (at most `limit` names)."""
    names = [f"`{n}`" for n in names]
    if len(names) > limit:
        names = names[:limit] + ["…"]
        return ", ".join(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def plural(noun: str) -> str:
    """`losses`, `layers`, `train settings`: the plural of a registry's kind."""
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
