"""Pictures of trained runs (`nnspec plot`, `nnspec train --plot`), drawn in one place.

- learning curves: loss and every metric per epoch, train against validation, one colour
  per run, the epoch whose weights the run keeps marked (read from `history.jsonl` and
  `run.json`: no JAX);
- a sweep's curve: each model's final and best validation loss against a swept value, on
  a log axis where the values are log-spaced, diverged models marked at the top edge
  (read from `sweep.jsonl`: no JAX);
- the loss of every step (`history steps`): each run's per-step training loss against
  the epoch as a fraction, so runs of different batch sizes line up (read from
  `steps.csv`: no JAX);
- a decision boundary: a 2-input classifier's predicted class over a grid spanning its
  training points, the points coloured by class; and a confusion matrix on the test
  split. Both take a run loaded by `infer.load_run` and predict with `infer.predict`,
  as `nnspec eval` and `nnspec predict` do.

matplotlib is optional (`pip install 'nnspec[plot]'`) and imported only here, through
its object API and the Agg canvas: no screen, no pyplot state, no global backend
switched under a notebook. Every picture is written whole (`files.write_atomic`).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from nnspec import runs

if TYPE_CHECKING:  # imported for real only when drawing
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from nnspec.checked import Program
    from nnspec.infer import TrainedRun

INSTALL = "pip install 'nnspec[plot]'"
FORMATS = (".png", ".svg")
DPI = 100
# Pixel sizes of one panel; a figure of several panels puts up to `PER_ROW` in a row.
CURVE_PANEL = (480, 360)
SWEEP_PANEL = (640, 420)
BOUNDARY_PANEL = (480, 440)
PER_ROW = 3
# The lecture's colours: class 0 red, class 1 green; further classes from matplotlib's cycle.
CLASS_COLORS = ("#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")
DIVERGED_COLOR = "#d62728"
PICTURES = {"curves": "the learning curves", "sweep": "the sweep's curve", "steps": "the loss of every step",
            "boundary": "the decision boundary", "confusion": "the confusion matrix"}
# What a run folder without `-o` gets, per picture (nnspec's own files: runs.RUN_FILES).
DEFAULT_NAMES = {"curves": "curves.png", "sweep": "sweep.png", "steps": "steps.png", "boundary": "boundary.png",
                 "confusion": "confusion.png"}
STEPS_PANEL = (800, 440)


class PlotError(Exception):
    """A picture that cannot be drawn as asked (a usage error: exit 2)."""


def require_matplotlib() -> None:
    """Refuse, before any work, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise PlotError(f"drawing pictures needs matplotlib, which is not installed: {INSTALL}") from None


# ------------------------------------------------------------------------- the output file

def output_path(path: str, *, overwrite: bool = False) -> Path:
    """`path` as the file a picture goes to: `.png` or `.svg`, not a folder, and not a file
    that exists unless `overwrite` (nothing the user had is replaced silently)."""
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise PlotError(f"cannot tell what picture `{path}` should be: name a `.png` or an `.svg` file")
    if out.is_dir():
        raise PlotError(f"cannot write the picture to `{path}`: it is a directory")
    if out.exists() and not overwrite:
        raise PlotError(f"`{path}` already exists: choose another name, or pass `--overwrite` to replace it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PlotError(f"cannot write the picture to `{path}`: `{parent}` is a file")
            break
    return out


def default_output(run: Path, kind: str) -> Path:
    """Where a picture of one run goes without `-o`: in its folder, replaced when drawn again."""
    return run / DEFAULT_NAMES[kind]


def save(fig: Figure, path: Path) -> None:
    """The figure as PNG or SVG (by `path`'s suffix), written atomically."""
    import matplotlib
    from nnspec.files import write_atomic
    fmt = path.suffix.lower().lstrip(".")
    buf = io.BytesIO()
    # no date and no random ids in an SVG: the same run draws the same file
    with matplotlib.rc_context({"svg.hashsalt": "nnspec"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    write_atomic(path, buf.getvalue())


def _figure(panels: int, size: tuple[int, int]) -> tuple[Figure, list[Axes]]:
    """A figure of `panels` panels of `size` pixels each, up to `PER_ROW` in a row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = min(panels, PER_ROW)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(cols * size[0] / DPI, rows * size[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


# ------------------------------------------------------------------------- reading runs

def run_kind(run: Path) -> str:
    """`single` or `sweep`, for a folder that holds a run; a PlotError for anything else."""
    if not run.exists():
        raise PlotError(f"`{run}` does not exist")
    if not run.is_dir():
        raise PlotError(f"`{run}` is a file, not a run folder: name the folder `nnspec train` wrote")
    if not runs.is_run_folder(run):
        raise PlotError(f"`{run}` is not an nnspec run folder (it has no `run.json` written by `nnspec train`)")
    info = _json_file(run / "run.json")
    return "sweep" if isinstance(info, dict) and info.get("sweep") else "single"


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _json_lines(path: Path, what: str) -> list[Any]:
    """The records of a `.jsonl` file nnspec wrote; a PlotError naming the line that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PlotError(f"cannot read `{path}`: {getattr(exc, 'strerror', None) or exc}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise PlotError(f"`{path}`, line {n}: not {what} written by nnspec") from None
    return rows


def _is_history(rows: Any) -> bool:
    return isinstance(rows, list) and all(
        isinstance(r, dict) and isinstance(r.get("epoch"), int)
        and all(isinstance(v, (int, float)) or v is None for v in r.values()) for r in rows)


@dataclass(frozen=True)
class Curves:
    """One run's history, as drawn: its name in the legend and the epoch it keeps."""
    name: str
    history: tuple[Mapping[str, float], ...]
    kept: int | None  # the epoch whose weights the run keeps (unfinished: its best so far)
    why: str  # `best val_loss`, `last epoch`, ...
    finished: bool = True  # whether run.json records the kept weights

    @property
    def mark(self) -> str:
        """The legend's words for the marked epoch."""
        return f"kept: epoch {self.kept} ({self.why})" if self.finished else f"{self.why}: epoch {self.kept}"


def read_curves(run: Path, name: str | None = None) -> Curves:
    """The learning curves of the single run in `run`."""
    rows = _json_lines(run / "history.jsonl", "a history")
    if not _is_history(rows):
        raise PlotError(f"`{run / 'history.jsonl'}` is not a history written by nnspec")
    if not rows:
        raise PlotError(f"`{run}` holds no history yet: the run has not finished an epoch "
                        f"(continue it with `nnspec train --resume {run}`)")
    info = _json_file(run / "run.json") or {}
    kept = info.get("kept") if isinstance(info.get("kept"), dict) else None
    if kept is not None and isinstance(kept.get("epoch"), int):
        return Curves(name or str(run), tuple(rows), kept["epoch"], str(kept.get("why") or "kept"))
    # an unfinished run keeps nothing yet: mark its best epoch so far
    key = "val_loss" if any("val_loss" in r for r in rows) else "loss"
    return Curves(name or str(run), tuple(rows), _best_epoch(rows, key), f"best {key} so far", finished=False)


def _best_epoch(rows: Sequence[Mapping[str, Any]], key: str) -> int | None:
    values = [(r[key], r["epoch"]) for r in rows if _finite(r.get(key))]
    return min(values)[1] if values else None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@dataclass(frozen=True)
class SweepRun:
    """A sweep's models as `sweep.jsonl` records them: setting, history, divergence."""
    name: str
    members: tuple[Mapping[str, Any], ...]


def read_sweep(run: Path, name: str | None = None) -> SweepRun:
    """The models of the finished sweep in `run`."""
    rows = _json_lines(run / "sweep.jsonl", "a sweep's record")
    if not rows:
        raise PlotError(f"the sweep in `{run}` has not finished (it has no `sweep.jsonl`): "
                        f"continue it with `nnspec train --resume {run}`")
    for n, r in enumerate(rows, start=1):
        if not (isinstance(r, dict) and isinstance(r.get("setting"), dict) and r["setting"]
                and _is_history(r.get("history"))):
            raise PlotError(f"`{run / 'sweep.jsonl'}`, line {n}: not a sweep's record written by nnspec")
    return SweepRun(name or str(run), tuple(rows))


def history_kind(folders: Sequence[Path]) -> str:
    """What the runs' histories draw: `curves` (single runs) or `sweep` (sweeps), never both."""
    kinds = {run_kind(r) for r in folders}
    if len(kinds) > 1:
        raise PlotError("a sweep's curve and single runs' learning curves are different pictures: "
                        "plot the sweep and the runs separately")
    return "sweep" if kinds == {"sweep"} else "curves"


def history_figure(kind: str, folders: Sequence[Path], names: Sequence[str] | None = None,
                   axis: str | None = None) -> Figure:
    """The learning curves (`curves`) or the sweep's curve (`sweep`) of the runs in `folders`."""
    names = names or [str(r) for r in folders]
    if kind == "sweep":
        return sweep_figure([read_sweep(r, n) for r, n in zip(folders, names)], axis)
    return curves_figure([read_curves(r, n) for r, n in zip(folders, names)])


# ------------------------------------------------------------------------- learning curves

def curves_figure(curves: Sequence[Curves]) -> Figure:
    """Loss and every metric per epoch (one panel each), train solid and validation dashed,
    one colour per run; the kept epoch is a dotted line and a diamond on the curve."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    quantities: list[str] = []
    for c in curves:
        for row in c.history:
            for key in row:
                base = key.removeprefix("val_")
                if key not in ("epoch", "time") and base not in quantities:
                    quantities.append(base)
    quantities.sort(key=lambda q: q != "loss")  # loss first, the metrics in the order recorded
    fig, axes = _figure(len(quantities), CURVE_PANEL)
    several = len(curves) > 1
    for ax, q in zip(axes, quantities):
        for i, c in enumerate(curves):
            color = f"C{i % 10}"
            epochs = [r["epoch"] for r in c.history]
            small = len(epochs) <= 20  # few points: show each one
            for key, style in ((q, "-"), (f"val_{q}", "--")):
                ys = [_value(r.get(key)) for r in c.history]
                if all(math.isnan(y) for y in ys):
                    continue
                ax.plot(epochs, ys, style, color=color, marker="o" if small else None, markersize=3)
            if c.kept is not None:
                ax.axvline(c.kept, color=color, linestyle=":", linewidth=1)
                kept_row = next((r for r in c.history if r["epoch"] == c.kept), None)
                mark = None if kept_row is None else next((kept_row[k] for k in (f"val_{q}", q)
                                                           if _finite(kept_row.get(k))), None)
                if mark is not None:
                    ax.plot([c.kept], [mark], "D", color=color, markersize=6, markeredgecolor="black", zorder=5)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(q)
        ax.set_title(q)
        if q == "loss" and _wide([_value(r.get(k)) for c in curves for r in c.history for k in (q, f"val_{q}")]):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], color="0.3", linestyle="-", label="train"),
               Line2D([], [], color="0.3", linestyle="--", label="validation")]
    if several:
        handles = [Line2D([], [], color=f"C{i % 10}", linewidth=3, label=c.name) for i, c in enumerate(curves)] + handles
        handles.append(Line2D([], [], color="0.3", marker="D", linestyle=":", markeredgecolor="black",
                              label="kept epoch"))
        fig.suptitle("learning curves")
    else:
        c = curves[0]
        if c.kept is not None:
            handles.append(Line2D([], [], color="C0", marker="D", linestyle=":", markeredgecolor="black",
                                  label=c.mark))
        fig.suptitle(f"learning curves of {c.name}")
    # below the panels, never over a curve; the figure keeps its size
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize="small",
               frameon=False)
    return fig


def _value(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def _wide(values: Iterable[float]) -> bool:
    """Positive values spanning more than two orders of magnitude: drawn on a log axis."""
    good = [v for v in values if math.isfinite(v)]
    return bool(good) and min(good) > 0 and max(good) / min(good) > 100


# ------------------------------------------------------------------------- a sweep's curve

def sweep_axes(sweep: SweepRun) -> list[str]:
    """The swept parameters, in the order the spec declares them."""
    return list(sweep.members[0]["setting"])


def choose_axis(sweeps: Sequence[SweepRun], axis: str | None) -> str:
    """The swept value on the x axis: `axis`, else the first that varies."""
    names = sweep_axes(sweeps[0])
    for s in sweeps[1:]:
        if sweep_axes(s) != names:
            raise PlotError(f"`{sweeps[0].name}` sweeps {_names(names)} but `{s.name}` sweeps "
                            f"{_names(sweep_axes(s))}: plot them separately")
    if axis is not None:
        if axis not in names:
            from nnspec.suggest import did_you_mean
            hint = did_you_mean(axis, names)
            raise PlotError(f"the sweep has no axis `{axis}`: it sweeps {_names(names)}" + (f"; {hint}" if hint else ""))
        return axis
    varied = [n for n in names if len({_key(m["setting"][n]) for s in sweeps for m in s.members}) > 1]
    return (varied or names)[0]


def _names(names: Sequence[str]) -> str:
    from nnspec.suggest import one_of
    return one_of(names).replace(" or ", " and ")


def _key(v: Any) -> Any:
    return json.dumps(v, sort_keys=True)


def log_spaced(values: Sequence[float]) -> bool:
    """Whether positive values read better on a log axis: spanning a factor of 10 or more,
    or spaced more evenly by ratio than by difference (`8, 16, 32, 64`)."""
    xs = sorted(set(values))
    if len(xs) < 2 or xs[0] <= 0:
        return False
    if xs[-1] / xs[0] >= 10:
        return True
    if len(xs) < 3:
        return False
    lin, log = np.diff(xs), np.diff(np.log(xs))
    return float(np.std(log) / np.mean(log)) < float(np.std(lin) / np.mean(lin)) - 1e-9


@dataclass(frozen=True)
class _Point:
    x: Any
    final: float
    best: float
    diverged: bool


def sweep_points(sweep: SweepRun, axis: str, key: str) -> dict[str, list[_Point]]:
    """Each model's final and best `key` by the value of `axis`, grouped by the values of
    the other axes (the series' labels); a model whose loss was not finite at the end
    is diverged, whatever its record says."""
    series: dict[str, list[_Point]] = {}
    others = [n for n in sweep_axes(sweep) if n != axis]
    for m in sweep.members:
        label = ", ".join(f"{n}={_show(m['setting'][n])}" for n in others)
        values = [r.get(key) for r in m["history"]]
        final = _value(values[-1]) if values else math.nan
        good = [float(v) for v in values if _finite(v)]
        diverged = bool(m.get("diverged")) or not math.isfinite(final)
        series.setdefault(label, []).append(_Point(m["setting"][axis], final, min(good) if good else math.nan, diverged))
    return series


def _show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def sweep_figure(sweeps: Sequence[SweepRun], axis: str | None = None) -> Figure:
    """Final (solid) and best (dashed) validation loss against the swept value, one colour
    per series; the y axis spans the models that trained, and each diverged model is a
    cross at the top edge."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    axis = choose_axis(sweeps, axis)
    has_val = any("val_loss" in r for s in sweeps for m in s.members for r in m["history"])
    key = "val_loss" if has_val else "loss"
    what = "validation loss" if has_val else "training loss (the sweep holds out no validation data)"
    groups = [(s, label, points) for s in sweeps for label, points in sweep_points(s, axis, key).items()]
    xs_all = [p.x for _, _, pts in groups for p in pts]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    categories = [] if numeric else list(dict.fromkeys(_show(x) for x in xs_all))

    def position(x: Any) -> float:
        return float(x) if numeric else float(categories.index(_show(x)))
    fig, (ax,) = _figure(1, SWEEP_PANEL)
    handles = []
    diverged_x: list[float] = []
    for i, (s, label, points) in enumerate(groups):
        color = f"C{i % 10}"
        trained = sorted((p for p in points if not p.diverged), key=lambda p: position(p.x))
        diverged_x += [position(p.x) for p in points if p.diverged]
        px = [position(p.x) for p in trained]
        ax.plot(px, [p.final for p in trained], "-o", color=color, markersize=4)
        ax.plot(px, [p.best for p in trained], "--v", color=color, markersize=4, alpha=0.8)
        name = ", ".join(t for t in ((s.name if len(sweeps) > 1 else ""), label) if t)
        if name:
            handles.append(Line2D([], [], color=color, linewidth=3, label=name))
    handles += [Line2D([], [], color="0.3", linestyle="-", marker="o", markersize=4, label=f"final {key}"),
                Line2D([], [], color="0.3", linestyle="--", marker="v", markersize=4, label=f"best {key}")]
    finite = [v for _, _, pts in groups for p in pts if not p.diverged for v in (p.final, p.best) if math.isfinite(v)]
    if numeric and log_spaced([position(x) for x in xs_all]):
        ax.set_xscale("log")
    if _wide(finite):
        ax.set_yscale("log")
    if diverged_x:
        # x in data units, y in axes units: on the top edge, whatever the losses' range
        ax.plot(diverged_x, [0.97] * len(diverged_x), "X", color=DIVERGED_COLOR, markersize=9,
                markeredgecolor="black", transform=ax.get_xaxis_transform(), clip_on=False, zorder=6)
        ax.annotate("diverged", (min(diverged_x), 0.97), xycoords=ax.get_xaxis_transform(),
                    xytext=(0, -12), textcoords="offset points", ha="center", va="top",
                    color=DIVERGED_COLOR, fontsize="small")
        handles.append(Line2D([], [], color=DIVERGED_COLOR, marker="X", linestyle="", markeredgecolor="black",
                              label=f"diverged ({len(diverged_x)})"))
        if finite:  # room at the top for the crosses
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * (hi / lo) ** 0.15 if ax.get_yscale() == "log" else hi + 0.15 * (hi - lo))
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
    elif all(isinstance(x, int) for x in xs_all) and ax.get_xscale() == "linear":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # seeds, units: no `2.5`
    ax.set_xlabel(axis)
    ax.set_ylabel(what if has_val else "training loss")
    count = sum(len(s.members) for s in sweeps)
    ax.set_title(f"sweep of {count} models: {key} against {axis}" + ("" if has_val else f"\n({what})"),
                 fontsize="medium")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(handles=handles, fontsize="small")
    return fig


# ------------------------------------------------------------------------- every step's loss

@dataclass(frozen=True)
class Steps:
    """One model's per-step training loss, as `steps.csv` records it."""
    name: str  # the run, and for a sweep's model its setting
    epoch: np.ndarray  # each step's epoch, from 1
    step: np.ndarray  # its place in the epoch, from 1
    loss: np.ndarray
    per_epoch: int  # steps in an epoch

    @property
    def x(self) -> np.ndarray:
        """Each step's position in epochs: step j of epoch e at e − 1 + j / steps per epoch,
        so an epoch's last step is at e, where the learning curves put that epoch."""
        return self.epoch - 1 + self.step / self.per_epoch


def read_steps(run: Path, name: str | None = None) -> list[Steps]:
    """The per-step losses in `run`'s `steps.csv`: one model, or a sweep's every model
    (named by its setting)."""
    import csv
    name = name or str(run)
    path = run / "steps.csv"
    run_kind(run)
    if not path.is_file():
        raise PlotError(f"`{run}` has no `steps.csv` to draw `--steps` from: add `history steps` to the "
                        f"`train` block of its spec and train it again")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PlotError(f"cannot read `{path}`: {getattr(exc, 'strerror', None) or exc}") from None
    head = rows[0] if rows else []
    sweep = bool(head) and head[0] == "model"
    if head[-3:] != ["epoch", "step", "loss"] or (len(head) > 3 and not sweep):
        raise PlotError(f"`{path}`, line 1: not the steps of a run written by nnspec")
    axes = head[1:-3]
    models: dict[int, tuple[str, list[tuple[int, int, float]]]] = {}
    for n, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != len(head):
                raise ValueError
            m = int(row[0]) if sweep else 0
            e, j, v = int(row[-3]), int(row[-2]), float(row[-1])
            if e < 1 or j < 1:
                raise ValueError
        except ValueError:
            raise PlotError(f"`{path}`, line {n}: not a step written by nnspec") from None
        label = ", ".join(f"{a}={_show(_number(v))}" for a, v in zip(axes, row[1:-3]))
        models.setdefault(m, (f"{name}, {label}" if sweep else name, []))[1].append((e, j, v))
    if not models:
        raise PlotError(f"`{run}` holds no steps yet: the run has not finished an epoch "
                        f"(continue it with `nnspec train --resume {run}`)")
    out = []
    for _, (label, points) in sorted(models.items()):
        table = np.asarray(points, np.float64)  # epoch, step, loss
        epochs, steps = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
        out.append(Steps(label, epochs, steps, table[:, 2], int(steps.max())))
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def smoothed(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, s_t = w·s_{t−1} + (1 − w)·v_t,
    debiased (divided by 1 − w^t, so the first steps are not pulled towards 0). A step whose
    loss is not finite is drawn as NaN and left out of the average."""
    out = np.full(len(values), math.nan)
    acc, norm = 0.0, 0.0
    for t, v in enumerate(values):
        if not math.isfinite(v):
            continue
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[t] = acc / norm
    return out


def steps_figure(series: Sequence[Steps], smooth: float | None = None) -> Figure:
    """Every step's training loss against the epoch (step / steps per epoch), one colour per
    run: a thin line of the raw losses, and with `smooth` a thick line of their
    exponential moving average (`smoothed`); a log y axis where the losses span decades."""
    from matplotlib.lines import Line2D
    fig, (ax,) = _figure(1, STEPS_PANEL)
    handles = []
    for i, s in enumerate(series):
        color = f"C{i % 10}"
        x = s.x
        raw_alpha = 0.35 if smooth is not None else 0.9
        ax.plot(x, s.loss, "-", color=color, linewidth=0.6, alpha=raw_alpha, label=f"{s.name} raw",
                marker="o" if len(x) <= 30 else None, markersize=2.5)
        if smooth is not None:
            ax.plot(x, smoothed(s.loss, smooth), "-", color=color, linewidth=2, label=f"{s.name} smoothed")
        handles.append(Line2D([], [], color=color, linewidth=3,
                              label=f"{s.name} ({s.per_epoch:,} step{'s' * (s.per_epoch != 1)} an epoch)"))
    if smooth is not None:
        handles += [Line2D([], [], color="0.3", linewidth=0.6, label="each step"),
                    Line2D([], [], color="0.3", linewidth=2, label=f"smoothed (weight {smooth:g})")]
    if _wide(float(v) for s in series for v in s.loss):
        ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set_xlabel("epoch (step / steps per epoch)")
    ax.set_ylabel("training loss of the step's batch")
    ax.set_title("every step's training loss" + (", and its moving average" if smooth is not None else ""),
                 fontsize="medium")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(handles=handles, fontsize="small")
    return fig


# ------------------------------------------------------------------------- in a notebook

# The learning curve in a result's HTML: 480 x 280 pixels.
CURVE_INCHES, CURVE_DPI = (6.0, 3.5), 80


def _matplotlib() -> bool:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return False
    return True


def img_html(fig: Figure, alt: str) -> str:
    """`fig` as an inline PNG `<img>` (base64), at the figure's own size and dpi."""
    import base64
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{alt}' src='data:image/png;base64,{data}'/>"


def curve_html(history: Sequence[Mapping[str, float]], best_epoch: int | None = None) -> str:
    """A single run's loss (and validation loss) per epoch as an inline PNG, for
    `Result._repr_html_`; empty without matplotlib or without epochs."""
    if not history or not _matplotlib():
        return ""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=CURVE_INCHES, dpi=CURVE_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [row["epoch"] for row in history]
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if any(key in row for row in history):
            ax.plot(epochs, [row.get(key, math.nan) for row in history], label=label)
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return img_html(fig, "learning curve")


def sweep_html(members: Sequence[Mapping[str, Any]], name: str = "") -> str:
    """A sweep's curve (`sweep_figure`, what `nnspec plot` draws of the sweep's folder) as
    an inline PNG, for `SweepResult._repr_html_`; `members` are `sweep.jsonl`'s records
    (setting, history, diverged). Empty without matplotlib or without epochs."""
    if not members or not any(m["history"] for m in members) or not _matplotlib():
        return ""
    return img_html(sweep_figure([SweepRun(name, tuple(members))]), "sweep curve")


# ------------------------------------------------------------------------- from the model

def classifier_problem(program: Program) -> str | None:
    """Why the model's outputs are not one class per example (None: they are)."""
    loss = program.loss
    if loss is None or loss.task not in ("binary", "multiclass") or (
            program.train is not None and program.train.target == "input"):
        return "it is not a classifier (its loss predicts numbers, not classes)"
    if loss.task == "binary" and tuple(program.model.output_shape) != (1,):
        return (f"it predicts {math.prod(program.model.output_shape)} yes/no labels at once "
                f"(output shape {list(program.model.output_shape)}), not one class")
    return None


def boundary_problem(program: Program) -> str | None:
    """Why the model has no decision boundary in the plane (None: it has one)."""
    from nnspec.prepare import token_vocab
    problem = classifier_problem(program)
    if problem is not None:
        return problem
    model = program.model
    if len(model.inputs) != 1:
        return f"it has {len(model.inputs)} inputs, not one input of 2 features"
    if tuple(model.input_shape) != (2,):
        return (f"its input `{model.inputs[0][0]}` has {math.prod(model.input_shape)} features "
                f"(shape {list(model.input_shape)}), not 2")
    if token_vocab(program) is not None:
        return f"its input `{model.inputs[0][0]}` holds token ids, not points in the plane"
    if program.loss is not None and program.loss.task == "multiclass" and len(program.model.output_shape) != 1:
        return f"it predicts a class per position (output shape {list(program.model.output_shape)}), not one"
    return None


def refuse(kind: str, program: Program, name: str) -> None:
    """A PlotError when the model of run `name` cannot be drawn as `kind` (`boundary` or
    `confusion`): known from the spec, so the CLI asks before it starts JAX."""
    if kind == "boundary":
        problem = boundary_problem(program)
        what = "`--boundary` draws a classifier of 2 input features over the plane"
    else:
        problem = classifier_problem(program)
        what = "`--confusion` counts a classifier's right and wrong classes"
    if problem is not None:
        raise PlotError(f"{what}, but the model of `{name}` cannot be drawn so: {problem}")


def _class_names(trained: TrainedRun, count: int) -> tuple[str, ...]:
    names = trained.meta.get("classes")
    if isinstance(names, list) and len(names) == count:
        return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(count))


def _classes(trained: TrainedRun) -> int:
    loss = trained.program.loss
    assert loss is not None
    return 2 if loss.task == "binary" else int(trained.program.model.output_shape[-1])


def _predict(trained: TrainedRun, x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(class, probabilities) of each example of `x` (already standardized), as `nnspec
    predict` computes them: `infer.predict`, then the loss's reading of the outputs."""
    import jax
    import jax.numpy as jnp

    from nnspec import nn
    from nnspec.infer import predict
    loss = trained.program.loss
    assert loss is not None
    logits = bool(loss.params.get("from_logits", False))

    @jax.jit
    def run(params, xb):
        pred = predict(trained.model, params, xb, ensemble=trained.ensemble)
        return nn.predicted_class(pred, loss.name, logits), nn.probabilities(pred, loss.name, logits)
    classes, probs = [], []
    for start in range(0, len(x), chunk):
        c, p = run(trained.params, jnp.asarray(x[start:start + chunk]))
        classes.append(np.asarray(c))
        probs.append(np.asarray(p))
    return np.concatenate(classes), np.concatenate(probs)


def _true_class(trained: TrainedRun, y: np.ndarray) -> np.ndarray:
    """The labels as the `accuracy` metric reads them (nn.true_class)."""
    import jax.numpy as jnp

    from nnspec import nn
    from nnspec.prepare import _labels
    loss = trained.program.loss
    assert loss is not None
    return np.asarray(nn.true_class(jnp.asarray(_labels(trained.program, y)), loss.name,
                                    loss.params.get("labels", "index")))


@dataclass(frozen=True)
class Boundary:
    """What a decision-boundary panel draws, in the data's own units."""
    name: str
    points: np.ndarray  # the training examples, (n, 2)
    labels: np.ndarray  # their classes, (n,)
    classes: tuple[str, ...]
    features: tuple[str, str]
    grid: tuple[np.ndarray, np.ndarray]  # the grid's x and y coordinates
    predicted: np.ndarray  # the class predicted at each grid point, (len(y), len(x))
    probability: np.ndarray | None  # a binary model's P(class 1) at each grid point


def boundary(trained: TrainedRun, name: str, *, resolution: int = 200) -> Boundary:
    """The model's prediction over a grid spanning its training points (5% beyond them)."""
    refuse("boundary", trained.program, name)
    train, std = trained.splits.train, trained.standardizer
    x = np.asarray(train.x, dtype=np.float64).reshape(len(train), 2)
    if std is not None:  # back to the data's units, for the axes
        x = x * np.asarray(std.std, np.float64) + np.asarray(std.mean, np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = np.where(hi > lo, (hi - lo) * 0.05, 1.0)
    gx, gy = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], resolution) for i in range(2))
    xx, yy = np.meshgrid(gx, gy)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    classes, probs = _predict(trained, std.apply(grid) if std is not None else grid)
    shape = xx.shape
    loss = trained.program.loss
    assert loss is not None
    probability = probs.reshape(len(grid), -1)[:, 0].reshape(shape) if loss.task == "binary" else None
    names = train.feature_names if train.feature_names and len(train.feature_names) == 2 else ("x1", "x2")
    return Boundary(name, x, _true_class(trained, train.y).reshape(len(train)),
                    _class_names(trained, _classes(trained)), (str(names[0]), str(names[1])),
                    (gx, gy), classes.reshape(shape), probability)


def boundary_figure(panels: Sequence[Boundary]) -> Figure:
    """One panel per run: the predicted class as a pale background (a binary model's
    probability shaded from red to green), the 0.5 contour, the training points by class."""
    from matplotlib.colors import ListedColormap
    fig, axes = _figure(len(panels), BOUNDARY_PANEL)
    for ax, b in zip(axes, panels):
        k = len(b.classes)
        colors = [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(k)]
        gx, gy = b.grid
        if b.probability is not None:
            ax.contourf(gx, gy, b.probability, levels=np.linspace(0, 1, 11), cmap="RdYlGn", alpha=0.35,
                        vmin=0, vmax=1)
            if b.probability.min() < 0.5 < b.probability.max():
                ax.contour(gx, gy, b.probability, levels=[0.5], colors="black", linewidths=1.2)
        else:  # classes as cells: contours of class indices would invent classes between them
            step = (gx[1] - gx[0]) / 2, (gy[1] - gy[0]) / 2
            ax.imshow(b.predicted, origin="lower", interpolation="nearest", aspect="auto", alpha=0.3,
                      cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5,
                      extent=(gx[0] - step[0], gx[-1] + step[0], gy[0] - step[1], gy[-1] + step[1]))
        for i, cls in enumerate(b.classes):
            at = b.labels == i
            if at.any():
                ax.scatter(b.points[at, 0], b.points[at, 1], s=12, color=colors[i], edgecolors="white",
                           linewidths=0.3, label=cls, zorder=3)
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        ax.set_xlabel(b.features[0])
        ax.set_ylabel(b.features[1])
        ax.set_title(f"{b.name}\ndecision boundary over {len(b.points)} training examples", fontsize="medium")
        ax.legend(fontsize="small", loc="upper right", framealpha=0.8)
    return fig


# ------------------------------------------------------------------------- confusion matrix

def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     classes: Sequence[str]) -> np.ndarray:
    """counts[i, j]: how many examples of class i (of `classes`) were predicted as class j."""
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true classes but {p.size} predicted")
    k = len(classes)
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise ValueError(f"a class index outside 0..{k - 1}")
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (t.astype(np.int64), p.astype(np.int64)), 1)
    return counts


@dataclass(frozen=True)
class Confusion:
    name: str
    counts: np.ndarray
    classes: tuple[str, ...]
    split: str  # the split it was measured on: `test`, `validation` or `training`


def confusion(trained: TrainedRun, name: str) -> Confusion:
    """The confusion matrix of the run's test split (validation without one; training
    without either), with the classes and labels the `accuracy` metric uses."""
    refuse("confusion", trained.program, name)
    s = trained.splits
    ds, split = next(((d, n) for d, n in ((s.test, "test"), (s.val, "validation"), (s.train, "training"))
                      if d is not None and len(d)))
    predicted, _ = _predict(trained, ds.x)
    classes = _class_names(trained, _classes(trained))
    return Confusion(name, confusion_matrix(_true_class(trained, ds.y), predicted, classes), classes, split)


def confusion_figure(panels: Sequence[Confusion]) -> Figure:
    """One panel per run: counts by true class (rows) and predicted class (columns)."""
    k = max(len(c.classes) for c in panels)
    side = max(440, 160 + 40 * k)
    fig, axes = _figure(len(panels), (side, side))
    for ax, c in zip(axes, panels):
        counts = c.counts
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, int(counts.max())))
        n = len(c.classes)
        for i in range(n):
            for j in range(n):
                dark = counts[i, j] > 0.6 * counts.max()
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize="small" if n > 6 else "medium",
                        color="white" if dark else "black")
        ax.set_xticks(range(n), c.classes, rotation=45 if n > 6 else 0)
        ax.set_yticks(range(n), c.classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        total = int(counts.sum())
        accuracy = np.trace(counts) / total if total else math.nan
        ax.set_title(f"{c.name}\n{c.split} split: {total} examples, accuracy {accuracy:.3f}", fontsize="medium")
    return fig
