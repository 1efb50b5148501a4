"""What a training run compiles: its programs and nothing else. An eager `jnp` operation on
the host's numbers (`jnp.asarray`, `jnp.stack`, an index into a stacked array) compiles a
program of its own for each shape, about 10 ms each with an empty cache: they were a
quarter of pass_class's compile time. Counted in a fresh process, where JAX has compiled
nothing yet, from JAX's own compile log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SPEC = """
model moons {
    input x[2]
    dense 8 relu
    dropout 0.1
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer OPT
train {
    data builtin("moons", n=300)
    split val=0.2 test=0.2
    batch 32
    epochs 6
    metrics accuracy
    seed 0
    EXTRA
}
"""

PROBE = textwrap.dedent("""
    import json, logging, sys
    import jax
    names = []
    class Log(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if text.startswith("Compiling "):
                names.append(text.split(" ", 2)[1])
    jax.config.update("jax_log_compiles", True)
    logging.getLogger("jax").addHandler(Log())
    import nnspec
    result = nnspec.train(sys.argv[1], out=sys.argv[2])
    print("COMPILED " + json.dumps(names))
""")

# nnspec's own programs: the initialization (`start`), the epoch and the evaluation (`one`
# for one model, from trainer.over_models; `run` when vmapped over several), the
# optimizer's initial state, the selection of the models that go on (`_select`), and
# xla_options' probe
PROGRAMS = {"jit(start)", "jit(one)", "jit(run)", "jit(init_fn)", "jit(_select)", "jit(<lambda>)"}

CASES = {
    "plain": ("adam lr=0.01", ""),
    "restore_best": ("adam lr=0.2", "early_stop monitor=val_loss patience=1 restore_best=true"),
    "sweep": ("sgd lr=sweep(0.01, 0.3)", ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_compiles_its_programs_only(tmp_path: Path, case: str) -> None:
    opt, extra = CASES[case]
    spec = tmp_path / "moons.nn"
    spec.write_text(SPEC.replace("OPT", opt).replace("EXTRA", extra), encoding="utf-8")
    got = subprocess.run([sys.executable, "-c", PROBE, str(spec), str(tmp_path / "run")], capture_output=True,
                         text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    names = json.loads(got.stdout.split("COMPILED ", 1)[1])
    strays = [n for n in names if n not in PROGRAMS]
    assert not strays, f"eager operations compiled programs of their own: {strays}"
    assert names.count("jit(start)") == 1
    # the epoch program and the evaluation's, once each (the last epoch is a whole one)
    assert names.count("jit(one)") + names.count("jit(run)") == 2, names
