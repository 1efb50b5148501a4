"""Sweeps: many models in one vmapped program, each the same as training it alone."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import nnspec
from nnspec.cli import main
from nnspec.diagnostics import NNSpecError
from nnspec.fit import fit
from nnspec.sweep_fit import fit_sweep

BASE = """
model moons {
    input x[2]
    dense UNITS relu
    dropout DROP
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer OPT
train {
    data builtin("moons", n=300)
    split val=0.2 test=0.2
    batch 32
    epochs EPOCHS
    metrics accuracy
    SEED
}
"""


def spec(units="8", drop="0.1", opt="sgd lr=sweep(0.03, 0.3)", epochs="6", seed="seed 0"):
    return (BASE.replace("UNITS", units).replace("DROP", drop).replace("OPT", opt)
            .replace("EPOCHS", epochs).replace("SEED", seed))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_check_expands_a_grid_of_traced_axes():
    program = nnspec.check_text(spec(opt="momentum lr=sweep(0.01, 0.1, 1) momentum=sweep(0, 0.9)"))
    sweep = program.sweep
    assert [a.name for a in sweep.axes] == ["lr", "momentum"] and all(a.traced for a in sweep.axes)
    assert len(sweep.programs) == 6 and sweep.groups() == [list(range(6))]
    assert [dict(s) for s in sweep.settings][:3] == [{"lr": 0.01, "momentum": 0}, {"lr": 0.01, "momentum": 0.9},
                                                     {"lr": 0.1, "momentum": 0}]
    assert sweep.programs[3].optimizer.params["lr"] == 0.1 and sweep.programs[3].optimizer.params["momentum"] == 0.9


def test_random_search_draws_the_same_values_every_time():
    a = nnspec.check_text(spec(opt="adam lr=sweep_log(1e-4, 1e-1, n=8)")).sweep.axes[0].values
    b = nnspec.check_text(spec(opt="adam lr=sweep_log(1e-4, 1e-1, n=8)")).sweep.axes[0].values
    assert a == b and len(set(a)) == 8 and all(1e-4 <= v <= 1e-1 for v in a)


@pytest.mark.parametrize("text, code", [
    ("let rates = sweep(0.1, 1)\n" + spec(opt="sgd lr=rates"), "E313"),
    (spec(opt="sgd lr=sweep()"), "E312"),
    (spec(opt="sgd lr=sweep(0.1, 0.1)"), "E312"),
    (spec(opt="sgd lr=sweep_log(0, 1, n=4)"), "E312"),
    (spec(opt="sgd lr=sweep_uniform(1, 0.1, n=4)"), "E312"),
    (spec(opt="sgd lr=sweep(0.1, -1)"), "E104"),  # each model is checked as usual
])
def test_malformed_sweeps_are_located_errors(text, code):
    with pytest.raises(NNSpecError) as info:
        nnspec.check_text(text)
    assert info.value.diagnostics[0].code == code
    assert info.value.diagnostics[0].primary_span is not None


def test_each_member_matches_training_that_setting_alone():
    program = nnspec.check_text(spec(opt="adam lr=sweep(0.003, 0.03) beta1=sweep(0.8, 0.9)", drop="sweep(0, 0.3)"))
    result = fit_sweep(program)
    assert len(result.members) == 8
    for member in result.members:
        alone = fit(member.program)
        for a, b in zip(leaves(alone.params), leaves(member.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert [r["loss"] for r in alone.history] == pytest.approx([r["loss"] for r in member.history], rel=1e-5)


def test_one_compilation_for_all_traced_members(monkeypatch):
    from nnspec import trainer
    traces = []
    real = trainer.epoch_fn

    def counting(*args, **kw):
        fn = real(*args, **kw)

        def traced(*a):
            traces.append(1)
            return fn(*a)
        return traced
    monkeypatch.setattr(trainer, "epoch_fn", counting)
    fit_sweep(nnspec.check_text(spec(opt="sgd lr=sweep(0.01, 0.03, 0.1, 0.3)", seed="seed sweep(0, 1)")))
    assert len(traces) == 1  # 8 models, 6 epochs: traced once


def test_shape_axes_get_a_program_each_and_chunks_change_nothing():
    program = nnspec.check_text(spec(units="sweep(4, 8)"))
    assert program.sweep.groups() == [[0, 1], [2, 3]]
    whole = fit_sweep(program)
    assert any("2 programs" in note for note in whole.notes)
    chunked = fit_sweep(program, chunk=1)
    for a, b in zip(whole.members, chunked.members):
        for x, y in zip(leaves(a.params), leaves(b.params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_divergence_and_early_stopping_are_per_model():
    text = spec(opt="sgd lr=sweep(0.1, 1e30)", epochs="40").replace(
        "seed 0", "seed 0\n    early_stop monitor=val_loss patience=2")
    result = fit_sweep(nnspec.check_text(text))
    good, bad = result.members
    assert bad.diverged is not None and bad.diverged[0] == 1
    assert good.diverged is None and len(good.history) > 1
    assert result.ranking() == [0, 1]
    assert "diverged (epoch 1, step" in result.table()


def test_cli_sweep_writes_ranked_table_histories_plot_and_best_model(tmp_path, capsys):
    path = tmp_path / "sweep.nn"
    path.write_text(spec(opt="sgd lr=sweep(0.01, 0.1, 1)"))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run), "--plot", str(tmp_path / "lr.png"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sweep of 3 models, ranked by val_loss")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (run / "sweep.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(len(json.loads(l)["history"]) == 6 for l in lines)
    assert "lr=1" in (run / "best.nn").read_text() or "lr=0.1" in (run / "best.nn").read_text()
    assert main(["eval", str(path), "--run", str(run)]) == 0
    assert "test split" in capsys.readouterr().out


def test_an_ensemble_averages_its_members(tmp_path, capsys):
    path = tmp_path / "ens.nn"
    path.write_text(spec(opt="adam lr=0.01", seed="seed sweep(0, 1, 2)"))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run), "-q"]) == 0
    program = nnspec.check_text(path.read_text(), filename=str(path))
    from nnspec.infer import load_trained, predict
    model, params, std, meta = load_trained(program, run)
    assert meta["ensemble"] == 3 and jax.tree_util.tree_leaves(params)[0].shape[0] == 3
    x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    each = [np.asarray(model.apply(jax.tree_util.tree_map(lambda a: a[i], params), x)) for i in range(3)]
    np.testing.assert_allclose(np.asarray(predict(model, params, x, ensemble=True)), np.mean(each, axis=0), rtol=1e-6)
    capsys.readouterr()
    assert main(["eval", str(path), "--run", str(run)]) == 0
    captured = capsys.readouterr()
    assert "ensemble of 3 models" in captured.err


# ------------------------------------------------------------- axes that change the data or the loop

DATA = """
model spirals {
    input x[2]
    dense 4 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.3
train {
    data DATA
    split SPLIT
    batch 32
    epochs EPOCHS
    standardize
    seed 3
}
"""


def data_spec(data='builtin("spirals", n=200)', split="val=0.2 test=0.2", epochs="3"):
    return DATA.replace("DATA", data).replace("SPLIT", split).replace("EPOCHS", epochs)


@pytest.mark.parametrize("axes", [
    dict(data='builtin("spirals", n=sweep(200, 400), noise=sweep(0.05, 0.2))'),
    dict(split="val=sweep(0.2, 0.3) test=0.1", epochs="sweep(2, 4)"),
])
def test_axes_that_change_the_data_or_the_loop_really_vary(axes):
    program = nnspec.check_text(data_spec(**axes))
    result = fit_sweep(program)
    datas = {repr((m.program.train.data, m.program.train.val)) for m in result.members}
    assert len({id(m.splits) for m in result.members}) == len(datas)  # one preparation per distinct data
    for member in result.members:
        t = member.program.train
        alone = fit(member.program)  # the setting trained on its own: its data, split and epochs
        assert len(member.history) == t.epochs
        assert [len(member.splits.train), len(member.splits.val), len(member.splits.test)] == \
            [len(alone.splits.train), len(alone.splits.val), len(alone.splits.test)]
        assert len(member.splits.train) + len(member.splits.val) + len(member.splits.test) == t.data.params["n"]
        np.testing.assert_array_equal(member.splits.standardizer.mean, alone.splits.standardizer.mean)
        assert [r["loss"] for r in member.history] == pytest.approx([r["loss"] for r in alone.history], rel=1e-5)
    varied = "`data.source.n`, `data.source.noise` change" if "data" in axes else "`split.val` changes"
    assert (f"{varied} the data: the models were trained and measured on different examples, so their "
            f"`val_loss` values are not strictly comparable") in result.notes


def test_members_that_read_the_same_data_prepare_it_once(monkeypatch):
    from nnspec import sweep_fit
    calls = []
    real = sweep_fit.prepare
    monkeypatch.setattr(sweep_fit, "prepare", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    result = fit_sweep(nnspec.check_text(data_spec(epochs="sweep(1, 2)")))
    assert len(calls) == 1 and [len(m.history) for m in result.members] == [1, 2]
    assert not any("the data: the models were trained" in note for note in result.notes)


def test_a_sweep_where_some_models_have_no_validation_split_ranks_by_training_loss():
    result = fit_sweep(nnspec.check_text(data_spec(split="val=sweep(0, 0.2) test=0.2", epochs="1")))
    assert result.monitor == "loss" and [m.splits.val is None for m in result.members] == [True, False]
    assert all(m.kept_value == m.history[-1]["loss"] for m in result.members)


def test_sweep_run_records_each_members_examples_and_the_best_members_data(tmp_path, capsys):
    from nnspec import checkpoint
    from nnspec.prepare import prepare
    path = tmp_path / "data.nn"
    path.write_text(data_spec(data='builtin("spirals", n=sweep(100, 300))', epochs="sweep(2, 3)"))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run), "-q"]) == 0
    captured = capsys.readouterr()
    assert "note: `data.source.n` changes the data: the models were trained and measured on" in captured.err
    rows = [json.loads(line) for line in (run / "sweep.jsonl").read_text().splitlines()]
    assert [(r["setting"], sum(r["examples"].values()), len(r["history"])) for r in rows] == [
        ({"data.source.n": 100, "epochs.source": 2}, 100, 2), ({"data.source.n": 100, "epochs.source": 3}, 100, 3),
        ({"data.source.n": 300, "epochs.source": 2}, 300, 2), ({"data.source.n": 300, "epochs.source": 3}, 300, 3)]
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    program = nnspec.check_text(path.read_text(), filename=str(path))
    best = program.sweep.programs[[dict(s) for s in program.sweep.settings].index(meta["best_setting"])]
    assert meta["standardizer"] == prepare(best).standardizer.to_dict()
    assert len(meta["history"]) == best.train.epochs


def test_epochs_on_the_command_line_cannot_replace_swept_epochs(tmp_path, capsys):
    path = tmp_path / "epochs.nn"
    path.write_text(data_spec(epochs="sweep(2, 4)"))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--epochs", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "error[E108]: `--epochs 1` would replace the swept `epochs`" in err
    assert "epochs.nn:13:12\n   |\n13 |     epochs sweep(2, 4)\n   |            ^^^^^^^^^^^ the epochs this sweep tries" in err
    assert "help: leave out `--epochs`, or write one number in the spec" in err
    assert not (tmp_path / "run").exists()


def test_seed_on_the_command_line_cannot_replace_a_swept_seed():
    import dataclasses
    program = nnspec.check_text(spec(opt="adam lr=0.01", seed="seed sweep(0, 1)", epochs="1"), filename="ens.nn")
    # what `nnspec train --seed 5` makes of it: every model reseeded
    reseeded = tuple(dataclasses.replace(p, train=dataclasses.replace(p.train, seed=5)) for p in program.sweep.programs)
    program = dataclasses.replace(program, sweep=dataclasses.replace(program.sweep, programs=reseeded))
    with pytest.raises(NNSpecError) as info:
        fit_sweep(program)
    err = info.value.render()
    assert "error[E108]: `--seed 5` would replace the swept `seed`" in err
    assert "16 |     seed sweep(0, 1)\n   |          ^^^^^^^^^^^ the seeds this sweep tries" in err
    assert "help: leave out `--seed`, or write one seed in the spec" in err


def test_epochs_on_the_command_line_replaces_every_models_epochs_and_says_so():
    result = fit_sweep(nnspec.check_text(data_spec(data='builtin("spirals", n=sweep(100, 200))')), epochs=2)
    assert [len(m.history) for m in result.members] == [2, 2]
    assert "`--epochs 2` replaces the spec's `epochs 3` for every model" in result.notes


# ------------------------------------------------------------- divergence that stays finite

EXPLODE = spec(units="16", drop="0", opt="sgd lr=sweep(0.1, 1e6)", epochs="4").replace("moons", "spirals")


def test_a_loss_far_above_its_start_is_divergence_even_when_finite(tmp_path, capsys):
    # sgd lr=1e6 saturates the sigmoid: the clipped cross-entropy stays finite, about
    # 11 times the initial loss (the ratios of other datasets are in docs/training.md)
    path = tmp_path / "explode.nn"
    path.write_text(EXPLODE)
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run), "-q"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["rank", "lr"] and table[2].split()[1] == "0.1" and table[2].endswith(" ok")
    assert table[3].split()[1] == "1e+06" and "diverged (epoch 1, step" in table[3] and table[3].endswith(", exploded)")
    good, bad = (json.loads(line) for line in (run / "sweep.jsonl").read_text().splitlines())
    assert good["divergence"] is None and len(good["history"]) == 4
    assert bad["divergence"] == "exploded" and bad["history"] == [] and bad["diverged"][0] == 1


@pytest.mark.parametrize("line, diverged", [("divergence 3", True), ("divergence off", False),
                                             ("divergence 1e9", False)])
def test_the_divergence_factor_is_the_specs_own(line, diverged):
    program = nnspec.check_text(EXPLODE.replace("seed 0", f"seed 0\n    {line}"))
    good, member = fit_sweep(program).members
    assert good.diverged is None and len(good.history) == 4
    assert (member.diverged is not None) is diverged
    assert len(member.history) == (0 if diverged else 4)
    if not diverged:  # the same model, allowed to go on, stays far above its start
        assert max(r["loss"] for r in member.history) > 3 * member.start_loss


def test_nan_divergence_is_named_nan():
    result = fit_sweep(nnspec.check_text(spec(opt="sgd lr=sweep(0.1, 1e30)", epochs="2")))
    assert result.members[1].how in ("NaN", "infinite") and result.members[0].how == ""
    assert f"step {result.members[1].diverged[1]}, {result.members[1].how})" in result.table()


# ------------------------------------------------------------- the screen

def member(lr, kept, best, diverged=None):
    from nnspec.sweep_fit import MemberResult
    m = MemberResult({"lr": lr}, None, history=[{"epoch": 1}], best_epoch=1, best_value=best, kept_value=kept)
    m.diverged, m.how = (diverged, "exploded") if diverged else (None, "")
    return m


def test_progress_names_the_model_the_ranking_puts_first():
    from nnspec.sweep_fit import SweepResult, _progress_summary
    # lr=1 once reached 0.1 but keeps 0.5 (no restore_best); lr=0.1 keeps 0.3: the ranking's first
    members = [member(1.0, kept=0.5, best=0.1), member(0.1, kept=0.3, best=0.3), member(10.0, kept=0.01, best=0.01,
                                                                                        diverged=(2, 1))]
    result = SweepResult(None, members, "val_loss", "min", [])
    assert result.ranking() == [1, 0, 2]
    assert _progress_summary(members, members, "val_loss", "min") == \
        "3 models (0 stopped, 1 diverged)  best val_loss 0.3000 (lr=0.1)"


def test_progress_line_of_a_real_sweep_agrees_with_the_final_table():
    lines = []
    result = fit_sweep(nnspec.check_text(spec(opt="sgd lr=sweep(0.03, 0.3, 3)", epochs="4")), progress=lines.append)
    best = result.best
    assert len(lines) == 4
    assert lines[-1].split("  [")[0] == (f"epoch 4/4  3 models (0 stopped, 0 diverged)  best val_loss "
                                         f"{best.kept_value:.4f} (lr={best.setting['lr']:g})")


def test_small_values_print_in_scientific_notation():
    from nnspec.sweep_fit import SweepResult
    table = SweepResult(None, [member(0.1, kept=3e-5, best=2.5e-5), member(1.0, kept=0.25, best=0.2)],
                        "loss", "min", []).table()
    head, first, second = table.splitlines()
    assert head.split() == ["rank", "lr", "kept", "loss", "best", "loss", "best", "epoch", "epochs", "status"]
    assert first.split() == ["1", "0.1", "3.000e-05", "2.500e-05", "1", "1", "ok"]
    assert second.split() == ["2", "1", "0.2500", "0.2000", "1", "1", "ok"]


class _Stop(KeyboardInterrupt):
    pass


def _interrupt_after(lines: int):
    """A progress callback that interrupts the sweep (as Ctrl-C) after `lines` epoch lines."""
    seen = []

    def progress(line: str) -> None:
        seen.append(line)
        if len(seen) == lines:
            raise _Stop()
    return progress


def test_a_killed_sweeps_temporary_files_are_removed_by_the_next(tmp_path):
    program = nnspec.check_text(spec(epochs="3"))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(program, out=run, progress=_interrupt_after(2))
    # what a sweep killed while writing leaves beside its intact files
    stale = [run / ".sweep.csv.1a2b3c4d.tmp", run / ".checkpoint.npz.abcd.tmp", run / ".best.nn.x.tmp"]
    for f in stale:
        f.write_bytes(b"half a file")
    fit_sweep(program, out=run, resume=True)
    assert not any(f.exists() for f in stale)
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["spec.nn", "ir.json", "best.nn", "run.json", "sweep.txt", "sweep.csv", "sweep.jsonl", "checkpoint.npz",
         "split.json"])


# two stacks (units 4 and 8), two models each, trained in chunks of one: four stacks in all
RESUMABLE = spec(units="sweep(4, 8)", epochs="5", seed="seed 3\n    early_stop monitor=val_loss patience=2 restore_best")


@pytest.mark.parametrize("lines", [1, 7, 12, 19])
def test_an_interrupted_sweep_resumes_to_the_uninterrupted_result(tmp_path, lines):
    """Interrupted in the first stack, between stacks, or late in the last one: resuming
    gives every model the history and weights of the sweep that was never interrupted."""
    program = nnspec.check_text(RESUMABLE)
    whole = fit_sweep(program, chunk=1)
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(program, out=run, chunk=1, progress=_interrupt_after(lines), checkpoint_every=0.0)
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = fit_sweep(nnspec.check_text((run / "spec.nn").read_text()), out=run, resume=True)
    for a, b in zip(whole.members, resumed.members):
        assert a.setting == b.setting
        assert a.history == b.history and (a.best_epoch, a.stopped_early) == (b.best_epoch, b.stopped_early)
        for x, y in zip(leaves(a.params), leaves(b.params)):
            np.testing.assert_array_equal(x, y)
    assert whole.table() == resumed.table()


def test_resuming_a_sweep_keeps_its_seed_and_epochs_and_refuses_others(tmp_path, capsys):
    path = tmp_path / "s.nn"
    path.write_text(spec(epochs="4"))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(nnspec.check_text(path.read_text()), out=run, seed=7, epochs=3, progress=_interrupt_after(1),
                  checkpoint_every=0.0)
    assert main(["train", "--resume", str(run), "--epochs", "4", "-q"]) == 2
    assert "is a sweep begun with `--epochs 3`; resume it without `--epochs`" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--seed", "1", "-q"]) == 2
    assert "is a sweep begun with `--seed 7`; resume it without `--seed`" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "-q"]) == 0
    capsys.readouterr()
    fresh = fit_sweep(nnspec.check_text(path.read_text()), seed=7, epochs=3)
    ckpt = json.loads((run / "run.json").read_text())
    assert ckpt["status"] == "finished" and ckpt["run"]["seed"] == 7 and ckpt["run"]["overrides"] == {"epochs": 3, "seed": 7}
    rows = [json.loads(line) for line in (run / "sweep.jsonl").read_text().splitlines()]
    assert [r["history"] for r in rows] == [m.history for m in fresh.members]
    assert main(["train", "--resume", str(run), "-q"]) == 2
    assert "has finished: its table is" in capsys.readouterr().err


def test_a_damaged_sweep_progress_is_refused(tmp_path, capsys):
    from nnspec import checkpoint
    program = nnspec.check_text(spec(epochs="3"))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(program, out=run, progress=_interrupt_after(1), checkpoint_every=0.0)
    path = run / "checkpoint.npz"
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["sweep_progress"]["chunks"] = [[0, [0, 5]]]  # a model the sweep does not have
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    assert main(["train", "--resume", str(run), "-q"]) == 1
    err = capsys.readouterr().err
    assert "error[E405]:" in err and "`sweep_progress` is not a record of this sweep's progress" in err
    assert checkpoint.read_meta(path)["sweep"] is True


def test_an_unfinished_sweep_cannot_be_evaluated_yet(tmp_path, capsys):
    path = tmp_path / "s.nn"
    path.write_text(spec(epochs="3"))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(nnspec.check_text(path.read_text()), out=run, progress=_interrupt_after(1))
    assert main(["eval", "--run", str(run)]) == 1
    assert f"resume it with `nnspec train --resume {run}`" in capsys.readouterr().err


def test_a_sweep_whose_every_model_diverged_fails_with_e404(tmp_path, capsys):
    path = tmp_path / "all.nn"
    path.write_text(spec(opt="sgd lr=sweep(1e30, 1e31)", epochs="2"))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "-q"]) == 1
    captured = capsys.readouterr()
    assert [line.split()[-1] for line in captured.out.splitlines()[2:]] == ["NaN)", "NaN)"]
    assert "error[E404]: training diverged: all 2 models of the sweep diverged" in captured.err
    assert "^^^^^^^^^^^^^^^^^ these learning rates may be too large" in captured.err
    assert "best:" not in captured.out



def test_a_resumed_sweep_refuses_a_split_that_differs(tmp_path):
    """The sweep's one split is in split.json, as a single run's is: data that now splits
    otherwise (another NumPy, an edited file) is E407, not models trained on other rows."""
    program = nnspec.check_text(spec(epochs="3"))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit_sweep(program, out=run, progress=_interrupt_after(2), checkpoint_every=0.0)
    recorded = json.loads((run / "split.json").read_text())
    part = next(k for k in ("val", "train") if len(recorded.get(k, [])) > 1)
    recorded[part] = recorded[part][::-1]
    (run / "split.json").write_text(json.dumps(recorded))
    with pytest.raises(nnspec.NNSpecError) as err:
        fit_sweep(nnspec.check_text((run / "spec.nn").read_text()), out=run, resume=True)
    (diag,) = err.value.diagnostics
    assert diag.code == "E407" and "the split rebuilt from the data is not the sweep's" in diag.message
