"""Several processes training one run (`--coordinator/--num-processes/--process-id`),
tested as issue 12 asks: two local CPU processes with JAX's gloo collectives against one
process, a coordinator that cannot be reached (an error within the timeout, not a
hang), and a process that dies (the other stops with one line; the checkpoint is intact).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnspec.cli import main

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
    epochs EPOCHS
    seed 0
    metrics accuracy
    devices all
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nnspec(*argv: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnspec.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NNSPEC_NO_CACHE": "1", **(env or {})},
                            **kw)


PROBE = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]), initialization_timeout=30)
import jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
mesh = Mesh(np.array(jax.devices()), ("data",))
x = jax.make_array_from_callback((4,), NamedSharding(mesh, P("data")), lambda i: np.arange(4.0, dtype=np.float32)[i])
print("sum", float(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)))
"""


@pytest.fixture(scope="module")
def processes_work() -> None:
    """Two local processes can join with jax.distributed and reduce through gloo here; if
    this machine cannot (a sandbox without loopback networking, a host name gloo cannot
    resolve), the tests that need it are skipped, saying why, rather than failing on the
    environment."""
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, address, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=90))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.skip("two local jax.distributed processes did not finish a reduction within 90 s here")
    if any(p.returncode != 0 or "sum 6.0" not in out for p, (out, _) in zip(procs, outs)):
        tail = " | ".join(line for _, err in outs for line in err.splitlines()[-2:])
        pytest.skip(f"two local jax.distributed processes cannot reduce through gloo here: {tail[-300:]}")


def params(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "checkpoint.npz") as z:
        return {k: z[k] for k in z.files if k.startswith("final_params/")}


@pytest.mark.parametrize("argv, message", [
    (["--coordinator", "127.0.0.1:1234"], "error: several processes need `--coordinator HOST:PORT`, `--num-processes P` "
                                          "and `--process-id I` together; missing `--num-processes`, `--process-id`"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"],
     "error: `--process-id 2` is not below `--num-processes 2`: processes are numbered 0 to 1"),
    (["--coordinator", "nowhere", "--num-processes", "2", "--process-id", "1"],
     "error: argument --coordinator: expected HOST:PORT, found `nowhere`"),
    (["--distributed", "--process-id", "0"], "error: `--distributed` reads the processes from the cluster's environment; "
                                             "it cannot be combined with `--coordinator`, `--num-processes` or `--process-id`"),
])
def test_process_flags_are_checked(tmp_path, capsys, argv, message) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC.replace("EPOCHS", "1"))
    assert main(["train", str(spec), *argv]) == 2
    assert capsys.readouterr().err.strip() == message


def test_an_unreachable_coordinator_is_an_error_within_the_timeout(tmp_path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC.replace("EPOCHS", "1"))
    port = free_port()  # nobody listens there
    t0 = time.monotonic()
    proc = nnspec("train", str(spec), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                  "--process-id", "1", "--coordinator-timeout", "2", "--out", str(tmp_path / "run"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.startswith(f"error: cannot reach the coordinator `127.0.0.1:{port}` within 2 s"), err
    assert time.monotonic() - t0 < 60 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_train_what_one_trains(tmp_path, processes_work) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC.replace("EPOCHS", "3"))
    one = tmp_path / "one"
    single = nnspec("train", str(spec), "--out", str(one), "-q")
    _, err = single.communicate(timeout=300)
    assert single.returncode == 0, err
    port, run = free_port(), tmp_path / "run"
    procs = [nnspec("train", str(spec), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(i), "--out", str(run)) for i in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    (out0, err0), (out1, err1) = outs
    assert "device      2 × cpu, each batch split over them (of 2 devices)" in err0
    assert "training finished" in out0 and "[Gloo]" not in out0 + err0
    assert out1 == "" and "epoch" not in err1, "only process 0 prints"
    a, b = params(one), params(run)
    assert a.keys() == b.keys() and a
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nn", "one", "run"], "process 1 wrote nothing"


@pytest.mark.slow
def test_when_a_process_dies_the_other_stops_with_one_line_and_the_checkpoint_is_intact(tmp_path,
                                                                                         processes_work) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC.replace("EPOCHS", "100000").replace("n=300", "n=3000"))
    port, run = free_port(), tmp_path / "run"
    env = {"NNSPEC_HEARTBEAT_SECONDS": "5"}
    procs = [nnspec("train", str(spec), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(i), "--out", str(run), "--checkpoint-every", "0", "-q", env=env,
                    start_new_session=True) for i in (0, 1)]
    deadline = time.time() + 180
    while time.time() < deadline and not (run / "history.csv").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(procs[1].pid, signal.SIGKILL)  # the supervisor and its child: the host is gone
    _, err = procs[0].communicate(timeout=240)
    procs[1].wait(timeout=30)
    assert procs[0].returncode == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == ("error: another process of this run stopped or cannot be reached; the last saved epoch is "
                         f"kept: resume every process with `nnspec train --resume {run}`"), err[-3000:]
    assert not any(line.lstrip().startswith("@ 0x") or "Check failure" in line for line in lines), err[-3000:]
    from nnspec import checkpoint
    assert checkpoint.read_meta(run / "checkpoint.npz")["epoch"] >= 1  # whole and readable


# A process of the run, without the supervisor (its child's environment set by hand), that
# counts the rows each streamed epoch reads from the file and writes them to argv[1].
COUNTING = """
import json, sys
from nnspec import trainer
from nnspec.cli import main
counts = []
epoch = trainer.Trainer._streamed_epoch
def counted(self, *args):
    before = self.x.rows_read
    out = epoch(self, *args)
    counts.append(self.x.rows_read - before)
    return out
trainer.Trainer._streamed_epoch = counted
code = main(sys.argv[2:])
open(sys.argv[1], "w").write(json.dumps(counts))
sys.exit(code)
"""


def test_two_processes_each_stream_only_their_half_of_every_batch(tmp_path, processes_work) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, 0] * x[:, 1] > 0).astype(np.int64))
    spec = tmp_path / "m.nn"
    spec.write_text(SPEC.replace("EPOCHS", "2").replace('builtin("moons", n=300)', 'npy(x="x.npy", y="y.npy")')
                    .replace("    devices all\n", "    devices all\n    stream 96\n"))
    env = {**os.environ, "NNSPEC_NO_CACHE": "1", "NNSPEC_DISTRIBUTED_CHILD": "1"}

    def start(counts: Path, *argv: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", COUNTING, str(counts), "train", str(spec), "-q", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    single = start(tmp_path / "one.json", "--out", str(tmp_path / "one"))
    _, err = single.communicate(timeout=300)
    assert single.returncode == 0, err[-3000:]
    port = free_port()
    procs = [start(tmp_path / f"p{i}.json", "--out", str(tmp_path / "run"), "--coordinator", f"127.0.0.1:{port}",
                   "--num-processes", "2", "--process-id", str(i)) for i in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    # 480 training examples in batches of 32: 15 steps; each epoch reads them all on one
    # process, and each of two processes reads its device's 16 of every batch
    assert json.loads((tmp_path / "one.json").read_text()) == [480, 480]
    assert json.loads((tmp_path / "p0.json").read_text()) == [240, 240]
    assert json.loads((tmp_path / "p1.json").read_text()) == [240, 240]
    a, b = params(tmp_path / "one"), params(tmp_path / "run")
    assert a.keys() == b.keys() and a
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) < 1e-5
