"""`devices N shard=params`: the weights and optimizer state split over the devices too.

As in tests/test_devices.py, the cases run in a subprocess whose XLA pretends to have 4
CPU devices; each compares the sharded run with the same run on one device (the same
examples in the same order: only the order of floating-point sums may differ).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SPEC = """\
model m {
    input x[2]
    h: dense 64 relu
    dropout 0.2
    h2: dense 32 relu
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=OPT
train {
    data builtin("moons", n=300)
    split val=0.2
    batch 32
    epochs 3
    seed 0
    metrics accuracy
    devices 4 shard=params
}
"""

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import jax, numpy as np
    import nnspec
    from nnspec.devices import Devices
    from nnspec.fit import fit
    from nnspec.prepare import prepare
    from nnspec.sweep_fit import fit_sweep
    from nnspec.trainer import Trainer

    spec, out = sys.argv[1], Path(sys.argv[2])
    def diff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    report = {}
    program = nnspec.check_text(open(spec).read().replace("OPT", "0.01"))
    plain = nnspec.check_text(open(spec).read().replace("OPT", "0.01").replace("    devices 4 shard=params\\n", ""))
    one, sharded = fit(plain, devices=1), fit(program)
    report["params"] = diff(one.params, sharded.params)
    report["history"] = max(abs(x[k] - y[k]) for x, y in zip(one.history, sharded.history)
                            for k in x if k not in ("epoch", "time"))
    import nnspec.trainer
    nnspec.trainer._PROGRAMS.clear()  # this trainer compiles its own programs: their count is its
    tr = Trainer([program], prepare(program), devices=Devices(4, shard=True))
    snap = tr.run(tr.fresh(), 1)
    compiled = tr._epoch.fast._cache_size()
    snap = tr.run(snap, 3)
    kernel = snap.state.params["h2"]["w"]  # (1 model, 64, 32): its 64 rows split four ways
    report["shard_shape"] = list(kernel.addressable_shards[0].data.shape)
    mu = jax.tree_util.tree_leaves(snap.state.opt_state)
    report["opt_split"] = any(l.ndim == 3 and l.addressable_shards[0].data.shape[1] == 16 for l in mu)
    report["compiled_once"] = tr._epoch.fast._cache_size() == compiled == 1
    args = (snap.state, tr.x, tr.y, tr.order(0), tr.epoch_keys, np.int32(0), tr.hparams, tr.sw)
    text = tr._epoch.jitted.lower(*args).compile().as_text()
    report["gathers"] = "all-gather" in text or "reduce-scatter" in text
    # resume on 2 devices a sharded run stopped after one epoch on 4
    fit(program, out=out / "run", stop_after=1, checkpoint_every=0)
    resumed = fit(program, devices=2, out=out / "run", resume=True, checkpoint_every=0)
    report["resume"] = diff(one.params, resumed.params)
    # a sweep of 2 models on 4 devices: 2 for the models x 2 splitting each one's weights
    swept = open(spec).read().replace("OPT", "sweep(0.01, 0.03)")
    a = fit_sweep(nnspec.check_text(swept.replace("    devices 4 shard=params\\n", "")), devices=1)
    b = fit_sweep(nnspec.check_text(swept))
    report["sweep"] = max(diff(x.params, y.params) for x, y in zip(a.members, b.members))
    print(json.dumps(report))
''')


def test_sharded_weights_compute_what_one_device_computes(tmp_path) -> None:
    (tmp_path / "m.nn").write_text(SPEC)
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "NNSPEC_NO_CACHE": "1"}
    got = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "m.nn"), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    report = json.loads(got.stdout.strip().splitlines()[-1])
    assert report["params"] < 1e-5 and report["history"] < 1e-5
    assert report["shard_shape"] == [1, 16, 32]  # a quarter of the kernel on each device
    assert report["opt_split"]  # Adam's moments are split as their weights are
    assert report["compiled_once"]  # the state comes back split the same way: no recompiling
    assert report["gathers"]  # XLA gathers the weights where a step needs them whole
    assert report["resume"] < 1e-5
    assert report["sweep"] < 1e-5


def test_shard_is_checked_without_jax() -> None:
    from nnspec.check import check_source
    program, diags, _ = check_source(SPEC.replace("OPT", "0.01"))
    assert program is not None and program.train.shard == "params" and program.train.devices == 4
    program, diags, _ = check_source(SPEC.replace("OPT", "0.01").replace("shard=params", "shard=weights"))
    assert program is None and [d.code for d in diags if d.is_error] == ["E104"]
    program, _, _ = check_source(SPEC.replace("OPT", "0.01").replace(" shard=params", ""))
    assert program.train.shard == "none"


def test_several_processes_are_refused_with_E408(monkeypatch) -> None:
    import jax
    import pytest

    import nnspec
    from nnspec import devices
    from nnspec.diagnostics import NNSpecError
    program = nnspec.check_text(SPEC.replace("OPT", "0.01"))
    monkeypatch.setattr(devices, "available", lambda: 4)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(NNSpecError) as err:
        devices.for_run(program)
    (d,) = err.value.diagnostics
    assert d.code == "E408" and "2 processes" in d.message
    assert d.labels[0].span == program.train.devices_span  # the caret under `devices 4 shard=params`


PARTING = textwrap.dedent('''
    import json, sys
    import jax, numpy as np
    import nnspec, nnspec.trainer
    from nnspec.devices import Devices
    from nnspec.prepare import prepare
    from nnspec.trainer import Trainer

    def sizes(tr):
        programs = [tr._epoch, tr._evaluate] + ([tr._plateau] if tr.plateau is not None else [])
        return [p.fast._cache_size() for p in programs]

    def run(*texts):
        nnspec.trainer._PROGRAMS.clear()  # each trainer compiles its own programs: their count is its
        programs = [nnspec.check_text(t) for t in texts]
        tr = Trainer(programs, prepare(programs[0]), devices=Devices(4, models=len(programs), shard=True))
        snap = tr.run(tr.fresh(), 1)
        first = sizes(tr)
        snap = tr.run(snap, 6)
        return first, sizes(tr), [len(t.history) for t in snap.tracks], tr._select._cache_size()

    spec = open(sys.argv[1]).read()
    report = {}
    # a stack of two models whose second stops early (its rate is too small to improve
    # by min_delta) and keeps its best weights, while the first trains on
    stack = spec.replace("    seed 0\\n", "    seed 0\\n    early_stop patience=1 min_delta=0.001 restore_best\\n")
    report["stack"] = run(stack.replace("OPT", "0.01"), stack.replace("OPT", "1e-7"))
    # one model whose rate the plateau rule moves after every epoch
    plateau = spec.replace("OPT", "reduce_on_plateau(initial=0.01, factor=0.5, patience=1, monitor=val_loss)")
    report["plateau"] = run(plateau)
    print(json.dumps(report))
''')


def test_a_stack_that_parts_ways_and_the_plateau_rule_compile_nothing_again(tmp_path) -> None:
    """`_select` (a model stopped or diverged, the best weights kept) and the plateau rule
    return the state split as XLA spells it; placed again as the epoch's inputs are, every
    program compiles once over the whole run."""
    (tmp_path / "m.nn").write_text(SPEC.replace("epochs 3", "epochs 6"))
    (tmp_path / "run.py").write_text(PARTING)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "NNSPEC_NO_CACHE": "1"}
    got = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "m.nn")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    report = json.loads(got.stdout.strip().splitlines()[-1])
    first, last, lengths, selects = report["stack"]
    assert first == last == [1, 1], report
    assert lengths[0] > lengths[1] and selects >= 1, report  # the stack did part ways
    first, last, lengths, _ = report["plateau"]
    assert first == last == [1, 1, 1] and lengths == [6], report
