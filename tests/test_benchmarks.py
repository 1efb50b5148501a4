"""The benchmark harness runs end to end on tiny sizes, so it cannot rot.

It asserts the output's structure and that every implementation's final loss is finite
and agrees with nnspec's; it never asserts a timing (those depend on the machine).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

import nnspec  # noqa: E402
from benchmarks import harness, report  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.workloads import workloads  # noqa: E402

OPTIONAL = {"torch_eager", "keras_jax"}  # skipped, with a note, where the package is missing


def _quick(tmp_path_factory, only: str, *more: str) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    import contextlib
    import io
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["--quick", "--only", only, "--jobs", "2", "--out", str(out), *more]) == 0
    return json.loads(out.read_text()), text.getvalue()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, str]:
    return _quick(tmp_path_factory, "W1,W2,W3,frontend")


@pytest.fixture(scope="module")
def quick_conv_rnn(tmp_path_factory) -> tuple[dict, str]:
    """W4 and W5 apart: compiling a CNN and an LSTM takes seconds each time (jax_steps, the
    tutorial loop of W1, left out: its network code is jax_fused's)."""
    return _quick(tmp_path_factory, "W4,W5", "--impls", "jax_fused,torch_eager,keras_jax")


def test_every_workload_runs_and_losses_agree(quick_run):
    _check_workloads(quick_run[0], ["W1", "W2", "W3"])


@pytest.mark.slow
def test_the_cnn_and_the_lstm_run_and_losses_agree(quick_conv_rnn):
    results, text = quick_conv_rnn
    _check_workloads(results, ["W4", "W5"])
    for name in ("W4", "W5"):
        w = results["workloads"][name]
        assert set(w["impls"]) == {"nnspec", "jax_fused", "torch_eager", "keras_jax"}
        assert w["bars"] == {"jax_fused": 0.9, "torch_eager": 3.0, "keras_jax": 2.0}
        assert f"{name}: " in text
    assert "LOSSES DIFFER" not in text


def _check_workloads(results: dict, names: list[str]) -> None:
    assert {"date", "nproc", "cpu", "jax"} <= set(results["machine"])
    ws = results["workloads"]
    for name in names:
        w = ws[name]
        assert w["impls"]["nnspec"]["status"] == "ok", w["impls"]["nnspec"].get("note")
        for impl, r in w["impls"].items():
            if r["status"] == "skipped":
                assert impl in OPTIONAL and r["note"], (name, impl)
                continue
            assert r["status"] == "ok", (name, impl, r.get("note"))
            assert math.isfinite(r["final_loss"]), (name, impl)
            assert r["total_s"] > 0 and r["peak_rss_mb"] > 0
            if r["whole_runs"]:  # `nnspec train` processes: only their wall clock is seen
                assert r["samples_per_s"] is None and r["first_step_s"] is None and r["runs"] >= 1
            else:
                assert r["samples_per_s"] > 0 and r["first_step_s"] > 0
                assert len(r["losses"]) == w["epochs"]
            if impl != "nnspec":
                c = w["comparison"][impl]
                assert c["loss_agrees"], (name, impl, r["final_loss"], w["impls"]["nnspec"]["final_loss"])
                assert {"speed", "first_step", "wall", "peak_rss"} <= set(c)
                if "bar" in c:
                    assert c["passes"] is None  # --quick never judges the bars
                if "wall_bar" in c:
                    assert c["wall_passes"] is None and c["wall_vs_ratio"] > 0
    assert report.all_losses_finite(results)


def test_the_baselines_networks_are_nnspecs():
    """W4's CNN and W5's LSTM as the JAX baselines write them compute what nnspec's
    lowering of the workload's spec computes, from the same weights: the same architecture."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from benchmarks.baselines import jax_common
    from nnspec.lower import lower
    names = {"W4": {"conv2d_1": ("w1", "b1"), "conv2d_2": ("w2", "b2"), "dense_1": ("w3", "b3")},
             "W5": {"lstm_1": ("w", "u", "b"), "dense_1": ("wd", "bd")}}
    for name, w in workloads(True).items():
        if name not in names:
            continue
        model = lower(nnspec.check_text(w.spec(f"{name}.npz")))
        params = model.init(jax.random.key(1))
        mine = {ours: params[layer][theirs] for layer, pairs in names[name].items()
                for ours, theirs in zip(pairs, ("w", "u", "b") if layer == "lstm_1" else ("w", "b"))}
        # the baselines' own initialization has the same shapes
        base = jax_common.init(w, jax.random.key(0))
        assert {k: v.shape for k, v in base.items()} == {k: v.shape for k, v in mine.items()}
        x = jnp.asarray(np.random.default_rng(0).normal(size=(5, *w.input_shape)), jnp.float32)
        logits = jax_common.forward(w, mine, x, None)
        pred = model.apply(params, x)
        if name == "W5":  # nnspec's spec ends in `dense 1 sigmoid`; the baseline's loss applies it
            logits = jax.nn.sigmoid(logits)
        np.testing.assert_allclose(np.asarray(pred), np.asarray(logits), rtol=1e-5, atol=1e-5)
        if name == "W5":  # both start the forget gate open, every other bias at zero
            for b in (base["b"], mine["b"]):
                np.testing.assert_array_equal(np.asarray(b), np.repeat([0.0, 1.0, 0.0, 0.0], 16))


def test_w3_is_a_sweep(quick_run):
    results, _ = quick_run
    w3 = results["workloads"]["W3"]
    impls = w3["impls"]
    sweep = impls["nnspec"]["sweep_losses"]
    assert len(sweep) == 16
    for impl in ("jax_fused", "jax_vmap", "nnspec_seq", "nnspec_cli"):
        assert len(impls[impl]["sweep_losses"]) == 16, impl
    # nnspec's program compiled once and run per setting trains exactly the sweep's models
    assert impls["nnspec_seq"]["sweep_losses"] == pytest.approx(sweep, rel=1e-4)
    assert impls["nnspec_cli"]["sweep_losses"] == pytest.approx(sweep, rel=1e-4)
    # --quick trains one setting alone (the compared one), in-process and as a process
    for impl in ("nnspec_fits", "nnspec_procs"):
        assert impls[impl]["final_loss"] == pytest.approx(impls["nnspec"]["final_loss"], rel=1e-4), impl
    c = w3["comparison"]
    assert (c["nnspec_seq"]["wall_bar"], c["nnspec_seq"]["wall_vs"]) == (4.0, "nnspec")
    assert (c["nnspec_procs"]["wall_bar"], c["nnspec_procs"]["wall_vs"]) == (20.0, "nnspec_cli")


def test_front_end_latency_is_measured(quick_run):
    results, _ = quick_run
    fe = results["frontend"]
    assert fe["layers"] == 200 and fe["jax_imported"] is False
    for key in ("cli_check_s", "cli_summary_s", "check_text_s", "check_text_cold_s", "python_startup_s"):
        assert fe[key] > 0


def test_the_table_names_every_workload_and_ratio(quick_run):
    _, text = quick_run
    for word in ("W1:", "W2:", "W3", "speed ratio", "wall s", "nnspec", "jax_fused", "front end"):
        assert word in text
    assert "LOSSES DIFFER" not in text


@pytest.mark.parametrize("quick", [True, False])
def test_every_workload_spec_checks(quick):
    for w in workloads(quick).values():
        program = nnspec.check_text(w.spec(f"{w.name}.npz"))
        assert program.train.batch == w.batch and program.train.epochs == w.epochs
        assert w.n % w.batch == 0


def test_unknown_workloads_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--only", "W9"])
    assert exc.value.code == 2 and "unknown workload" in capsys.readouterr().err


def test_loss_agreement_is_relative():
    assert report.loss_agrees(0.21, 0.20, 0.15)
    assert not report.loss_agrees(0.30, 0.20, 0.15)
    assert not report.loss_agrees(math.nan, 0.20, 0.15)
    # below a workload's floor both have trained to near zero: relative differences are noise
    assert report.loss_agrees(0.0001, 0.0004, 0.15, floor=0.02)
    assert not report.loss_agrees(0.0001, 0.03, 0.15, floor=0.02)
    assert not report.loss_agrees(math.nan, 0.0001, 0.15, floor=0.02)


def _entry(quick: bool, **totals: float) -> dict:
    ok = lambda t: {"status": "ok", "samples_per_s": None, "first_step_s": None, "total_s": t,  # noqa: E731
                    "peak_rss_mb": 100.0, "final_loss": 0.2}
    return {"quick": quick, "bars": {}, "wall_bars": {"seq": [4.0, "nnspec"], "procs": [20.0, "cli"]},
            "loss_tol": 0.15, "impls": {k: ok(v) for k, v in totals.items()}}


def test_wall_bars_compare_whole_jobs_against_the_named_implementation():
    c = report.compare(_entry(False, nnspec=2.0, seq=10.0, cli=3.0, procs=45.0))
    assert c["seq"]["wall"] == pytest.approx(5.0) and c["seq"]["wall_passes"] is True
    assert c["procs"]["wall_vs_ratio"] == pytest.approx(15.0) and c["procs"]["wall_passes"] is False
    assert c["procs"]["wall"] == pytest.approx(22.5)  # against nnspec itself, for the table
    assert c["seq"]["speed"] is None and c["seq"]["first_step"] is None
    assert report.compare(_entry(True, nnspec=2.0, seq=10.0, cli=3.0, procs=45.0))["seq"]["wall_passes"] is None
    missing = report.compare(_entry(False, nnspec=2.0, procs=45.0))["procs"]  # `cli` not run (--impls)
    assert missing["wall_vs_ratio"] is None and missing["wall_passes"] is None


def test_whole_runs_have_a_wall_clock_only():
    from benchmarks.clock import Clock, summarize
    clock = Clock(whole_runs=True, models=2)
    clock.start = 0.0
    clock.ends, clock.losses = [3.0, 7.0], [0.3, 0.2]
    out = summarize(clock, n=100, steps=10)
    assert out["samples_per_s"] is None and out["first_step_s"] is None
    assert out["total_s"] == 7.0 and out["runs"] == 2 and out["final_loss"] == 0.2


def test_best_round_keeps_the_shortest_wall_clock():
    rounds = [{"status": "ok", "samples_per_s": 10.0, "first_step_s": 1.0, "total_s": 5.0, "peak_rss_mb": 1.0,
               "others_cores": 0.0},
              {"status": "ok", "samples_per_s": 12.0, "first_step_s": 2.0, "total_s": 6.0, "peak_rss_mb": 1.0,
               "others_cores": 0.0}]
    b = harness.best(rounds)
    assert (b["samples_per_s"], b["first_step_s"], b["total_s"]) == (12.0, 1.0, 5.0)
    whole = [{**r, "samples_per_s": None, "first_step_s": None} for r in rounds]
    assert harness.best(whole)["total_s"] == 5.0 and harness.best(whole)["first_step_s"] is None


def test_saved_results_are_reported_again(quick_run, tmp_path, capsys):
    results, text = quick_run
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(results))
    assert main(["--report", str(saved)]) == 0
    again = capsys.readouterr().out
    assert again == text  # the same tables, from the file alone


def test_the_ablation_still_finds_what_it_patches():
    """`benchmarks.ablate` reads nnspec's internals: fail here, not silently there, when they move."""
    import nnspec.trainer as nfit
    import inspect
    assert list(inspect.signature(nfit.epoch_fn(None, 64, 32)).parameters) == [
        "state", "x", "y", "order", "base_key", "epoch", "hparams", "sw"]


def test_the_options_benchmark_still_finds_what_it_patches():
    """`benchmarks.xla_options` swaps nnspec's options through their cache: fail here when it moves."""
    from nnspec import xla_options
    import jax
    xla_options._known.clear()
    assert xla_options.compile_options() == xla_options.CPU_OPTIONS
    assert set(xla_options._known) == {jax.default_backend()}
    xla_options._known.clear()


def test_the_mask_benchmark_times_every_way_and_each_keeps_what_it_should(capsys):
    """`python -m benchmarks.masks`: one row per way and shape, each drawing masks that keep
    about 0.8 of the elements (80,000 of them here: within 0.01 of it)."""
    from benchmarks import masks
    assert masks.main(["--shapes", "100x100", "--steps", "8", "--rounds", "1"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| 100×100 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["bernoulli", "bits16", "nnspec"]
    assert all(abs(float(r.split("|")[7]) - 0.8) < 0.01 for r in rows), rows
    with pytest.raises(SystemExit):
        masks.main(["--shapes", "100y"])


def test_cold_start_runs_nnspec_and_the_baselines_train_nnspecs_arrays(tmp_path, capsys):
    """`python -m benchmarks.cold` (issue 12): its Keras and PyTorch scripts compile and read
    the very arrays nnspec trains on (made without nnspec), and one cold `nnspec train`
    process of 2 epochs is timed line by line, its first epoch and test accuracy found."""
    import py_compile

    import numpy as np
    from benchmarks import cold
    from benchmarks.baselines.cold_data import splits
    from nnspec.cli import load
    from nnspec.prepare import prepare
    for script in ("keras_cold.py", "torch_cold.py"):
        py_compile.compile(str(cold.BASELINES / script), doraise=True)
    for name in cold.SPECS:
        program, _, _ = load(str(ROOT / "specs" / f"{name}.nn"))
        theirs, mine = prepare(program), splits(name)
        for part in ("train", "val", "test"):
            ds, (x, y) = getattr(theirs, part), mine[part]
            assert ds.x.dtype == x.dtype and np.array_equal(ds.x, x)
            assert np.array_equal(np.asarray(ds.y).reshape(-1), y)
    out = tmp_path / "cold.json"
    assert cold.main(["--specs", "pass_class", "--impls", "nnspec", "--repeat", "1", "--epochs", "2",
                      "--json", str(out)]) == 0
    res = json.loads(out.read_text())["specs"]["pass_class"]["impls"]["nnspec"]
    assert res["status"] == "ok", res.get("note")
    assert 0 < res["header_s"] < res["first_epoch_s"] <= res["finished_s"] <= res["whole_s"]
    assert 0 <= res["test_accuracy"] <= 1 and res["compiled_in_s"] is not None
    assert "| pass_class | nnspec |" in capsys.readouterr().out
