"""How numbers, and text read from the user's files, are shown on screen: one rule each."""

from __future__ import annotations

import math
from typing import Any, Sequence


def format_value(v: float) -> str:
    """`v` with four decimals in the usual range, in scientific notation outside it
    (so a loss of 3e-5 reads `3.000e-05`, not `0.0000`); `nan`, `inf` and `-inf` as such."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4f}"
    return f"{v:.3e}"


def excerpt(text: Any, limit: int = 60) -> str:
    """At most `limit` characters of text read from a file, unprintable ones escaped and
    a cut marked with `…`: an error message must never replay a file's content."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"


def metrics_line(row: dict[str, Any]) -> str:
    """`accuracy 0.9600  loss 0.4194`: a record's numbers, the epoch and time left out."""
    return "  ".join(f"{k} {format_value(v)}" for k, v in row.items()
                     if k not in ("epoch", "time") and isinstance(v, (int, float)))


def history_html(history: list[dict[str, Any]], *, best_epoch: int | None = None, most: int = 40) -> str:
    """The per-epoch history as an HTML table (for notebooks), the best epoch in bold;
    a long history shows its first and last `most // 2` epochs."""
    import html
    if not history:
        return "<p>no epochs</p>"
    keys = [k for k in history[0] if k != "time"]
    shown: list[dict[str, Any] | None] = list(history)
    if len(history) > most:
        shown = [*history[:most // 2], None, *history[-(most // 2):]]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = []
    for row in shown:
        if row is None:
            body.append(f"<tr><td colspan='{len(keys)}'>… {len(history) - 2 * (most // 2)} epochs …</td></tr>")
            continue
        cells = "".join(f"<td>{row[k] if k == 'epoch' else format_value(row[k]) if isinstance(row.get(k), (int, float)) else ''}</td>"
                        for k in keys)
        style = " style='font-weight:bold'" if best_epoch is not None and row.get("epoch") == best_epoch else ""
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# a confusion matrix wider than this many classes is written to the run folder, not shown
MAX_SHOWN_CLASSES = 20


def confusion_table(counts: Any, names: Sequence[str] | None = None) -> str:
    """A classifier's confusion counts (`[label, true, predicted]`, metrics.confusion) as
    text: one matrix, rows the true class and columns the predicted one, for a softmax or
    one 0/1 output, its classes by `names` (the training data's) or by index; a row of
    tn/fp/fn/tp per label for several 0/1 outputs."""
    labels, classes = len(counts), len(counts[0])
    if labels == 1:
        m = counts[0]
        names = [str(c) for c in (names if names is not None and len(names) == classes else range(classes))]
        width = max(len(n) for n in names + [str(int(v)) for row in m for v in row])
        head = "  " + " " * (len("true ") + width) + "  " + "  ".join(f"{n:>{width}}" for n in names)
        rows = [f"  true {n:>{width}}  " + "  ".join(f"{int(v):>{width}}" for v in row) for n, row in zip(names, m)]
        return "confusion matrix (rows: true class, columns: predicted class)\n" + "\n".join([head, *rows]) + "\n"
    cells = [["label", "tn", "fp", "fn", "tp"]] + [
        [str(i), *(str(int(v)) for v in (m[0][0], m[0][1], m[1][0], m[1][1]))] for i, m in enumerate(counts)]
    widths = [max(len(r[j]) for r in cells) for j in range(5)]
    lines = ["  " + "  ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in cells]
    return "confusion counts per label (tn, fp: true 0; fn, tp: true 1)\n" + "\n".join(lines) + "\n"


def confusion_files(counts: Any, split: str, examples: int,
                    names: Sequence[str] | None = None) -> tuple[str, str]:
    """(confusion.json, confusion.csv) of confusion counts `[label, true, predicted]`: the
    JSON holds every label's matrix (one matrix's classes by `names` too, when given); the
    CSV one row per (label,) true class, a column per predicted class, by index."""
    import json
    matrices = [[[int(v) for v in row] for row in m] for m in counts]
    doc: dict[str, Any] = {"split": split, "examples": examples, "rows": "true class", "columns": "predicted class"}
    if len(matrices) == 1:
        if names is not None and len(names) == len(matrices[0]):
            doc["classes"] = list(names)
        doc["matrix"] = matrices[0]
        lines = ["true," + ",".join(f"predicted_{c}" for c in range(len(matrices[0])))]
        lines += [f"{t}," + ",".join(map(str, row)) for t, row in enumerate(matrices[0])]
    else:
        doc["labels"] = matrices
        lines = ["label,true,predicted_0,predicted_1"]
        lines += [f"{i},{t}," + ",".join(map(str, row)) for i, m in enumerate(matrices) for t, row in enumerate(m)]
    return json.dumps(doc, indent=1) + "\n", "\n".join(lines) + "\n"
