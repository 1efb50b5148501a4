"""The `nnspec` command: check, compile, fmt, explain.

Exit codes: 0 clean (warnings allowed), 1 errors in a spec, 2 usage errors (bad flags,
missing or unreadable files). No traceback reaches the user: an unexpected exception
is reported as an internal error, with the traceback and a request to report it.
"""

from __future__ import annotations

import argparse
import dataclasses
import csv
import io
import json
import math
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from nnspec import ir
from nnspec.completion import SHELLS
from nnspec.diagnostics import Diagnostic, error, render_all, render_json
from nnspec.source import Source, Span
from nnspec.terminal import CHOICES as COLOR_CHOICES

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 101


class UsageError(Exception):
    """A problem with the command line or the files it names (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message}\n  (see `{self.prog} --help`)\n")


# `--color`, for the command being run (main sets it; nnspec/terminal.py decides)
_COLOR_CHOICE = "auto"


def _color(stream) -> bool:
    from nnspec.terminal import use_color
    return use_color(stream, _COLOR_CHOICE)


def _cannot_read(path: str, exc: OSError) -> UsageError:
    """A file the command line names that cannot be read, as one usage-error line."""
    why = ("no such file" if isinstance(exc, FileNotFoundError) else
           "it is a directory" if isinstance(exc, IsADirectoryError) else
           "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc))
    return UsageError(f"cannot read `{path}`: {why}")


def _read_stdin() -> bytes:
    stream = sys.stdin
    if stream is None:
        raise UsageError("cannot read `-`: there is no standard input")
    try:
        buffer = getattr(stream, "buffer", None)
        data = buffer.read() if buffer is not None else stream.read()
    except OSError as exc:
        raise _cannot_read("<stdin>", exc) from None
    return data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data


def read_text(path: str, name: str | None = None) -> tuple[str | None, list[Diagnostic], Source | None]:
    """A spec file's text (`-`: standard input); undecodable bytes become a located
    diagnostic naming the file `name` (default: `path`); unreadable files a UsageError."""
    name = name or ("<stdin>" if path == "-" else path)
    if path == "-":
        data = _read_stdin()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise _cannot_read(path, exc) from None
    try:
        return data.decode("utf-8"), [], None
    except UnicodeDecodeError as exc:
        good = data[:exc.start].decode("utf-8")
        src = Source(data.decode("utf-8", errors="replace"), name)
        d = error("E024", f"this file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                  Span(len(good), len(good) + 1), "cannot be decoded",
                  help="save the file as UTF-8 text")
        return None, [d], src


def load(path: str, *, name: str | None = None, memory_budget: int | None = None):
    """(Program or None, diagnostics, Source or None) for a `.nn` file or an IR `.json` file
    (`-`: standard input, named `name`, IR when the name ends in `.json`)."""
    from nnspec.check import check, check_source
    from nnspec.diagnostics import NNSpecError
    name = name or ("<stdin>" if path == "-" else path)
    text, diags, src = read_text(path, name)
    if text is None:
        return None, diags, src
    if name.endswith(".json"):
        try:
            spec = ir.from_json(text)
        except ir.IRFormatError as exc:
            raise UsageError(f"`{name}` is not nnspec IR: {exc}") from None
        try:
            program = check(spec, memory_budget=memory_budget)
        except NNSpecError as exc:
            return None, list(exc.diagnostics), None
        return program, list(program.warnings), None
    return check_source(text, name, memory_budget=memory_budget)


def _report(diags: list[Diagnostic], src: Source | None, fmt: str, *, stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "json":
        return
    text = render_all(diags, src, color=_color(stream))
    if text:
        stream.write(text)


def _inputs(args: argparse.Namespace, paths: list[str], *, folders: bool = True):
    """The specs the command line names (nnspec/inputs.py): `-` is standard input, a
    folder every `.nn` file under it, each file once."""
    from nnspec.inputs import STDIN, InputError, expand
    if args.stdin_filename is not None and STDIN not in paths:
        raise UsageError("`--stdin-filename` names the spec read from standard input, which is read only "
                         "for the argument `-`")
    try:
        return expand(paths, folders=folders, stdin_name=args.stdin_filename)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from nnspec.report_formats import Sarif, github
    status = EXIT_OK
    everything = []
    sarif = Sarif() if args.format == "sarif" else None
    for spec in _inputs(args, args.files):
        program, diags, src = _load_with_files(spec)
        data_note = ""
        if args.data and program is not None and program.train is not None:
            data_diags, data_note = _check_data(program, spec.path)
            diags = list(diags) + data_diags
            src = src or program.source
            if any(d.is_error for d in data_diags):
                program = None
        if any(d.is_error for d in diags):
            status = EXIT_SPEC
        if args.format == "json":
            everything.extend(json.loads(render_json(diags, src)))
        elif args.format == "github":
            sys.stdout.write(github(diags, src, spec.name))
        elif sarif is not None:
            sarif.add(diags, src, spec.name)
        else:
            _report(diags, src, args.format)
            if program is not None and not args.quiet:
                sweep = f", a sweep of {len(program.sweep.programs)} models" if program.sweep else ""
                print(f"ok: `{spec.name}` ({program.model.n_params:,} parameters{sweep}{data_note})")
    if args.format == "json":
        print(json.dumps(everything, indent=2))
    if sarif is not None:
        sys.stdout.write(sarif.text())
    return status


def _check_data(program, path: str) -> tuple[list[Diagnostic], str]:
    """`check --data`: read, split and check the data as `train` would, without JAX:
    (its diagnostics, a few words on the splits). A sweep's models that read other data
    (or split it otherwise) are each read once."""
    from nnspec.diagnostics import NNSpecError
    from nnspec.prepare import preparation_key, prepare
    programs = list(program.sweep.programs) if program.sweep is not None else [program]
    seen: set[str] = set()
    diags: list[Diagnostic] = []
    words = ""
    base = Path(path).resolve().parent if path != "-" else Path.cwd()
    for p in programs:
        t = p.train
        key = preparation_key(p)  # the sweep trainer's grouping: models of one key read the same splits
        if key in seen:
            continue
        seen.add(key)
        try:
            # every model of a sweep sees the data of the first model's seed, as it trains
            splits = prepare(dataclasses.replace(p, train=dataclasses.replace(t, seed=programs[0].train.seed)), base)
        except NNSpecError as exc:
            diags.extend(exc.diagnostics)
            continue
        diags.extend(splits.warnings)
        if not words:
            parts = [f"{len(d)} {n}" for n, d in (("train", splits.train), ("val", splits.val), ("test", splits.test))
                     if d is not None]
            words = "; data: " + ", ".join(parts) + " examples"
    return diags, words


def _load_with_files(spec: Any) -> tuple[Any, list, Any]:
    """`load`, and the files of `weights="x.npy"` that training reads, checked as `check`
    and `compile` both report them (the checker alone does not read files)."""
    program, diags, src = load(spec.path, name=spec.name)
    diags = list(diags)
    if program is not None:
        from nnspec import pretrained
        weight_diags = pretrained.check(program, Path(spec.path).resolve().parent if spec.path != "-" else Path.cwd())
        diags += weight_diags
        if any(d.is_error for d in weight_diags):
            program = None
    return program, diags, src


def cmd_compile(args: argparse.Namespace) -> int:
    (spec,) = _inputs(args, [args.file], folders=False)
    program, diags, src = _load_with_files(spec)
    if args.format == "json" and diags:
        print(render_json(diags, src), file=sys.stderr)
    else:
        _report(diags, src, args.format)
    if program is None:
        return EXIT_SPEC
    if args.emit == "ir":
        print(ir.to_json(program.spec))
    elif args.emit == "summary":
        from nnspec.summary import summary
        sys.stdout.write(summary(program))
    else:
        if not program.heads or program.optimizer is None:
            raise UsageError(f"`--emit {args.emit}` shows the training step, which needs a `loss` and an `optimizer`")
        from nnspec.lower import emit_step
        from nnspec.prepare import with_class_weights
        balanced = {h.name: (1.0,) * (2 if h.loss.task == "binary" else h.shape[-1])
                    for h in program.heads if h.loss.params.get("class_weight") == "balanced"}
        if balanced:  # the numbers come from the training data: the program is the same for any
            print("note: `class_weight=balanced` is counted on the training data; the step is shown with "
                  "weights of 1", file=sys.stderr)
        sys.stdout.write(emit_step(with_class_weights(program, balanced), args.emit))
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    """Each spec rewritten in canonical form; `-` formats standard input to stdout. With
    `--check` or `--diff` nothing is written, and the exit status says if anything would be."""
    from nnspec.format import format_spec, unified_diff
    from nnspec.parse import parse_collect
    status = EXIT_OK
    files = _inputs(args, args.files)
    if len(files) > 1 and any(f.is_stdin for f in files) and not (args.diff or args.check):
        raise UsageError("`nnspec fmt -` writes the formatted text to standard output, so it formats nothing else "
                         "at the same time; give `-` alone")
    for file in files:
        text, diags, src = read_text(file.path, file.name)
        if text is None:
            _report(diags, src, "human")
            status = EXIT_SPEC
            continue
        spec, diags, src = parse_collect(text, file.name)
        if spec is None or any(d.is_error for d in diags):
            _report(diags, src, "human")
            status = EXIT_SPEC
            continue
        formatted = format_spec(spec)
        if args.diff or args.check:
            if formatted != text:
                if args.diff:
                    sys.stdout.write(unified_diff(text, formatted, file.name))
                print(f"would reformat `{file.name}`", file=sys.stderr if args.diff else sys.stdout)
                status = max(status, EXIT_SPEC)
        elif file.is_stdin:  # a filter: the formatted text, changed or not, and no file written
            sys.stdout.write(formatted)
        elif formatted != text:
            write_atomic(Path(file.path), formatted)
            print(f"formatted `{file.name}`")
    return status


def write_atomic(path: Path, text: str) -> None:
    """`nnspec.files.write_atomic`, its failure as one usage-error line."""
    from nnspec.files import write_atomic as write
    try:
        write(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write `{path}`: {exc.strerror or exc}") from None


def _program_or_exit(path: str):
    program, diags, src = load(path)
    _report(diags, src, "human")
    return program


def _retargeted(path: str, files: dict[str, str | None]):
    """`_program_or_exit` for `train --data/--val-data/--test-data`: the spec checked with
    the files the flags give in place of its own (nnspec/retarget.py)."""
    if not any(files.values()):
        return _program_or_exit(path)
    from nnspec.check import check_source
    from nnspec.retarget import RetargetError, retarget
    for file in files.values():
        if file is not None and not Path(file).is_file():
            raise _cannot_read(file, FileNotFoundError() if not Path(file).exists() else IsADirectoryError())
    text, diags, src = read_text(path)
    if text is None:
        _report(diags, src, "human")
        return None
    try:
        text, notes = retarget(text, path, files)  # type: ignore[arg-type]
    except RetargetError as exc:
        raise UsageError(str(exc)) from None
    for note in notes:  # what is read, even with -q
        print(f"note: {note}", file=sys.stderr)
    program, diags, src = check_source(text, path)
    _report(diags, src, "human")
    return program


def _print_progress(quiet: bool):
    """One line per epoch on a terminal (rewritten in place); about 20 lines otherwise.
    The first epoch includes compiling the program, so the time left is estimated from
    the epochs after it."""
    import time
    tty = sys.stderr.isatty()
    clock = {"after_first": 0.0, "begun": 0.0, "first_epoch": 0}

    def show(epoch: int, total: int, row: dict, dt: float) -> None:
        from nnspec.show import format_value
        now = time.perf_counter()
        if not clock["begun"]:
            clock["begun"], clock["first_epoch"] = now - dt, epoch
        if epoch == clock["first_epoch"]:
            clock["after_first"] = now
        if quiet:
            return
        every = max(1, total // 20)
        elapsed = now - clock["begun"]
        timed = epoch - clock["first_epoch"]
        left = (f", ~{(now - clock['after_first']) / timed * (total - epoch):.1f}s left" if timed
                else f", compiled in {dt:.1f}s" if epoch < total else "")
        metrics = "  ".join(f"{k} {format_value(v)}" for k, v in row.items() if k not in ("epoch", "time"))
        line = f"epoch {epoch:>{len(str(total))}}/{total}  {metrics}  [{elapsed:.1f}s{left}]"
        if tty:
            sys.stderr.write("\r\x1b[2K" + line + ("\n" if epoch == total or epoch % every == 0 else ""))
        elif epoch == clock["first_epoch"] or epoch == total or epoch % every == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return show


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows) + "\n"


def _compile_cache() -> None:
    """Reuse compiled XLA programs across runs (a CPU compile takes seconds; a cache hit does not)."""
    if os.environ.get("NNSPEC_NO_CACHE"):
        return
    import jax

    from nnspec.envinfo import xla_cache_dir
    folder = xla_cache_dir()  # (`nnspec env` shows it)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    except OSError:
        return  # an unwritable cache only costs time
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # every program: the lecture specs' epoch and evaluation programs compile in 0.05-0.3 s
    # (JAX's default threshold of 1 s left them out), and the 20-30 single operations of a
    # run, at about 0.01 s each, were a quarter of a warm start's 0.3 s of compiling, against
    # a millisecond each to read back (benchmarks/cold.py)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the last finished epoch is saved."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _data_words(program) -> str:
    d = program.spec.train.get("data") if program.spec.train is not None else None
    if d is None or program.source is None or d.span is None:
        return program.train.data.kind
    text = program.source.text[d.span.start:d.span.end]
    text = text.split(None, 1)[1] if text.startswith("data") and " " in text else text
    from nnspec.show import excerpt
    return excerpt(text)


def _header(spec_path: str, program, out: Path | None, note: str | None, quiet: bool, resume: bool):
    """What `train` prints at once: the spec and its model (known before JAX starts);
    the returned callback adds the data as split and the device, just before compiling."""
    def row(k: str, v: str) -> str:
        return f"  {k:<10}  {v}\n"
    if not quiet:
        layers = len(program.model.layers)
        sys.stderr.write(f"{'resuming' if resume else 'training'} `{spec_path}`\n"
                         + row("model", f"`{program.spec.model.name}`: {layers} layer{'s' * (layers != 1)}, "
                                        f"{program.model.n_params:,} parameters"))
        sys.stderr.flush()

    def show(started) -> None:
        import jax
        if quiet:
            return
        p, s = started.program, started.splits
        split = f"{len(s.train)} train" + "".join(f", {len(d)} {n}" for n, d in (("val", s.val), ("test", s.test))
                                                   if d is not None)
        devices = jax.devices()
        used = started.devices.count if started.devices is not None else 1
        text = row("data", f"{_data_words(p)}: {split} examples"
                   + (f" ({s.dropped} row{'s' * (s.dropped != 1)} with a missing value dropped)" if s.dropped else ""))
        if p.train is not None and p.train.stream is not None and p.train.batch:  # the windows the trainer reads
            import math

            from nnspec.stream import windows
            x = s.train.x
            example = int(math.prod(x.shape[1:])) * x.dtype.itemsize
            steps = -(-len(s.train) // p.train.batch)
            bounds = windows(p.train.batch, steps, example, p.train.stream if isinstance(p.train.stream, int) else None)
            w = max(s1 - s0 for s0, s1 in bounds)
            from nnspec.check import show_bytes
            text += row("stream", f"{len(bounds)} window{'s' * (len(bounds) != 1)} of up to {w * p.train.batch:,} "
                                  f"examples ({show_bytes(w * p.train.batch * example)} of features), read from the "
                                  f"file as the epoch reaches them")
        if s.train.weight is not None:  # `sample_weight`: what the loss weighs the examples by
            w = s.train.weight
            text += row("weights", f"sample_weight `{p.train.sample_weight}`: {float(w.min()):.4g} to "
                                   f"{float(w.max()):.4g}, mean {float(w.mean()):.4g} (training); the loss is "
                                   f"weighted, the metrics are not")
        if s.encoder is not None:  # `categorical`/`missing`: how the feature columns became the input
            text += row("columns", s.encoder.describe())
        for head, weights in s.class_weights.items():  # `class_weight=balanced`, as counted
            from nnspec.show import format_value
            text += row("weights", (f"{head}: " if head else "") + "class_weight=balanced: "
                        + ", ".join(format_value(w) for w in weights))
        if p.train is not None and p.train.start_from is not None and not started.start:
            text += row("start from", f"{p.train.start_from}: its final weights, by layer name")
        if started.overrides:
            text += row("overrides", " ".join(f"--{k} {v}" for k, v in started.overrides.items()))
        text += row("epochs", f"{started.start + 1} to {started.total}" if started.start else str(started.total))
        text += row("device", f"{devices[0].platform} ({len(devices)} device{'s' * (len(devices) != 1)})" if used == 1
                    else f"{started.devices.describe()} (of {len(devices)} devices)")
        text += row("run folder", str(out) + (f" ({note})" if note else ""))
        for w in s.warnings:
            sys.stderr.write(render_all([w], p.source, color=_color(sys.stderr)))
        sys.stderr.write(text + "compiling…\n")
        sys.stderr.flush()
    return show


def cmd_train(args: argparse.Namespace) -> int:
    from nnspec import distributed, runs
    note = None
    overrides = {"seed": args.seed, "epochs": args.epochs}
    writer = True  # process 0 of several (or the only one) prints and writes the run folder
    out: Path | None  # None on the processes that do not write
    try:
        procs = distributed.from_args(args)
        if procs is not None and not os.environ.get(distributed.CHILD):
            distributed.wait_for_coordinator(procs)  # a clear error, not JAX's abort
            return distributed.supervise(args.argv, procs, args.resume or args.out)
    except distributed.DistributedError as exc:
        raise UsageError(str(exc)) from None
    if procs is not None:
        import jax
        distributed.initialize(procs)
        writer = jax.process_index() == 0
        args.quiet = args.quiet or not writer
    try:
        if args.resume is not None:
            run = Path(args.resume)
            if not (run / "checkpoint.npz").exists():
                raise UsageError(f"cannot resume `{run}`: it holds no checkpoint")
            if args.overwrite:
                raise UsageError("`--overwrite` starts a new run; it cannot be combined with `--resume`")
            spec_path = str(run / "spec.nn") if args.spec is None else args.spec
            out, resume = run, True
        else:
            if args.spec is None:
                raise UsageError("name a spec to train, or `--resume DIR`")
            spec_path = args.spec
            # the other processes write nothing: process 0 chooses (and claims) the folder
            out, note = runs.choose_folder(spec_path, args.out, overwrite=args.overwrite) if writer else (None, None)
            resume = False
    except runs.RunFolderError as exc:
        raise UsageError(str(exc)) from None
    plot_to = _plot_target(args) if writer else None  # refused now, not after training
    program = _retargeted(spec_path, {"data": args.data, "val": args.val_data, "test": args.test_data})
    if program is None:
        return EXIT_SPEC
    if program.train is None:
        print(f"error: `{spec_path}` has no `train {{ }}` block, so there is nothing to train", file=sys.stderr)
        return EXIT_SPEC
    if program.sweep is not None:
        if procs is not None and resume:
            raise UsageError("a sweep over several processes cannot be resumed yet: resume it with one process "
                             "(`nnspec train --resume DIR` without the process flags)")
        _compile_cache()  # JAX only now: a spec with mistakes never starts it
        return _train_sweep(program, args, out, spec_path, resume, writer, plot_to)
    header = _header(spec_path, program, out, note, args.quiet, resume)
    # JAX only now: a spec with mistakes is refused without starting it
    from nnspec.fit import fit
    _compile_cache()
    result, code = _training(lambda: fit(
        program, out=out, resume=resume, checkpoint_every=args.checkpoint_every, overrides=overrides,
        progress=_print_progress(args.quiet), on_start=header, command=["nnspec", *args.argv],
        devices=args.devices, writes=writer,
        base_dir=Path(spec_path).resolve().parent if args.resume is None else None), out, "the last finished epoch is")
    if code is not None:
        return code
    if writer:
        assert out is not None  # the writing process chose the folder
        sys.stdout.write(_finished_text(result, out))
    if plot_to is not None and out is not None:
        _plot_run(out, plot_to)
    return EXIT_OK


def _plot_target(args: argparse.Namespace) -> Path | None:
    """`train --plot FILE`, checked before training: matplotlib is there, the file may be written."""
    if not args.plot:
        return None
    from nnspec import plot
    try:
        plot.require_matplotlib()
        return plot.output_path(args.plot, overwrite=args.overwrite)
    except plot.PlotError as exc:
        raise UsageError(str(exc)) from None


def _plot_run(out: Path, to: Path) -> None:
    """What `nnspec plot OUT -o TO` draws (the learning curves, or a sweep's curve), once trained."""
    from nnspec import plot
    try:
        kind = plot.history_kind([out])
        plot.save(plot.history_figure(kind, [out]), to)
    except plot.PlotError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write `{to}`: {exc.strerror or exc}") from None
    print(f"wrote {plot.PICTURES[kind]} to `{to}`", file=sys.stderr)


def _finished_text(result, out: Path) -> str:
    """The summary: the kept weights' metrics on every split, then the last epoch's."""
    from nnspec.show import format_value
    head = "the run had already finished; nothing was trained\n" if result.already_finished else "training finished\n"
    rows = [("epochs run", f"{result.epochs_run}" + (" (stopped early)" if result.stopped_early else ""))]
    if result.best_epoch:
        rows.append(("best epoch", str(result.best_epoch)))
    kept = result.kept or {"metrics": {}}
    rows.append(("kept weights", f"epoch {kept.get('epoch')} ({kept.get('why')})"))
    for split, metrics in kept["metrics"].items():
        rows.append((f"  {split}", "  ".join(f"{k} {format_value(v)}" for k, v in metrics.items())))
    last = result.history[-1] if result.history else {}
    if last and last.get("epoch") != kept.get("epoch"):
        rows.append((f"last epoch ({last['epoch']})", "  ".join(f"{k} {format_value(v)}" for k, v in last.items()
                                                                 if k not in ("epoch", "time"))))
    rows.append(("run folder", str(out)))
    return head + _table(rows)


def _training(train: Callable[[], Any], out: Path | None, saved: str) -> tuple[Any, int | None]:
    """(the result of `train`, None), or (None, the exit code) where it failed: SIGTERM is
    handled as Ctrl-C (what was `saved` is kept for `--resume`), a spec error is rendered,
    a run folder that cannot be used or written is a usage error."""
    import signal
    from nnspec import runs
    from nnspec.diagnostics import NNSpecError
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return train(), None
    except NNSpecError as exc:
        sys.stderr.write(exc.render(color=_color(sys.stderr)))
        return None, EXIT_SPEC
    except runs.RunFolderError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        print(f"\n{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: {saved} saved; "
              f"continue with `nnspec train --resume {out}`", file=sys.stderr)
        return None, 143 if isinstance(exc, Terminated) else 130
    except OSError as exc:  # the run folder could not be written (disk full, a file in the way, ...)
        raise UsageError(f"cannot write `{exc.filename or out}`: {exc.strerror or exc}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_sweep(program, args: argparse.Namespace, out: Path | None, spec_path: str, resume: bool,
                 writer: bool = True, plot_to: Path | None = None) -> int:
    from nnspec.sweep_fit import fit_sweep
    quiet = args.quiet
    every = max(1, (args.epochs or program.train.epochs) // 20)
    count = [0]

    def show(line: str) -> None:
        count[0] += 1
        if not quiet and (count[0] % every == 0 or count[0] == 1):
            print(line, file=sys.stderr)
    result, code = _training(lambda: fit_sweep(
        program, epochs=args.epochs, out=out, progress=None if quiet else show,
        base_dir=Path(spec_path).resolve().parent if not resume else None, resume=resume,
        checkpoint_every=args.checkpoint_every, command=["nnspec", *args.argv], seed=args.seed,
        devices=args.devices),
        out, "the sweep so far is")
    if code is not None:
        return code
    if not writer:  # process 0 reports
        return EXIT_SPEC if result.failure() is not None else EXIT_OK
    assert out is not None  # process 0 chose the folder
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(f"sweep of {len(result.members)} models, ranked by {result.monitor}\n" + result.table())
    failure = result.failure()
    if failure is not None:  # the table shows each model's divergence; no model is "best"
        sys.stderr.write(failure.render(color=_color(sys.stderr)))
        return EXIT_SPEC
    best = result.best
    sys.stdout.write(f"best: {', '.join(f'{k}={v:g}' for k, v in best.setting.items())}; "
                     f"its spec is `{out / 'best.nn'}`, its weights the run's checkpoint\n")
    if plot_to is not None and out is not None:
        _plot_run(out, plot_to)
    return EXIT_OK


def _spec_or_run(args: argparse.Namespace, command: str) -> tuple[str | None, Path | None]:
    """(the spec, the run folder) that `eval` or `predict` was given: a folder in the
    spec's place is the run (with its own `spec.nn`), as `--run DIR` is."""
    spec, run = args.spec, (Path(args.run) if args.run is not None else None)
    if spec is not None and Path(spec).is_dir():
        if run is None:
            run, spec = Path(spec), None
        elif (Path(spec) / "checkpoint.npz").is_file():
            raise UsageError(f"`{spec}` is a run folder, not a spec: name the run once, `nnspec {command} {spec}` "
                             f"(with its own `spec.nn`) or `nnspec {command} SPEC --run {run}`")
        # (any other folder with `--run` is refused as a spec that cannot be read)
    if spec is None and run is not None and not (run / "checkpoint.npz").is_file():  # (with a spec: E405 says the same)
        raise UsageError(f"`{run}` holds no trained run (no `checkpoint.npz`); "
                         f"train one with `nnspec train SPEC --out {run}`")
    return spec, run


def _default_run(program, spec_path: str, head: str) -> Path:
    """The newest finished run of the spec that `nnspec train SPEC` wrote (runs.find_run),
    said on stderr; a usage error listing the folders found when there is none."""
    from nnspec import runs
    try:
        run, note = runs.find_run(program, spec_path)
    except runs.NoRun as exc:
        raise UsageError(exc.explain(head)) from None
    print(f"note: {note}", file=sys.stderr)
    return run


def _json_number(v: float) -> float | None:
    """A metric in JSON: a number, or null where it is not finite (NaN, infinity), which
    strict JSON cannot hold (the notes say which it was)."""
    return float(v) if math.isfinite(v) else None


def cmd_eval(args: argparse.Namespace) -> int:
    from nnspec.diagnostics import NNSpecError
    spec, run = _spec_or_run(args, "eval")
    if spec is None and run is None:
        raise UsageError("name a spec (its newest run in `runs/` is evaluated) or a run folder, "
                         "as in `nnspec eval SPEC`, `nnspec eval RUN` or `nnspec eval SPEC --run DIR`")
    spec_path = spec if spec is not None else str(run / "spec.nn")  # type: ignore[operator]
    program = _program_or_exit(spec_path)
    if program is None:
        return EXIT_SPEC
    if program.train is None:
        raise UsageError(f"`{spec_path}` has no `train` block: there is no data to evaluate on")
    if run is None:
        run = _default_run(program, spec_path, f"no run of `{spec_path}` to evaluate")
    from nnspec.predictor import evaluate_run
    _compile_cache()
    # the run's own copy of the spec names its data relative to the user's folder,
    # not the run folder: only a spec the user gives is compared by path
    own_copy = spec is None or Path(spec).resolve() == (run / "spec.nn").resolve()
    try:
        result = evaluate_run(program, run, Path(spec_path), own_copy=own_copy)
    except NNSpecError as exc:
        exc.action = "evaluate"
        sys.stderr.write(exc.render(color=_color(sys.stderr)))
        return EXIT_SPEC
    notes = result.notes
    as_json = args.format == "json"
    from nnspec.files import write_atomic
    from nnspec.show import MAX_SHOWN_CLASSES, confusion_files, confusion_table, format_value
    table, counts, matrix = "", result.confusion, None
    if counts is not None:
        json_text, csv_text = confusion_files(counts, result.split, result.examples, result.classes)
        matrix = {k: v for k, v in json.loads(json_text).items() if k not in ("split", "examples")}
        try:
            write_atomic(run / "confusion.json", json_text)
            write_atomic(run / "confusion.csv", csv_text)
            where = f"`{run / 'confusion.json'}` and `{run / 'confusion.csv'}`"
        except OSError as exc:
            where = None
            notes.append(f"could not write the confusion matrix to `{run}`: {exc.strerror or exc}")
        if counts.shape[-1] <= MAX_SHOWN_CLASSES and len(counts) <= MAX_SHOWN_CLASSES:
            table = "\n" + confusion_table(counts, result.classes)
        elif where is not None and not as_json:
            notes.append(f"the confusion matrix ({counts.shape[-1]} classes) is too wide to show")
        if where is not None:
            notes.append(f"wrote the confusion matrix to {where}")
    if as_json:
        notes += [f"`{k}` is {format_value(v)} (null in `metrics`)" for k, v in result.metrics.items()
                  if not math.isfinite(v)]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if as_json:
        doc = {"run": str(run), "spec": spec_path, "split": result.split, "examples": result.examples,
               "metrics": {k: _json_number(v) for k, v in result.metrics.items()},
               "confusion": matrix, "notes": notes}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    sys.stdout.write(f"{result.split} split ({result.examples} examples)\n"
                     + _table([(k, format_value(v)) for k, v in result.metrics.items()]) + table)
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    from nnspec.diagnostics import NNSpecError
    spec, run = _spec_or_run(args, "predict")
    args.format = _predictions_format(args)  # refused before any work
    spec = spec if spec is not None else str(run / "spec.nn")  # type: ignore[operator]
    program = _program_or_exit(spec)
    if program is None:
        return EXIT_SPEC
    if run is None and (why := _needs_run(program, spec)) is not None:
        run = _default_run(program, spec, f"`{spec}` {why}, and there is no run of it to predict with")
    elif run is None and program.train is not None:
        _trained_too(program, spec)
    _input_file(args.input)
    from nnspec.infer import load_trained
    _compile_cache()
    if run is not None:
        try:
            model, params, std, meta = load_trained(program, run)
        except NNSpecError as exc:
            exc.action = "predict with"
            sys.stderr.write(exc.render(color=_color(sys.stderr)))
            return EXIT_SPEC
        program = model.program
        names, targets = meta.get("feature_names"), meta.get("target_names") or ()
    else:  # every parameter is written in the spec (checked above): nothing to load
        import jax
        from nnspec.lower import lower
        model = lower(program)
        from nnspec.data import class_names
        params, std = model.init(jax.random.key(0)), None
        meta = {"classes": class_names(program.train.data) if program.train is not None else None}
        names, targets = _spec_names(program, spec)
    classes = meta.get("classes")
    if len(program.model.inputs) > 1 or program.several_outputs:
        return _predict_several(args, program, model, params, meta, names, targets)
    x = _read_inputs(args.input, program, names, targets, header=not args.no_header, encoding=meta.get("columns"))
    from nnspec.prepare import first_bad_token, token_vocab
    vocab = token_vocab(program)
    if vocab is not None and (bad_token := first_bad_token(x, vocab)) is not None:
        # as training refuses them (E403): `2.5` is no token, and must never be read as 2
        row, col, value = bad_token
        column = f"column `{names[col]}`" if names else f"feature {col + 1}"
        raise UsageError(f"`{args.input}`, example {row + 1}, {column}: `{value:g}` is not a token id; "
                         f"input `{program.model.inputs[0][0]}` takes whole numbers 0 to {vocab - 1}")
    if std is not None:
        x = std.apply(x)
    import jax.numpy as jnp
    from nnspec import nn
    from nnspec.infer import predict
    pred = np.asarray(predict(model, params, jnp.asarray(x), ensemble=bool(meta.get("ensemble"))))
    loss = program.loss
    if loss is not None:
        pred = np.asarray(nn.probabilities(jnp.asarray(pred), loss.name, bool(loss.params.get("from_logits", False))))
    bad = np.flatnonzero(~np.isfinite(pred.reshape(len(pred), -1)).all(axis=1))
    if bad.size:  # never print `nan` as if it were a prediction
        raise UsageError(f"the model's output for example {int(bad[0]) + 1} of `{args.input}` is not finite"
                         + (f" ({bad.size} examples in all)" if bad.size > 1 else "")
                         + "; its inputs are probably far outside the range of the training data")
    shape = pred.shape[1:]
    if len(shape) > 1:  # an output of any shape, one column per element: `y0_3_0`
        header = [f"y{'_'.join(map(str, i))}" for i in np.ndindex(*shape)]
    else:
        header = [f"y{i}" for i in range(pred.shape[-1])] if pred.shape[-1] > 1 else ["y"]
    labels: list[Any] | None = None
    autoencoder = program.train is not None and program.train.target == "input"
    if autoencoder or loss is None:  # the outputs are the prediction: no classes
        pred = pred.reshape(len(pred), -1)
    elif loss.task == "binary" and shape != (1,):
        if len(shape) == 1:  # multi-label: the labels predicted on, by name
            names = list(targets) if len(targets) == shape[0] else header
            on = np.asarray(nn.predicted_class(jnp.asarray(pred), loss.name, False))
            labels = [[n for n, v in zip(names, row) if v] for row in on]
            header.append("labels")
        pred = pred.reshape(len(pred), -1)
    elif loss.task == "multiclass" and len(shape) > 1:
        # a class at every step (or pixel): the classes in order, one per position
        index: np.ndarray = np.asarray(nn.predicted_class(jnp.asarray(pred), loss.name, False)).reshape(len(pred), -1)
        labels = [[_class_of(classes, i) for i in row] for row in index]
        header.append("classes")
        pred = pred.reshape(len(pred), -1)
    elif loss.task in ("binary", "multiclass"):
        # the class as the data named it (a CSV's text label), else its index
        index = np.asarray(nn.predicted_class(jnp.asarray(pred), loss.name, False)).reshape(len(pred))
        labels = [_class_of(classes, i) for i in index]
        header.append("class")
    else:
        pred = pred.reshape(len(pred), -1)
    return _write_predictions(args, header, [[*row] + ([labels[i]] if labels is not None else [])
                                             for i, row in enumerate(pred)])


def _trained_too(program, spec: str) -> None:
    """A spec that writes out every weight predicts with them; a note says so where
    `nnspec train` has also trained it (its written weights were only where training began)."""
    from nnspec import runs
    try:
        run, _ = runs.find_run(program, spec)
    except runs.RunFolderError:
        return
    print(f"note: predicting with the weights written in `{spec}`; `{run}` holds a trained run of it: "
          f"pass `--run {run}` to predict with that", file=sys.stderr)


def _class_of(classes, i) -> str | int:
    """A predicted class: its name where the data named the classes, else its index."""
    return classes[i] if classes and i < len(classes) else int(i)


def _predictions_format(args: argparse.Namespace) -> str:
    """`--format`, else what `--output`'s suffix says (`.json`), else CSV."""
    if args.format is not None:
        return args.format
    return "json" if args.output and Path(args.output).suffix.lower() == ".json" else "csv"


def _csv_cell(v: Any) -> str:
    import numpy as np
    if isinstance(v, str):
        return v
    if isinstance(v, list):  # several labels or classes: one cell, separated by spaces
        return " ".join(map(str, v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    return f"{v:.6g}"


def _json_cell(v: Any) -> Any:
    import numpy as np
    if isinstance(v, list):
        return [_json_cell(x) for x in v]
    if isinstance(v, str | int):
        return v
    if isinstance(v, np.integer):
        return int(v)
    # a float32 output as the shortest decimal that reads back as that float32 (NumPy's str)
    return float(str(v)) if isinstance(v, np.floating) else float(v)


def _write_predictions(args: argparse.Namespace, header: list[str], rows: list[list[Any]]) -> int:
    """The predictions, one row per example (numbers, class names or indices, lists of
    labels), as CSV or as JSON (a list of one object per example keyed by the CSV's column
    names): to `--output` (atomically), else to stdout."""
    if args.format == "json":
        text = "[" + ",".join(f"\n  {json.dumps(dict(zip(header, map(_json_cell, row))), allow_nan=False)}"
                              for row in rows) + ("\n]\n" if rows else "]\n")
    else:
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(header)
        out.writerows([_csv_cell(v) for v in row] for row in rows)
        text = buf.getvalue()
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"wrote {len(rows)} predictions to `{args.output}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _predict_several(args: argparse.Namespace, program, model, params, meta, names, targets) -> int:
    """Predictions of a model with several inputs (read from an `.npz` archive, one array
    per input, named after it) or several outputs (columns `NAME`, or `NAME_0`, `NAME_1`
    ... for an output of several units, then `NAME_class` for a classifier)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from nnspec import nn
    from nnspec.infer import predict
    from nnspec.prepare import first_bad_token
    inputs = program.model.inputs
    if len(inputs) > 1:
        x = _read_arrays(args.input, program)
    else:
        x = _read_inputs(args.input, program, names, targets, header=not args.no_header)
    xs = x if isinstance(x, dict) else {inputs[0][0]: x}
    for t in program.model.input_types:
        if t.dtype != "int32":
            continue
        vocab = t.vocab or min((layer.params["vocab"] for layer in program.model.layers if t.name in layer.inputs),
                               default=2 ** 31 - 1)
        if (bad := first_bad_token(xs[t.name], vocab)) is not None:
            raise UsageError(f"`{args.input}`, input `{t.name}`, example {bad[0] + 1}: `{bad[2]:g}` is not a token id; "
                             f"it takes whole numbers 0 to {vocab - 1}")
    pred = predict(model, params, jax.tree_util.tree_map(jnp.asarray, x), ensemble=bool(meta.get("ensemble")))
    outs = pred if isinstance(pred, dict) else {"": pred}
    classes = meta.get("classes")
    header: list[str] = []
    columns: list[list[Any]] = []
    n = None
    for h in program.heads:
        loss = h.loss
        p = np.asarray(nn.probabilities(jnp.asarray(outs[h.name]), loss.name, bool(loss.params.get("from_logits", False))))
        n = len(p)
        flat = p.reshape(n, -1)
        nonfinite = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if nonfinite.size:
            raise UsageError(f"output `{h.node}` for example {int(nonfinite[0]) + 1} of `{args.input}` is not finite; "
                             "its inputs are probably far outside the range of the training data")
        base = h.name or "y"
        header += [base] if flat.shape[1] == 1 else [f"{base}_{i}" for i in range(flat.shape[1])]
        columns += [list(flat[:, j]) for j in range(flat.shape[1])]
        if loss.task in ("binary", "multiclass") and h.shape == (1,) or loss.task == "multiclass":
            names_of = classes.get(h.name) if isinstance(classes, dict) else classes
            index = np.asarray(nn.predicted_class(jnp.asarray(p), loss.name, False)).reshape(n)
            header.append(f"{h.name}_class" if h.name else "class")
            columns.append([_class_of(names_of, i) for i in index])
    return _write_predictions(args, header, [[c[i] for c in columns] for i in range(n or 0)])


def _read_arrays(path: str, program) -> dict:
    """A model's several inputs from an `.npz` archive, one array per input named after it,
    each checked against its input's shape."""
    import numpy as np
    from nnspec.data import _listing
    if not path.endswith(".npz"):
        raise UsageError(f"`{path}`: a model with several inputs predicts from an `.npz` archive with one array "
                         f"per input, named after it ({', '.join(n for n, _ in program.model.inputs)})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            have = tuple(archive.files)
            missing = [n for n, _ in program.model.inputs if n not in have]
            if missing:
                raise UsageError(f"`{path}` has no array `{missing[0]}` for input `{missing[0]}` "
                                 f"(it has {_listing(have) if have else 'no arrays'})")
            xs = {n: np.asarray(archive[n]) for n, _ in program.model.inputs}
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"`{path}` cannot be read as an `.npz` archive ({exc})") from None
    counts = {len(a) if a.ndim else 0 for a in xs.values()}
    for n, shape in program.model.inputs:
        a = xs[n]
        if a.ndim == 0 or tuple(a.shape[1:]) != tuple(shape):
            raise UsageError(f"`{path}`: array `{n}` has shape {tuple(a.shape)}, but input `{n}` takes "
                             f"(examples, {', '.join(map(str, shape))})")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a.astype(np.float64)).all():
            raise UsageError(f"`{path}`: array `{n}` must hold finite numbers")
    if len(counts) > 1:
        raise UsageError(f"`{path}`: the arrays hold different numbers of examples ({', '.join(map(str, sorted(counts)))})")
    return {n: xs[n].astype(np.float32) for n, _ in program.model.inputs}


def _needs_run(program, spec: str) -> str | None:
    """Why the spec alone cannot predict (a run must give what it leaves out), as the
    rest of a sentence about it; None when it holds every number the model uses."""
    if program.sweep is not None:
        return f"is a sweep of {len(program.sweep.programs)} models"
    learned = [layer.name for layer in program.model.layers
               if any(not _literal(layer.params, name) for name in layer.param_shapes)]
    if learned:
        return (f"gives no values for the parameters of layer `{learned[0]}`"
                f"{f' (and {len(learned) - 1} more)' if len(learned) > 1 else ''}")
    if program.train is not None and program.train.standardize:
        return "standardizes its inputs with statistics measured in training"
    return None


def _literal(params, name: str) -> bool:
    """Whether the spec writes out array `name` of a layer (`weights=[[..]]`, `bias=[..]`:
    `dense` is the one layer whose arrays can be written, nnspec/layers/)."""
    if name == "w":  # literal numbers; a `.npy` file's (a string) are read when training starts
        return isinstance(params.get("weights"), tuple)
    if name == "b":
        return isinstance(params.get("bias"), tuple)
    return False


def _spec_names(program, spec: str):
    """(feature names, target names) as the spec's own `data` line gives them, for a
    model predicted without a run; None where the spec names no columns."""
    from nnspec.data import DataError, feature_names
    t = program.train
    if t is None:
        return None, ()
    try:
        names = feature_names(t.data, base_dir=Path(spec).resolve().parent)
    except DataError as exc:
        raise UsageError(f"cannot read the column names of the spec's data: {_data_message(exc)}") from None
    target = t.data.params.get("target", ())
    return names, ((target,) if isinstance(target, str) else tuple(target))


def _input_file(path: str) -> None:
    """Refuse an input that is not a readable file, as `read_text` refuses a spec."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def _data_message(exc) -> str:
    """A `DataError` as the rest of one `error:` line: where, what, then how to fix it."""
    return str(exc) + (f"; {exc.help}" if exc.help else "")


def _read_inputs(path: str, program, names, targets, *, header: bool = True, encoding=None):
    """Feature rows from a CSV, read by training's reader (data.py) with the spec's
    delimiter: columns matched by name to the run's features, or by position. With the
    run's `encoding` (`categorical`/`missing`, columns.py), cells are encoded as in training."""
    from nnspec.data import DataError, read_features, read_raw
    shape = tuple(program.model.input_shape)
    width = math.prod(shape)
    if encoding is not None:
        from nnspec.columns import Encoder
        if not header:
            raise UsageError("the run encodes its columns (`categorical`, `missing`), which are read by name: "
                             "give the input a header and drop `--no-header`")
        t = program.train
        try:
            x, ignored = read_raw(path, base_dir=Path.cwd(), encoder=Encoder.from_dict(encoding),
                                  delimiter=t.data.params.get("delimiter", ",") if t is not None and t.data.kind == "csv" else ",")
        except DataError as exc:
            raise UsageError(_data_message(exc)) from None
        except ValueError as exc:
            raise UsageError(f"the run's column encoding cannot be used ({exc}): train it again") from None
        _ignoring(path, ignored, targets)
        return x.reshape((-1, *shape))
    if names is not None and (not isinstance(names, list | tuple) or len(names) != width
                              or not all(isinstance(n, str) for n in names)):
        raise UsageError(f"the run records {len(names) if isinstance(names, list) else 'unusable'} "
                         f"feature names for a model of {width} inputs: train it again")
    t = program.train
    delimiter = t.data.params.get("delimiter", ",") if t is not None and t.data.kind == "csv" else ","
    try:
        x, ignored = read_features(path, base_dir=Path.cwd(), names=None if names is None else tuple(names),
                                   width=width, delimiter=delimiter, header=header)
    except DataError as exc:
        raise UsageError(_data_message(exc)) from None
    _ignoring(path, ignored, targets)
    return x.reshape((-1, *shape))


def _ignoring(path: str, ignored, targets) -> None:
    if ignored:
        from nnspec.data import _listing
        kind = "the training target" if set(ignored) <= set(targets or ()) else "not inputs of the model"
        print(f"note: ignoring column{'s' if len(ignored) > 1 else ''} {_listing(ignored)} of `{path}` ({kind})",
              file=sys.stderr)


def cmd_plot(args: argparse.Namespace) -> int:
    """A picture of runs (nnspec/plot.py): learning curves, a sweep's curve, or, from the
    trained model, a decision boundary or a confusion matrix."""
    from nnspec import plot
    folders = [Path(r) for r in args.runs]
    asked = "boundary" if args.boundary else "confusion" if args.confusion else "steps" if args.steps else None
    try:
        plot.require_matplotlib()  # before any work
        history = asked is None
        kind = plot.history_kind(folders) if asked is None else asked
        if args.axis is not None and kind != "sweep":
            raise plot.PlotError("`--axis` chooses a sweep's swept value for the x axis; "
                                 + ("these runs are not sweeps" if kind == "curves" else f"`--{kind}` has no such axis"))
        if args.smooth is not None and kind != "steps":
            raise plot.PlotError("`--smooth` smooths the loss of every step: it goes with `--steps`")
        steps = [s for r, name in zip(folders, args.runs) for s in plot.read_steps(r, name)] if kind == "steps" else []
        if args.output is not None:
            out = plot.output_path(args.output, overwrite=args.overwrite)
        elif len(folders) == 1:  # the picture of one run lives in its folder, redrawn in place
            out = plot.default_output(folders[0], kind)
        else:
            raise plot.PlotError(f"name the picture of {len(folders)} runs with `-o FILE.png` (or `.svg`)")
        if kind == "steps":
            fig = plot.steps_figure(steps, args.smooth)
        else:
            fig = plot.history_figure(kind, folders, args.runs, args.axis) if history else _model_figure(
                kind, folders, args.runs)
        if isinstance(fig, int):
            return fig
        try:
            plot.save(fig, out)
        except OSError as exc:
            raise UsageError(f"cannot write `{out}`: {exc.strerror or exc}") from None
    except plot.PlotError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {plot.PICTURES[kind]} to `{out}`", file=sys.stderr)
    return EXIT_OK


def _model_figure(kind: str, folders: list[Path], names: list[str]):
    """`--boundary` or `--confusion` of each run's trained model (a figure), or the exit
    code of a spec or data error. Every run is checked before JAX starts for any."""
    from nnspec import plot
    from nnspec.diagnostics import NNSpecError
    programs = []
    for r, name in zip(folders, names):
        plot.run_kind(r)
        if not (r / "checkpoint.npz").is_file():
            raise plot.PlotError(f"`{r}` holds no trained model (no `checkpoint.npz`) to draw `--{kind}` from")
        program = _program_or_exit(str(r / "spec.nn"))
        if program is None:
            return EXIT_SPEC
        if program.train is None:
            raise plot.PlotError(f"`{r / 'spec.nn'}` has no `train` block: there is no data to draw")
        plot.refuse(kind, program, name)  # the spec says what the model is
        programs.append(program)
    from nnspec.infer import load_run
    _compile_cache()
    panels: list[Any] = []  # all plot.Boundary or all plot.Confusion, as `kind` says
    for r, name, program in zip(folders, names, programs):
        try:  # the run's weights, its data and split rebuilt as `nnspec eval` rebuilds them
            trained = load_run(program, r, r.resolve(), own_copy=True)
        except NNSpecError as exc:
            exc.action = "plot"
            sys.stderr.write(exc.render(color=_color(sys.stderr)))
            return EXIT_SPEC
        for note in trained.notes:
            print(f"note: `{name}`: {note}", file=sys.stderr)
        panels.append(plot.boundary(trained, name) if kind == "boundary" else plot.confusion(trained, name))
    return plot.boundary_figure(panels) if kind == "boundary" else plot.confusion_figure(panels)


def cmd_env(args: argparse.Namespace) -> int:
    """The versions, the backend and every device JAX sees (where `nnspec train` would run),
    the caches and the run folder, and which optional extras are installed."""
    import jax

    from nnspec import envinfo
    versions = envinfo.versions()
    devices = jax.devices()
    backend, processes = jax.default_backend(), jax.process_count()
    caches, extras = envinfo.caches(), envinfo.extras()
    gpu_note = "training runs on the CPU; for a GPU install `jax[cuda12]` (docs/scale.md)" if backend == "cpu" else None
    if args.format == "json":
        doc = {"versions": versions, "backend": backend, "processes": processes,
               "local_devices": jax.local_device_count(),
               "devices": [{"id": d.id, "platform": d.platform, "kind": getattr(d, "device_kind", None),
                            "process": getattr(d, "process_index", 0)} for d in devices],
               "caches": caches, "extras": extras, "notes": [gpu_note] if gpu_note else []}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    lines = ["  ".join(f"{k} {v or 'not installed'}" for k, v in versions.items())]
    lines.append(f"backend    {backend}")
    lines.append(f"processes  {processes}")
    lines.append(f"devices    {len(devices)}" + (f" (this process: {jax.local_device_count()})"
                                                 if processes > 1 else ""))
    for d in devices:
        lines.append(f"  {d.id:>3}  {d.platform:<5} {getattr(d, 'device_kind', '')}".rstrip())
    lines += envinfo.cache_lines(caches)
    lines.append("extras")
    lines += envinfo.extra_lines(extras)
    if gpu_note:
        lines.append(f"note: {gpu_note}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    """A completion script for the shell, written from this very parser (nnspec/completion.py)."""
    from nnspec.completion import script
    sys.stdout.write(script(args.shell, build_parser()))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from nnspec.codes import CODES, explain
    text = explain(args.code)
    if text is None:
        from nnspec.suggest import did_you_mean
        hint = did_you_mean(args.code.upper(), CODES)
        raise UsageError(f"no diagnostic code `{args.code}`" + (f"; {hint}" if hint else ""))
    sys.stdout.write(text)
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    """The language server (docs/editors.md), on stdin and stdout until the editor says `exit`."""
    try:
        import pygls.lsp.server  # noqa: F401

        from nnspec import lsp
    except ImportError as exc:  # pygls (and its lsprotocol) are the optional `lsp` extra
        raise UsageError(f"`nnspec lsp` needs pygls ({exc}): install it with `pip install 'nnspec[lsp]'`") from None
    lsp.serve()
    return EXIT_OK


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1), the weight of a moving average."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found `{text}`") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"`{text}` is out of range: must be ≥ 0 and < 1")
    return value


def _whole(low: int, high: int | None):
    """An argparse type: a whole number in [low, high], as the spec's own settings are checked."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, found `{text}`") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"`{value}` is out of range: must be ≥ {low}"
                                             + (f" and ≤ {high:,}" if high is not None else ""))
        return value
    return convert


def _devices(text: str) -> int | str:
    """An argparse type: `all`, or a whole number of devices ≥ 1."""
    return "all" if text == "all" else _whole(1, None)(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found `{text}`") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds ≥ 0, found `{text}`")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    """A trained run as StableHLO, safetensors or ONNX (nnspec/export.py)."""
    from nnspec import runs
    from nnspec.diagnostics import NNSpecError
    from nnspec.export import ExportError, export_run
    from nnspec.predictor import load as load_run
    out = Path(args.output)
    if out.exists() and not args.overwrite and not out.is_dir():  # before loading anything
        raise UsageError(f"`{out}` already exists; choose another file, or pass `--overwrite` to replace it")
    _compile_cache()
    try:
        line = export_run(load_run(args.run), args.format, out, overwrite=args.overwrite)
    except runs.RunFolderError as exc:
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        raise UsageError(exc.message + (f"; {exc.help}" if exc.help else "")) from None
    except NNSpecError as exc:
        exc.action = "export"
        sys.stderr.write(exc.render(color=_color(sys.stderr)))
        return EXIT_SPEC
    print(line, file=sys.stderr)
    return EXIT_OK


def cmd_split(args: argparse.Namespace) -> int:
    """The spec's split written out: each part a file, and the row positions (split.json)."""
    from nnspec import runs
    from nnspec.diagnostics import NNSpecError
    from nnspec.prepare import _spec_dir
    from nnspec.split import SplitFolderError, describe, write_split
    program = _program_or_exit(args.spec)
    if program is None:
        return EXIT_SPEC
    if program.train is None or not program.heads:
        raise UsageError(f"`{args.spec}` has no `train` block with a `loss`: there is no data to split")
    program = runs.with_overrides(program, {"seed": args.seed})
    try:
        rows, written = write_split(program, Path(args.out), base_dir=_spec_dir(program), overwrite=args.overwrite)
    except SplitFolderError as exc:
        raise UsageError(str(exc)) from None
    except NNSpecError as exc:
        exc.action = "split"
        sys.stderr.write(exc.render(color=_color(sys.stderr)))
        return EXIT_SPEC
    assert program.train is not None  # (refused above)
    print(f"split {describe(rows, program.train.split_column)}: wrote " + ", ".join(f"`{p}`" for p in written),
          file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnspec", description="A declarative model-spec compiler for neural networks.")
    parser.add_argument("--version", action="version", version=f"nnspec {__import__('nnspec').__version__}",
                        help="print nnspec's version and exit")
    parser.add_argument("--color", choices=COLOR_CHOICES, default="auto", help=COLOR_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", help="check specs and report every problem")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="`.nn` spec files (or IR `.json`); a folder: every `.nn` file under it; `-`: standard input")
    p.add_argument("--format", choices=("human", "json", "github", "sarif"), default="human",
                   help="diagnostics as text, JSON, GitHub Actions annotations or SARIF 2.1.0")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing for clean files")
    p.add_argument("--data", action="store_true",
                   help="also read, split and check the data as `train` would (without JAX): every data problem "
                        "before anything is compiled")
    _stdin_filename(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compile", help="check a spec and print what it compiles to")
    p.add_argument("file", metavar="FILE", help="a `.nn` spec file (or IR `.json`); `-`: standard input")
    p.add_argument("--emit", choices=("ir", "summary", "jaxpr", "stablehlo"), default="summary",
                   help="`ir`: the IR as JSON; `summary`: a table of layers and parameters; "
                        "`jaxpr`/`stablehlo`: the lowered training step")
    p.add_argument("--format", choices=("human", "json"), default="human", help="diagnostics as text or JSON")
    _stdin_filename(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("fmt", help="rewrite specs in canonical form")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="`.nn` spec files; a folder: every `.nn` file under it; `-`: standard input, "
                        "formatted to standard output")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.add_argument("--diff", action="store_true",
                   help="change nothing; print a unified diff of what would change, and exit 1 if anything would")
    _stdin_filename(p)
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("train", help="train a spec and write a run folder")
    p.add_argument("spec", nargs="?", metavar="SPEC")
    p.add_argument("--epochs", type=_whole(1, None), metavar="N", help="override the spec's epochs")
    p.add_argument("--seed", type=_whole(0, 2**63 - 1), metavar="S", help="override the spec's seed")
    p.add_argument("--devices", type=_devices, metavar="N",
                   help="split each batch over N devices (`all`: every device JAX sees); a run may resume on any number")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="train over several processes (hosts): process 0's address, with --num-processes and --process-id")
    p.add_argument("--num-processes", type=_whole(1, None), metavar="P", help="how many processes train the run")
    p.add_argument("--process-id", type=_whole(0, None), metavar="I", help="this process's number, 0 to P-1")
    p.add_argument("--distributed", action="store_true",
                   help="train over the processes a cluster scheduler (SLURM, Open MPI, ...) started")
    p.add_argument("--coordinator-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                   help="how long to wait for the coordinator and the other processes")
    p.add_argument("--out", metavar="DIR", help="run folder: new or empty (default: runs/SPEC-NAME, numbered -2, -3, ... when taken)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    p.add_argument("--data", metavar="FILE", help="train on FILE instead of the file the spec's data line names "
                                                  "(read as that line says: its target, features, ...)")
    p.add_argument("--val-data", metavar="FILE", help="validate on FILE (instead of the spec's `val=` file)")
    p.add_argument("--test-data", metavar="FILE", help="test on FILE (instead of the spec's `test=` file)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in `--out DIR` (only nnspec's own files are removed), "
                        "and the `--plot` file")
    p.add_argument("--plot", metavar="FILE",
                   help="when trained, draw what `nnspec plot` draws (the learning curves, or a sweep's curve) "
                        "to FILE (`.png` or `.svg`); `--overwrite` replaces one that exists")
    p.add_argument("--checkpoint-every", type=_seconds, default=2.0, metavar="SECONDS",
                   help="save a checkpoint at most this often (0: every epoch); always at the end and on Ctrl-C")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="report a trained run's metrics on the test split")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help="the spec (its newest finished run in `runs/` unless `--run DIR`), or instead a run folder "
                        "(with its own copy of the spec)")
    p.add_argument("--run", metavar="DIR", help="the run folder written by `train` (default: the newest finished run "
                                                "of SPEC in `runs/NAME`, `runs/NAME-2`, ...)")
    p.add_argument("--format", choices=("human", "json"), default="human",
                   help="`json`: one object on stdout (split, examples, metrics, confusion, notes)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="predict with a trained run, or with a spec that writes out every weight")
    p.add_argument("spec", metavar="SPEC", help="the spec, or instead a run folder (with its own copy of the spec)")
    p.add_argument("--run", metavar="DIR", help="the run folder written by `train` (default: the newest finished run "
                                                "of SPEC in `runs/`; not needed when the spec gives every weight literally)")
    p.add_argument("--input", required=True, metavar="CSV",
                   help="features, one example a row, under a header naming the columns (any order; others ignored)")
    p.add_argument("--no-header", action="store_true",
                   help="the input has no header: its columns are the model's inputs, in order")
    p.add_argument("--output", metavar="FILE", help="where to write predictions (default: stdout)")
    p.add_argument("--format", choices=("csv", "json"),
                   help="`csv`, or `json`: a list of one object per example keyed by the CSV's column names "
                        "(default: `json` for an `--output` ending in `.json`, else `csv`)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("plot", help="draw runs: learning curves, a sweep's curve, every step's loss, a decision boundary, a confusion matrix")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by `train`; several are drawn on one figure")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the picture, `.png` or `.svg` (default for one run: `curves.png`, `sweep.png`, "
                        "`steps.png`, `boundary.png` or `confusion.png` in its folder)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--boundary", action="store_true",
                       help="a classifier of 2 input features: its decision boundary over its training data")
    which.add_argument("--confusion", action="store_true",
                       help="a classifier: its confusion matrix on the test split (validation without one)")
    which.add_argument("--steps", action="store_true",
                       help="every step's training loss against the epoch (runs trained with `history steps`)")
    p.add_argument("--smooth", type=_fraction, metavar="WEIGHT",
                   help="with `--steps`: also draw the losses' moving average, TensorBoard's smoothing "
                        "(a weight in [0, 1), e.g. 0.9)")
    p.add_argument("--axis", metavar="NAME", help="for a sweep: the swept value on the x axis (default: the first that varies)")
    p.add_argument("--overwrite", action="store_true", help="replace `-o FILE` if it exists")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", help="write a trained run as StableHLO, safetensors or ONNX (docs/export.md)")
    p.add_argument("run", metavar="RUN", help="the run folder written by `train`")
    p.add_argument("--format", required=True, choices=("stablehlo", "safetensors", "onnx"),
                   help="`stablehlo`: the inference function (jax.export); `safetensors`: the weights by layer "
                        "path; `onnx`: the inference function for onnxruntime (needs `nnspec[onnx]`)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("explain", help="explain a diagnostic code, as in `nnspec explain E101`")
    p.add_argument("code", metavar="CODE")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("env", help="show the versions, the devices JAX sees, the caches and the optional extras")
    p.add_argument("--format", choices=("human", "json"), default="human", help="as text or as one JSON object")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("completion", help="print a shell completion script for bash, zsh or fish")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="`bash`, `zsh` or `fish`")
    p.set_defaults(func=cmd_completion)

    p = sub.add_parser("lsp", help="run the language server for editors over stdio (docs/editors.md)")
    p.add_argument("--stdio", action="store_true",
                   help="talk over stdin and stdout: the only transport, accepted because some clients pass it")
    p.set_defaults(func=cmd_lsp)

    p = sub.add_parser("split", help="write a spec's train, validation and test parts as files, with their rows")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder for `train.csv` (or `.npz`), `val`, `test` and `split.json`")
    p.add_argument("--seed", type=_whole(0, 2**63 - 1), metavar="S",
                   help="override the spec's seed (as `nnspec train --seed` does)")
    p.add_argument("--overwrite", action="store_true", help="replace the split already in DIR (only its own files)")
    p.set_defaults(func=cmd_split)
    for p in sub.choices.values():  # the global options, also accepted after the command
        p.add_argument("--color", choices=COLOR_CHOICES, default=argparse.SUPPRESS, help=COLOR_HELP)
    return parser


COLOR_HELP = ("when to colour diagnostics: `auto` colours them on a terminal, unless `NO_COLOR` is set "
              "(or `FORCE_COLOR` is, other than `0`)")


def _stdin_filename(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdin-filename", metavar="NAME",
                   help="the name diagnostics give the spec read from `-` (default `<stdin>`)")


def entry() -> int:
    """The `nnspec` command (the console script and `python -m nnspec`): `main`, then the
    process ends at once. Python's own exit tears down JAX's runtime and every module,
    half a second of a short `nnspec train` (measured: benchmarks/cold.py) that produces
    nothing: by then every file nnspec writes is complete and closed (written atomically),
    and the output is flushed here. A process that joined others (`jax.distributed`) exits
    the usual way, so that JAX tells the coordinator it is leaving."""
    code = main()
    if "jax" in sys.modules:
        from nnspec import distributed
        if distributed.joined():
            return code
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or EXIT_SPEC  # the output could not be written
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    global _COLOR_CHOICE
    parser = build_parser()
    args = parser.parse_args(argv)
    _COLOR_CHOICE, color_before = args.color, _COLOR_CHOICE
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in run.json
    shown = warnings.showwarning
    # a Python warning (NumPy's overflow, ...) as one line of its text, without the
    # installation's paths and source lines
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a failed write (a full disk) surfaces here, not as a traceback at exit
        return code
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`nnspec compile ... | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # the output could not be written: a full disk, a device that refuses
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # drop what is still buffered
        except (OSError, ValueError):
            pass  # stdout is not a file (in-process callers)
        what = f"access `{exc.filename}`" if exc.filename else "write the output"
        print(f"error: cannot {what}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # the last line of defence: no bare traceback for users
        trace = traceback.format_exc()  # first: nothing gathered below may replace it
        try:
            from nnspec.envinfo import bug_report
            about = bug_report(args.argv)
        except Exception as exc:  # noqa: BLE001 (bug_report catches its own; this is the import)
            about = f"  (the versions could not be gathered: {type(exc).__name__}: {exc})\n"
        print("error: internal compiler error: this is a bug in nnspec, not in your spec\n"
              "  please report it with the spec and the text below\n\n" + about, file=sys.stderr)
        sys.stderr.write(trace)
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = shown  # in-process callers keep their own
        _COLOR_CHOICE = color_before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
