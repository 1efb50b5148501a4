"""The run folder: what a run records, so that resume, eval and predict rebuild exactly
what was trained, never a re-reading of a spec that may since have changed.

A run's *record* (`run` in the checkpoint's metadata, copied into `run.json`) holds the
seed and epochs it trained with (command-line overrides included, and which those were),
the split fractions, and where the data was: for a file, its absolute path, size and
SHA-256. `for_run` turns a spec back into the program of the run it claims to be,
refusing (located) a spec whose model, data or split differ from the run's.

A folder is an nnspec run folder when its `run.json` says so; nnspec writes, replaces or
removes only its own files (`RUN_FILES`) inside one, and never touches another folder.
No JAX here: the CLI picks the folder before it starts JAX.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from nnspec import checkpoint, folders, ir
from nnspec.checked import Program
from nnspec.datasets import DataSource, data_files

FORMAT = "nnspec-run"
VERSION = 1
# Every file nnspec may write in a run folder (single runs and sweeps).
RUN_FILES = ("spec.nn", "ir.json", "run.json", "history.csv", "history.jsonl", "checkpoint.npz",
             "best.nn", "sweep.txt", "sweep.csv", "sweep.jsonl", "steps.csv", "split.json",
             # `nnspec plot RUN` without `-o` (plot.DEFAULT_NAMES)
             "curves.png", "sweep.png", "steps.png", "boundary.png", "confusion.png",
             # `nnspec eval RUN` of a classifier
             "confusion.json", "confusion.csv")


class RunFolderError(Exception):
    """A run folder that cannot be used as asked (a usage error: exit 2)."""


# ------------------------------------------------------------------------- the folder

def is_run_folder(path: Path) -> bool:
    """Whether `path` holds a run nnspec wrote (its run.json says so)."""
    try:
        info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    # run.json files before the format field carried the spec's fingerprint
    return isinstance(info, dict) and (info.get("format") == FORMAT or "spec_fingerprint" in info)


RUN = folders.Kind(
    noun="run", files=RUN_FILES, holds=is_run_folder, error=RunFolderError,
    taken="`{path}` already holds a run; continue it with `nnspec train --resume {path}`, "
          "train into a new folder, or pass `--overwrite` to replace it",
    described="an nnspec run folder")


def choose_folder(spec_path: str, out: str | None, *, overwrite: bool = False) -> tuple[Path, str | None]:
    """(the folder a new run goes into, a note for the screen or None).

    Without `--out`: `runs/NAME`, or the first free `runs/NAME-2`, `runs/NAME-3`, ... when
    it is taken, so two runs (or two `model.nn` in different folders) never mix.
    With `--out DIR`: a new or empty folder; a folder holding an nnspec run only with
    `overwrite` (and then only nnspec's own files are replaced); never a folder holding
    anything else."""
    if out is None:
        base = Path("runs") / Path(spec_path).stem
        folders.creatable(base, RUN)
        candidate, k = base, 1
        while candidate.exists() and not folders.empty_dir(candidate):
            k += 1
            candidate = base.with_name(f"{base.name}-{k}")
        note = f"`{base}` holds an earlier run" if k > 1 else None
        return candidate, note
    return claim(Path(out), overwrite=overwrite)


def claim(path: Path, *, overwrite: bool = False) -> tuple[Path, str | None]:
    """`path` as the folder of a new run: new or empty, or a run folder to `overwrite`
    (only nnspec's own files are removed); (path, a note for the screen or None)."""
    replaced = folders.claim(path, RUN, overwrite=overwrite)
    return path, f"replacing the run in `{path}`" if replaced else None


def remove_stale_temporaries(out: Path) -> None:
    """A process killed mid-write (SIGKILL, power loss) leaves its temporary file beside the
    intact old one; the next run in the folder removes it."""
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------- the record

def data_record(program: Program, base_dir: Path) -> dict[str, Any]:
    """Where the run's data came from: the source and, for a file, its absolute path,
    size and SHA-256 (so a changed file is noticed, and found again from anywhere)."""
    t = program.train
    assert t is not None
    rec = _source_record(t.data, base_dir)
    for key, source in (("val", t.val_data), ("test", t.test_data)):  # separate files, recorded alike
        if source is not None:
            rec[key] = _source_record(source, base_dir)
    return rec


def _source_record(source: DataSource, base_dir: Path) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": source.kind, "params": _jsonable(dict(source.params))}
    files = data_files(source)
    for key, path in files.items():
        full = _absolute(path, base_dir)
        one = {"path": str(full), **_digest(full)}
        if list(files) == ["path"]:  # one file: recorded as it always was
            rec.update(one)
        else:  # several (`npy(x=, y=)`, `idx(images=, labels=)`): each by its param
            rec.setdefault("files", {})[key] = one
    return rec


def _digest(full: Path) -> dict[str, Any]:
    """A data file's size and SHA-256; a folder of images' count, size and one SHA-256 of
    them all (nnspec/images.py)."""
    if full.is_dir():
        from nnspec.images import digest
        return digest(full)
    return {"bytes": full.stat().st_size, "sha256": sha256(full)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record(program: Program, base_dir: Path, *, epochs: int, overrides: Mapping[str, Any],
           given: Any = None) -> dict[str, Any]:
    """The run record stored with every checkpoint of a run; `given` (`given.Given`) is the
    arrays given from Python in place of the spec's data, recorded by shape and digest."""
    t = program.train
    assert t is not None
    return {"seed": t.seed, "epochs": epochs, "overrides": dict(overrides),
            "split": {"val": t.val, "test": t.test, **({"stratify": True} if t.stratify else {}),
                      **({"column": t.split_column} if t.split_column is not None else {})},
            "standardize": t.standardize,
            "data": given.record() if given is not None else data_record(program, base_dir),
            **({"columns": _columns_record(t.columns)} if t.columns is not None else {})}


def _columns_record(columns: Any) -> dict[str, Any] | None:
    """The `categorical` and `missing` lines (columns.Columns), as JSON, for `differences`."""
    if columns is None:
        return None
    return _jsonable({"categorical": list(columns.categorical), "vocab": {k: list(v) for k, v in columns.vocab},
                      "unknown": columns.unknown, "missing": columns.missing.show(),
                      "fills": {k: f.show() for k, f in columns.fills}})


def with_overrides(program: Program, overrides: Mapping[str, Any]) -> Program:
    """The program with the command line's `--seed` applied (to every model of a sweep), and
    `--epochs`, which replaces a `steps N` budget (the epochs themselves are the caller's)."""
    seed = overrides.get("seed")
    whole = overrides.get("epochs") is not None
    if (seed is None and not whole) or program.train is None:
        return program

    def reseed(p: Program) -> Program:
        assert p.train is not None  # a sweep's programs all train, as the spec does
        return dataclasses.replace(p, train=dataclasses.replace(
            p.train, seed=p.train.seed if seed is None else seed, steps=None if whole else p.train.steps))
    out = reseed(program)
    if program.sweep is not None:
        out = dataclasses.replace(out, sweep=dataclasses.replace(
            program.sweep, programs=tuple(reseed(p) for p in program.sweep.programs)))
    return out


def merge_overrides(recorded: Mapping[str, Any], given: Mapping[str, Any], run: Path) -> dict[str, Any]:
    """The run's overrides on `--resume`: `--seed` must match the run's (it made the data,
    the split and the weights); `--epochs` may set a new end, and is recorded."""
    out = dict(recorded)
    for key, value in given.items():
        if value is None:
            continue
        if key == "seed" and recorded.get("seed") != value:
            was = f"with `--seed {recorded['seed']}`" if "seed" in recorded else "without `--seed`"
            raise RunFolderError(f"`{run}` was started {was}; it cannot be resumed with `--seed {value}` "
                                 f"(the seed made its split and its weights: train a new run for that)")
        out[key] = value
    return out


def relocate(program: Program, rec: Mapping[str, Any]) -> tuple[Program, str | None]:
    """The program reading the data the run recorded, by its absolute path, checked
    unchanged; (program, problem or None). A built-in dataset needs nothing."""
    data = rec.get("data") or {}
    t = program.train
    if t is None:
        return program, None
    changes: dict[str, Any] = {}
    for field, key, source, recorded in (("data", None, t.data, data), ("val_data", "val", t.val_data, data.get("val")),
                                         ("test_data", "test", t.test_data, data.get("test"))):
        files = _recorded_files(recorded) if isinstance(recorded, dict) else {}
        if not files or source is None:
            continue
        moved = {}
        what = "data file" if key is None else f"{'validation' if key == 'val' else 'test'} file"
        for param, one in files.items():
            full = Path(one["path"])
            if not (full.is_file() or full.is_dir() and source.kind == "images"):
                return program, f"the run's {what} `{full}` is gone"
            from nnspec.images import FolderError
            try:
                now = _digest(full)
            except (OSError, FolderError):  # a folder that no longer holds a class of images
                now = {}
            if now.get("bytes") != one.get("bytes") or now.get("sha256") != one.get("sha256"):
                return program, f"the run's {what} `{full}` has changed since the run was trained"
            moved[param] = str(full)
        changes[field] = DataSource(source.kind, {**dict(source.params), **moved})
    if not changes:
        return program, None
    return dataclasses.replace(program, train=dataclasses.replace(t, **changes)), None


def _recorded_files(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The data files a run recorded, by param: `{"path": {...}}` for one file."""
    if "path" in data:
        return {"path": data}
    files = data.get("files")
    return {k: v for k, v in files.items() if isinstance(v, dict) and isinstance(v.get("path"), str)} \
        if isinstance(files, dict) else {}


def differences(program: Program, rec: Mapping[str, Any], base_dir: Path, *,
                by_path: bool = True, given: Any = None) -> list[tuple[str, str]]:
    """How the spec's training setup differs from the run's: (statement, what) pairs for
    the data source and the split (the model is compared by its fingerprint elsewhere).
    `by_path=False` leaves out where the data file is (the run folder's own copy of the
    spec names it relative to the user's folder, not its own). `given`: the arrays given
    from Python in place of the spec's data (`given.Given`), compared by their digests."""
    from nnspec.given import KIND, differs
    t = program.train
    if t is None:
        return []
    out = []
    data = rec.get("data") or {}
    problem = differs(given, data)
    if problem is not None:
        out.append(("data", problem))
    if given is not None or data.get("kind") == KIND:
        sources: tuple = ()
    else:
        sources = ((t.data, data, "trained on"), (t.val_data, data.get("val"), "validated on"),
                   (t.test_data, data.get("test"), "tested on"))
    for source, theirs_rec, what in sources:
        theirs_rec = theirs_rec if isinstance(theirs_rec, dict) else None
        if source is None or theirs_rec is None:
            if (source is None) != (theirs_rec is None):
                out.append(("data", f"the run was {what} {'a separate file' if theirs_rec else 'no separate file'}, "
                                    f"this spec names {'one' if source is not None else 'none'}"))
            continue
        mine: dict[str, Any] = {"kind": source.kind, "params": _jsonable(dict(source.params))}
        theirs: dict[str, Any] = {"kind": theirs_rec.get("kind"), "params": dict(theirs_rec.get("params") or {})}
        recorded = _recorded_files(theirs_rec)
        for key, path in data_files(source).items():
            if key not in recorded:
                continue
            full = _absolute(path, base_dir)
            mine["params"][key] = theirs["params"][key] = None  # compared as absolute paths below
            if by_path and str(full) != recorded[key]["path"]:
                out.append(("data", f"the run was {what} `{recorded[key]['path']}`, this spec reads `{full}`"))
        if mine != theirs:
            out.append(("data", f"the run was {what} other data than this spec names"))
    if _columns_record(t.columns) != rec.get("columns"):  # how the cells were read and encoded
        what = "categorical" if program.spec.train is not None and program.spec.train.get("categorical") else "missing"
        out.append((what, "the run read its feature columns with other `categorical` or `missing` lines"))
    split = rec.get("split") or {}
    if split and (split.get("val") != t.val or split.get("test") != t.test):
        out.append(("split", f"the run was split val={split.get('val'):g} test={split.get('test'):g}, "
                             f"this spec says val={t.val:g} test={t.test:g}"))
    elif split and (bool(split.get("stratify")) != t.stratify or split.get("column") != t.split_column):
        out.append(("split", f"the run was split {_split_how(split.get('stratify'), split.get('column'))}, "
                             f"this spec splits {_split_how(t.stratify, t.split_column)}"))
    return out


def _split_how(stratify: Any, column: Any) -> str:
    return (f"by the column `{column}`" if column is not None else
            "by fractions within each class (`stratify`)" if stratify else "by fractions of all the examples")


def _absolute(path: str, base_dir: Path) -> Path:
    """A data path as the loader resolves it: relative to the spec's folder."""
    return (Path(path) if os.path.isabs(path) else base_dir / path).resolve()


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


# ------------------------------------------------------------------------- the files

def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from nnspec import __version__
    out = {"nnspec": __version__}
    for name in ("jax", "jaxlib", "optax", "numpy"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            out[name] = mod.__version__
    return out


def start(out: Path, program: Program, info: Mapping[str, Any], *, split: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the spec, its IR, run.json and (given `split`, a `split.Rows.record()`) the
    row positions of each part, split.json, into a fresh run folder; returns the files
    written (so a run that fails before its first checkpoint can take them back)."""
    from nnspec.format import format_spec
    out.mkdir(parents=True, exist_ok=True)
    written = []
    files = [("spec.nn", format_spec(program.spec)), ("ir.json", ir.to_json(program.spec))]
    if split is not None:
        files.append(("split.json", json.dumps(split) + "\n"))
    for name, data in (*files, ("run.json", json.dumps({"format": FORMAT, "version": VERSION, **info}, indent=2))):
        written.append(out / name)
        checkpoint.write_bytes_atomic(out / name, data.encode())
    return written


def update_info(out: Path, **changes: Any) -> None:
    """Rewrite run.json with `changes` (end time, status, the kept model's metrics)."""
    try:
        info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        info = {"format": FORMAT, "version": VERSION}
    info.update(changes)
    checkpoint.write_bytes_atomic(out / "run.json", json.dumps(info, indent=2).encode())


def write_history(out: Path, rows: list[dict[str, float]]) -> None:
    # Rewritten whole (atomically) with the checkpoint: never torn, never ahead of it.
    if not rows:
        return
    keys = list(rows[0].keys())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    checkpoint.write_bytes_atomic(out / "history.csv", buf.getvalue().encode())
    checkpoint.write_bytes_atomic(out / "history.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


def steps_csv(steps: Any, models: list[dict[str, Any]] | None = None) -> str:
    """`history steps`' file: one row per gradient step, `epoch,step,loss` (1-based; the
    loss is the step's batch mean, as float32 writes it). `steps` is one model's array
    (epochs x steps per epoch); for a sweep, a list of them, one per model, with `models`
    naming each one's setting: the rows then begin with `model` (its place in sweep.jsonl,
    from 0) and the swept values."""
    import numpy as np
    head = io.StringIO()
    w = csv.writer(head, lineterminator="\n")
    axes = list(models[0]) if models else []
    w.writerow((["model", *axes] if models is not None else []) + ["epoch", "step", "loss"])
    parts = [head.getvalue()]
    per_model = steps if models is not None else [steps]
    for m, arr in enumerate(per_model):
        lead = io.StringIO()
        if models is not None:
            csv.writer(lead, lineterminator="").writerow([m, *(models[m][a] for a in axes), ""])
        lead_text = lead.getvalue()
        # formatted row by row in one comprehension: a large run's file is rewritten whole
        parts += [f"{lead_text}{e},{j},{v:.9g}\n" for e, row in enumerate(np.asarray(arr, np.float32).tolist(), start=1)
                  for j, v in enumerate(row, start=1)]
    return "".join(parts)


def write_steps(out: Path, steps: Any, models: list[dict[str, Any]] | None = None) -> None:
    # Rewritten whole (atomically), as history.csv: the checkpoint holds the same steps, so
    # a resumed run goes on from exactly the rows its checkpoint describes.
    checkpoint.write_bytes_atomic(out / "steps.csv", steps_csv(steps, models).encode())


def take_back(out: Path, written: list[Path], created: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (a full disk):
    only nnspec's own files, and the folder only if this run created it and it is empty."""
    for p in written:
        p.unlink(missing_ok=True)
    remove_stale_temporaries(out)
    if created:
        try:
            out.rmdir()
        except OSError:
            pass


# ------------------------------------------------------------------------- the checkpoint

def model_fingerprint(program: Program) -> str:
    """What decides whether a checkpoint's weights fit a spec: its model and loss, and
    the blocks it may use (a spec without blocks keeps the fingerprint it always had)."""
    spec = program.spec
    return ir.fingerprint((spec.model, spec.loss) + ((spec.blocks,) if spec.blocks else ())
                          + ((spec.losses,) if spec.losses is not None else ()))


def examples(splits: Any) -> dict[str, int] | None:
    """How many examples each split of `splits` (a prepare.Splits) holds."""
    if splits is None:
        return None
    return {"train": len(splits.train), "val": len(splits.val) if splits.val else 0,
            "test": len(splits.test) if splits.test else 0,
            **({"dropped": splits.dropped} if getattr(splits, "dropped", 0) else {})}


def data_meta(splits: Any) -> dict[str, Any]:
    """What eval and predict need of the data without reading it again: the standardizer,
    the classes and the column names of the training split."""
    train = splits.train
    encoder = getattr(splits, "encoder", None)
    return {"standardizer": splits.standardizer.to_dict() if splits.standardizer is not None else None,
            # `categorical`/`missing`: the training split's vocabularies and fill values (columns.py)
            **({"columns": encoder.to_dict()} if encoder is not None else {}),
            # `class_weight=balanced`: each such output's weights, counted on the training split
            **({"class_weights": {k: list(v) for k, v in splits.class_weights.items()}}
               if getattr(splits, "class_weights", None) else {}),
            # with several outputs, each output's classes by its name
            "classes": ({k: list(v) if v is not None else None for k, v in train.classes.items()}
                        if isinstance(train.classes, dict) else
                        list(train.classes) if train.classes is not None else None),
            "feature_names": list(train.feature_names) if train.feature_names else None,
            "target_names": list(train.target_names) if train.target_names else None}


def save_checkpoint(path: Path, program: Program, state: Any, best_params: Any, history: list[dict[str, float]],
                    stopper: Mapping[str, Any] | None, splits: Any, final: Any = None,
                    extra: Mapping[str, Any] | None = None, epoch_key: Any = (), steps: Any = None) -> None:
    """One run's checkpoint: its state (`TrainState`), the best weights so far, the final
    weights once it has finished, and the metadata that resume, eval and predict read.
    `epoch_key` is the key data of the base of the epochs' keys (`Trainer.epoch_key_data`);
    `steps` (`history steps`) the per-step losses so far, epochs x steps per epoch."""
    import numpy as np
    trees: dict[str, Any] = {"params": state.params, "opt_state": state.opt_state}
    if steps is not None:
        trees["steps"] = np.asarray(steps, np.float32)
    if best_params is not None:
        trees["best_params"] = best_params
    if final is not None:
        trees["final_params"] = final
    t = program.train
    assert t is not None
    meta = {"spec_fingerprint": ir.fingerprint(program.spec), "model_fingerprint": model_fingerprint(program),
            "epoch": len(history), "seed": t.seed, "history": history,
            # epoch e's dropout keys are folded from this key and e (trainer.epoch_fn)
            "rng": {"seed": t.seed, "epoch_key": [int(v) for v in np.asarray(epoch_key).ravel()]},
            "stopper": None if stopper is None else dict(stopper), **data_meta(splits)}
    checkpoint.save(path, trees, {**meta, **(extra or {})})


def resume_meta(path: Path, program: Program) -> dict[str, Any]:
    """The metadata of the checkpoint a run (or sweep) resumes from, refusing one that
    another spec wrote (checkpoint.CheckpointError)."""
    meta = checkpoint.read_meta(path)
    if meta.get("spec_fingerprint") != ir.fingerprint(program.spec):
        raise checkpoint.CheckpointError(f"`{path}` was written by a different spec",
                                         "resume with the spec that started the run (its copy is `spec.nn` in the run folder)")
    return meta


def restore_checkpoint(program: Program, path: Path, template: Any) -> tuple[Any, Any, list[dict[str, float]],
                                                                            dict[str, Any] | None]:
    """(state, best weights or None, history, early stopping's record) of a run's
    checkpoint, into the structure of `template` (a `TrainState` of shapes); raises
    checkpoint.CheckpointError for a checkpoint of another spec or model."""
    from nnspec.lower import TrainState
    meta = resume_meta(path, program)
    templates: dict[str, Any] = {"params": template.params, "opt_state": template.opt_state}
    if "best_params" in meta["trees"]:
        templates["best_params"] = template.params
    trees, meta = checkpoint.load(path, templates)
    return TrainState(trees["params"], trees["opt_state"]), trees.get("best_params"), meta["history"], meta["stopper"]


def restore_steps(path: Path, epochs: int, per_epoch: int) -> Any:
    """The per-step losses (epochs x steps per epoch) a `history steps` run's checkpoint
    holds; checkpoint.CheckpointError when it holds none or others."""
    import numpy as np
    if "steps" not in checkpoint.read_meta(path)["trees"]:
        raise checkpoint.CheckpointError(f"`{path}` holds no per-step losses", "train a new run")
    trees, _ = checkpoint.load(path, {"steps": np.zeros((epochs, per_epoch), np.float32)})
    return np.asarray(trees["steps"])


# ------------------------------------------------------------------------- finding a run

FINISHED = ("finished", "stopped early")  # run.json's `status` of a run whose final weights are saved


def default_base(spec_path: str) -> Path:
    """The folder `nnspec train SPEC` writes without `--out` (relative to the current
    folder): `runs/NAME`, numbered `runs/NAME-2`, `runs/NAME-3`, ... when taken."""
    return Path("runs") / Path(spec_path).stem


def numbered_folders(spec_path: str) -> list[Path]:
    """The folders `nnspec train SPEC` may have written without `--out`, that exist:
    `runs/NAME` and every `runs/NAME-K` (K ≥ 2), in the order of their numbers."""
    base = default_base(spec_path)
    found: list[tuple[int, Path]] = []
    if base.is_dir():
        found.append((1, base))
    try:
        siblings = list(base.parent.iterdir()) if base.parent.is_dir() else []
    except OSError:
        siblings = []
    prefix = base.name + "-"
    for p in siblings:
        rest = p.name[len(prefix):] if p.name.startswith(prefix) else ""
        if rest.isdigit() and rest[0] != "0" and int(rest) >= 2 and p.is_dir():
            found.append((int(rest), p))
    return [p for _, p in sorted(found)]


def _run_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def why_not(path: Path, program: Program, base_dir: Path) -> str | None:
    """Why the run in `path` is not a finished run of `program` (the spec, read from
    `base_dir`), in a few words; None when it is. Reads run.json only (no JAX)."""
    info = _run_info(path)
    if info is None or not is_run_folder(path):
        return "not an nnspec run folder (no readable `run.json`)"
    status = info.get("status")
    if status not in FINISHED:
        hint = f": resume it with `nnspec train --resume {path}`" if (path / "checkpoint.npz").is_file() else ""
        return (f"it did not finish (its status is `{status}`{', still training or stopped without saving' if status == 'running' else ''})"
                + hint)
    if not (path / "checkpoint.npz").is_file():
        return "it holds no checkpoint (`checkpoint.npz`)"
    if info.get("spec_fingerprint") != ir.fingerprint(program.spec):
        mine = model_fingerprint(program)
        if info.get("model_fingerprint") not in (None, mine):
            return "it trained a different model"
        return ("it was trained from another version of this spec"
                + (" (the same model, other training settings)" if info.get("model_fingerprint") == mine else ""))
    rec = info.get("run")
    if isinstance(rec, dict):
        diffs = differences(program, rec, base_dir)
        if diffs:
            return diffs[0][1]
    return None


def _newest_key(path: Path, info: Mapping[str, Any] | None, number: int) -> tuple[str, int, int]:
    try:
        written = (path / "checkpoint.npz").stat().st_mtime_ns
    except OSError:
        written = 0
    return (str((info or {}).get("ended") or (info or {}).get("started") or ""), written, number)


class NoRun(RunFolderError):
    """No finished run of a spec among the folders `nnspec train SPEC` writes; `explain`
    words it after a head such as "no run of `x.nn` to evaluate"."""

    def __init__(self, spec_path: str, base: Path, refused: list[tuple[Path, str]]) -> None:
        self.spec_path, self.base, self.refused = spec_path, base, refused
        super().__init__(self.explain(f"no run of `{spec_path}`"))

    def explain(self, head: str) -> str:
        train = f"train it with `nnspec train {self.spec_path}`, or name a run folder with `--run DIR`"
        if not self.refused:
            return (f"{head}: `{self.base}` (where `nnspec train {self.spec_path}` writes, from this folder) "
                    f"does not exist; {train}")
        n = len(self.refused)
        listing = "".join(f"\n  `{p}`: {why}" for p, why in self.refused)
        return (f"{head} among the {n} folder{'s' * (n != 1)} that `nnspec train` wrote for it "
                f"(none is a finished run of this spec):{listing}\n  {train}")


def find_run(program: Program, spec_path: str) -> tuple[Path, str]:
    """The run `nnspec eval SPEC` (and `predict`) uses without `--run`: the newest finished
    run that `nnspec train SPEC` wrote into `runs/NAME`, `runs/NAME-2`, ... (relative to the
    current folder) with this spec (its fingerprint, data and split); (its folder, a note
    saying which was chosen). Raises NoRun, which lists each folder found and why it was
    not used."""
    base = default_base(spec_path)
    base_dir = Path(spec_path).resolve().parent
    folders = numbered_folders(spec_path)
    usable, refused = [], []
    for number, path in enumerate(folders, start=1):
        why = why_not(path, program, base_dir)
        if why is None:
            usable.append((_newest_key(path, _run_info(path), number), path))
        else:
            refused.append((path, why))
    if not usable:
        raise NoRun(spec_path, base, refused)
    usable.sort(reverse=True)
    chosen = usable[0][1]
    if len(folders) == 1:
        return chosen, f"using run `{chosen}`"
    which = (f"the newest of {len(usable)} finished runs of this spec" if len(usable) > 1
             else "the one finished run of this spec")
    skipped = "".join(f"; `{p}` is not one: {why}" for p, why in refused[:2])
    skipped += f"; and {len(refused) - 2} more are not" if len(refused) > 2 else ""
    return chosen, f"using run `{chosen}` ({which} in `{base.parent}/`{skipped}; `--run DIR` chooses another)"
