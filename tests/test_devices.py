"""Data parallelism: `devices N` / `--devices N` splits every batch over N devices.

The multi-device cases run in a subprocess whose XLA pretends to have 4 CPU devices
(`--xla_force_host_platform_device_count`, which must be set before JAX starts); each
compares the run on several devices with the same run on one, which sees the same
examples in the same order, so only the order of floating-point sums may differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import nnspec
from nnspec.diagnostics import NNSpecError

SPEC = """\
model m {
    input x[2]
    h: dense 16 relu
    dropout 0.2
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.01
train {
    data builtin("moons", n=300)
    split val=0.2
    batch 32
    epochs 3
    seed 0
    metrics accuracy
}
"""


def check(text: str):
    """(program or None, the errors) of `text`, without JAX."""
    from nnspec.check import check_source
    program, diags, _ = check_source(text)
    return program, [d for d in diags if d.is_error]


def test_devices_is_a_train_setting_checked_without_jax() -> None:
    program, errors = check(SPEC.replace("    seed 0\n", "    seed 0\n    devices 4\n"))
    assert not errors and program is not None and program.train.devices == 4
    program, _ = check(SPEC.replace("    seed 0\n", "    seed 0\n    devices all\n"))
    assert program.train.devices == "all"
    _, errors = check(SPEC.replace("    seed 0\n", "    seed 0\n    devices 0\n"))
    assert errors, "0 devices is refused"


def test_a_batch_that_does_not_split_is_E320_with_the_nearest_sizes() -> None:
    text = SPEC.replace("batch 32", "batch 30").replace("    seed 0\n", "    seed 0\n    devices 4\n")
    _, errors = check(text)
    assert [d.code for d in errors] == ["E320"]
    d = errors[0]
    assert d.message == "a batch of 30 does not split evenly over 4 devices"
    assert "`batch 28` or `batch 32`" in d.help
    # the carets are under the batch size; the devices line is the secondary label
    span = d.primary_span
    assert text[span.start:span.end] == "30"
    assert [text[lb.span.start:lb.span.end] for lb in d.labels if not lb.primary] == ["devices 4"]
    for fix in ("batch 28", "batch 32", "batch all"):  # each suggested fix checks clean
        assert not check(text.replace("batch 30", fix))[1], fix


def test_more_devices_than_jax_sees_is_E406(tmp_path) -> None:
    import jax
    from nnspec.fit import fit
    have = jax.device_count()
    program = nnspec.check_text(SPEC)
    with pytest.raises(NNSpecError) as exc:
        fit(program, devices=have + 1)
    d = exc.value.diagnostics[0]
    assert d.code == "E406" and f"asks for {have + 1} devices, but JAX sees {have}" in d.message
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC)
    from nnspec.cli import main
    assert main(["train", str(spec), "--devices", str(have + 1), "--out", str(tmp_path / "run"), "-q"]) == 1
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import jax
    import nnspec
    from nnspec.devices import Devices
    from nnspec.diagnostics import NNSpecError
    from nnspec.fit import fit
    from nnspec.prepare import prepare
    from nnspec.sweep_fit import fit_sweep
    from nnspec.trainer import Trainer

    spec, bn, sweep, out = sys.argv[1:5]
    report = {"devices": jax.device_count()}

    def diff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

    def history_diff(a, b):
        return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x if k not in ("epoch", "time"))

    ones = {}
    for name, text in (("mlp", spec), ("bn", bn)):
        program = nnspec.check_text(open(text).read())
        one, four = fit(program, devices=1), fit(program, devices=4)
        ones[name] = one
        report[name] = {"params": diff(one.params, four.params), "history": history_diff(one.history, four.history),
                        "epochs": [len(one.history), len(four.history)], "loss": one.history[-1]["loss"]}
        if name == "bn":  # the running statistics are model state: kept, and alike
            report[name]["state_keys"] = sorted(k for layer in four.params.values() for k in layer)

    program = nnspec.check_text(open(spec).read())
    splits = prepare(program)
    tr = Trainer([program], splits, devices=Devices(4))
    snap = tr.fresh()
    args = (snap.state, tr.x, tr.y, tr.order(0), tr.epoch_keys, np.int32(0), tr.hparams, tr.sw)
    report["all_reduce"] = "all-reduce" in tr._epoch.jitted.lower(*args).compile().as_text()

    # resume on another number of devices: 4, then 2, against 1 throughout
    whole = ones["mlp"]
    part = os.path.join(out, "run")
    fit(program, devices=4, out=__import__("pathlib").Path(part), stop_after=1, checkpoint_every=0)
    resumed = fit(program, devices=2, out=__import__("pathlib").Path(part), resume=True, checkpoint_every=0)
    report["resume"] = {"params": diff(whole.params, resumed.params), "epochs": len(resumed.history)}

    report["sweep"] = {}
    for name, values in (("2 models", "0.01, 0.03"), ("8 models", "0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1")):
        sweep_program = nnspec.check_text(open(sweep).read().replace("SWEPT", values))
        a, b = fit_sweep(sweep_program, devices=1), fit_sweep(sweep_program, devices=4)
        members = sweep_program.sweep.programs
        tr = Trainer(list(members), prepare(members[0]), devices=Devices(4))
        snap = tr.run(tr.fresh(), 1)
        leaf = jax.tree_util.tree_leaves(snap.state.params)[0]
        report["sweep"][name] = {"params": max(diff(x.params, y.params) for x, y in zip(a.members, b.members)),
                                 "layout": tr.devices.describe(), "models_per_device":
                                 leaf.addressable_shards[0].data.shape[0]}

    try:  # `all` devices and a batch they do not split: refused when training starts
        fit(nnspec.check_text(open(spec).read().replace("batch 32", "batch 30")), devices="all")
        report["odd_batch"] = None
    except NNSpecError as exc:
        report["odd_batch"] = [exc.diagnostics[0].code, exc.diagnostics[0].help]
    print(json.dumps(report))
""")

BN = """\
model m {
    input image[8, 8, 1]
    conv2d 4 3 relu padding=same
    batch_norm momentum=0.9
    max_pool2d 2
    flatten
    dropout 0.1
    out: dense 10 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.01
train {
    data builtin("digits", image=true)
    split val=0.2
    batch all
    epochs 2
    seed 0
    metrics accuracy
}
"""


@pytest.mark.slow
def test_four_devices_compute_what_one_computes(tmp_path) -> None:
    spec, bn, sweep = tmp_path / "m.nn", tmp_path / "bn.nn", tmp_path / "sweep.nn"
    spec.write_text(SPEC)
    bn.write_text(BN)  # `batch all` over 4 devices: 1437 examples padded to 1440
    sweep.write_text(SPEC.replace("lr=0.01", "lr=sweep(SWEPT)"))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "NNSPEC_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", WORKER, str(spec), str(bn), str(sweep), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    assert report["all_reduce"], "the epoch program reduces across the devices: it really is split"
    for name in ("mlp", "bn"):
        r = report[name]
        assert r["epochs"][0] == r["epochs"][1]
        assert r["params"] < 1e-5 and r["history"] < 1e-5, (name, r)
    assert "moving_mean" in " ".join(report["bn"]["state_keys"])
    assert report["resume"]["epochs"] == 3 and report["resume"]["params"] < 1e-5, report["resume"]
    two, eight = report["sweep"]["2 models"], report["sweep"]["8 models"]
    assert two["params"] < 1e-5 and eight["params"] < 1e-5, report["sweep"]
    # 2 models on 4 devices: 2 for the models × 2 for each batch; 8: 2 models a device
    assert two["layout"] == "4 × cpu: 2 for the models × 2 for each batch" and two["models_per_device"] == 1
    assert eight["layout"] == "4 × cpu, the models split over them" and eight["models_per_device"] == 2
    code, help_ = report["odd_batch"]
    assert code == "E406" and "`batch 28` or `batch 32`" in help_


@pytest.mark.slow
def test_the_device_benchmark_shows_a_sweep_split_over_models_needs_no_communication() -> None:
    """`python -m benchmarks.devices`: the W3 sweep of 16 models on 2 and 4 devices puts
    8 and 4 models on each, and its epoch program holds no collective at all."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "benchmarks.devices", "--quick", "--only", "W3"], cwd=root,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "NNSPEC_NO_CACHE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| W3 |")]
    assert [(r[1].strip(), r[4].strip(), r[6].strip()) for r in rows] == [
        ("1", "16", "none"), ("2", "8", "none"), ("4", "4", "none")], done.stdout
    assert rows[2][5].strip().startswith("4×") and " of 16×" in rows[2][5], done.stdout  # each holds 4 models' weights


def test_env_lists_the_backend_and_every_device(capsys) -> None:
    import jax
    from nnspec.cli import main
    assert main(["env"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("nnspec ") and " jax " in out[0] and " optax " in out[0]
    assert f"backend    {jax.default_backend()}" in out
    assert f"devices    {jax.device_count()}" in out
    rows = [line for line in out if line.startswith("  ") and line.split()[0].isdigit()]
    assert [int(r.split()[0]) for r in rows] == [d.id for d in jax.devices()]
