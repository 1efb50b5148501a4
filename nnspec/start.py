"""`start_from "RUN"`: a run's first epoch starts from another, finished run's final
weights (a second training phase, fine-tuning), as Keras's `load_weights(by_name=True)`.

Arrays are matched by their layer path (`dense_1.w`, `bn.moving_mean`): an array of the
same path must have the same shape; a layer of this model that the run lacks starts as
its initializer says, and an array of the run that this model lacks is not used. Both are
recorded with the run (`run.json`'s `run.start_from`). The optimizer starts afresh, as
after `load_weights`. Nothing but the weights is taken: not the data, the split or the
standardization.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from nnspec import checkpoint, runs
from nnspec.checked import Program
from nnspec.prepare import fail


def folder(program: Program, base_dir: Path) -> Path | None:
    t = program.train
    if t is None or t.start_from is None:
        return None
    return (Path(t.start_from) if os.path.isabs(t.start_from) else base_dir / t.start_from).resolve()


def with_files(programs: Sequence[Program], params0: Any, base_dir: Path) -> Any:
    """The stacked initial weights with the arrays of `weights="x.npy"` files in place of
    the initializers' draws, in every model of the stack (nnspec/pretrained.py); `params0`
    itself where no layer names a file."""
    from nnspec import pretrained
    from nnspec.trainer import member, stack
    if not any(True for _ in pretrained.files(programs[0])):
        return params0
    read: dict[str, Any] = {}
    trees = []
    for i, p in enumerate(programs):
        key = repr([(f.layer.name, f.path) for f in pretrained.files(p)])
        if key not in read:  # a stack's models name the same files: each is read once
            read[key] = pretrained.read(p, base_dir)
        tree = member(params0, i)
        trees.append({layer: {**arrays, **read[key].get(layer, {})} for layer, arrays in tree.items()})
    return stack(trees)


def start_params(programs: Sequence[Program], trainer: Any, base_dir: Path) -> tuple[Any, Any, dict[str, Any] | None]:
    """(the stacked initial weights with the run's arrays in place, the stacked optimizer
    state with `optimizer=true` else None, what was taken) for the stack of models that
    `trainer` (a `trainer.Trainer`) trains; (None, None, None) without `start_from` or a
    `weights="x.npy"` file. A file's arrays come first: the run's, where it has the
    layer, replace them (the run trained on from them)."""
    from nnspec.lower import with_hparams
    from nnspec.trainer import member, stack
    program = programs[0]
    loaded_files = with_files(programs, trainer.params0, base_dir)
    run = folder(program, base_dir)
    if run is None:
        return (None if loaded_files is trainer.params0 else loaded_files), None, None
    params0 = loaded_files
    t = program.train
    assert t is not None
    ckpt = run / "checkpoint.npz"

    def refuse(message: str, help: str) -> Exception:
        return fail("E405", f"cannot start from `{t.start_from}`: {message}", program, t.start_span,
                    label="the run to start from", help=help)
    if not ckpt.is_file():
        raise refuse(f"`{run}` holds no trained run (no `checkpoint.npz`)", "train it first, or name its run folder")
    try:
        meta = checkpoint.read_meta(ckpt)
        if meta.get("ensemble"):
            raise refuse("it is an ensemble of several models", "start from a run of one model")
        loaded: list[Any] = []
        kept: list[str] = []
        extra: list[str] = []
        for i in range(len(programs)):
            tree, kept, extra = checkpoint.load_by_name(ckpt, "final_params", member(params0, i))
            loaded.append(tree)
    except checkpoint.CheckpointError as exc:
        raise refuse(exc.message, exc.help or "start from another run") from None
    names, _ = checkpoint.leaf_names(member(params0, 0))
    if names and len(kept) == len(names):
        raise refuse("it shares no layer with this model (arrays are matched by layer name)",
                     "name the layers as the run's are (`nnspec compile RUN/spec.nn --emit summary` lists them)")
    params = stack(loaded)
    opt_state = None
    if t.start_optimizer:
        if kept or extra:
            raise refuse(f"`optimizer=true` goes on with the run's optimizer state, which is that of its layers, but "
                         f"{'this model has ' + _names(kept) + ' the run lacks' if kept else ''}"
                         f"{' and ' if kept and extra else ''}{'the run has ' + _names(extra) + ' this model lacks' if extra else ''}",
                         "give both the same layers, or leave out `optimizer=true`")
        fresh = trainer.fresh_opt_state(params)
        try:
            trees, meta = checkpoint.load(ckpt, {"opt_state": member(fresh, 0)})
        except checkpoint.CheckpointError as exc:
            raise refuse(f"its optimizer state does not fit this spec's optimizer ({exc.message})",
                         "use the run's optimizer, or leave out `optimizer=true`") from None
        # arrays of the same shapes may still mean other things (`momentum lr_in_velocity=true`
        # keeps η·v where the default keeps v): the run's names for them must be this spec's
        stored = (meta.get("names") or {}).get("opt_state")
        if stored and stored != checkpoint.leaf_names(member(fresh, 0))[0]:
            raise refuse("its optimizer state does not fit this spec's optimizer (the same arrays, kept by "
                         "another form of the update)", "use the run's optimizer, or leave out `optimizer=true`")
        # the moments and the step count go on; the rates and constants are this spec's
        opt_state = stack([with_hparams(trees["opt_state"], p.optimizer, p.regularization)  # type: ignore[arg-type]
                           for p in programs])
    record = {"run": str(run), "sha256": runs.sha256(ckpt), "loaded": len(names) - len(kept),
              "initialized": kept, "unused": extra, "optimizer": t.start_optimizer}
    return params, opt_state, record


def _names(paths: list[str]) -> str:
    shown = ", ".join(f"`{p}`" for p in paths[:4])
    return shown + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
