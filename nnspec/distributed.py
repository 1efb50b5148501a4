"""Several processes (one per host) training one program, with JAX's own `jax.distributed`.

    nnspec train SPEC --coordinator HOST:PORT --num-processes P --process-id I

on each of the P hosts (the same spec and data on each; process 0's host serves as the
coordinator), or `--distributed` where a cluster scheduler (SLURM, Open MPI, ...) sets the
variables `jax.distributed.initialize` reads. Every process then sees every host's
devices, and `devices all` (or `--devices N`) splits each batch over them exactly as on
one host (nnspec/devices.py): one program, run by every process. Only process 0 prints
and writes the run folder; the others write nothing.

JAX ends a process with a C++ abort (`Terminating process because the JAX distributed
service detected fatal errors`, and a stack trace) when the coordinator cannot be reached
or another process dies. So `nnspec train` in these modes is a supervisor: it checks the
flags, waits for the coordinator to answer (a clear error after `--coordinator-timeout`
seconds, never a hang), then runs the training in a child process, passing its output
through but turning such an abort into one `error:` line that says what happened and
how to resume from the last checkpoint (which atomic writes keep intact).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

CHILD = "NNSPEC_DISTRIBUTED_CHILD"  # set in the supervised child: train, do not supervise
# How long a process may go silent before the others count it as dead (JAX's default is
# 100 s); the tests shorten it.
HEARTBEAT = "NNSPEC_HEARTBEAT_SECONDS"


class DistributedError(Exception):
    """A flag or a coordinator problem, said in one line."""


@dataclass(frozen=True)
class Processes:
    """How this process joins the others: all three of coordinator, count and index, or
    `auto` (from the scheduler's environment)."""
    coordinator: str | None
    count: int | None
    index: int | None
    timeout: float
    auto: bool = False

    @property
    def host_port(self) -> tuple[str, int] | None:
        if self.coordinator is None:
            return None
        host, _, port = self.coordinator.rpartition(":")
        return host.strip("[]"), int(port)


def from_args(args) -> Processes | None:
    """The processes the command line asks for, checked; None for a run of one process."""
    given = [a for a in ("coordinator", "num_processes", "process_id") if getattr(args, a, None) is not None]
    if getattr(args, "distributed", False):
        if given:
            raise DistributedError("`--distributed` reads the processes from the cluster's environment; "
                                   "it cannot be combined with `--coordinator`, `--num-processes` or `--process-id`")
        return Processes(None, None, None, args.coordinator_timeout, auto=True)
    if not given:
        return None
    missing = [a for a in ("coordinator", "num_processes", "process_id") if getattr(args, a) is None]
    if missing:
        flags = ", ".join(f"`--{m.replace('_', '-')}`" for m in missing)
        raise DistributedError(f"several processes need `--coordinator HOST:PORT`, `--num-processes P` and "
                               f"`--process-id I` together; missing {flags}")
    if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}", args.coordinator) or \
            not 0 < int(args.coordinator.rpartition(":")[2]) < 65536:
        raise DistributedError(f"argument --coordinator: expected HOST:PORT, found `{args.coordinator}`")
    if args.process_id >= args.num_processes:
        raise DistributedError(f"`--process-id {args.process_id}` is not below `--num-processes "
                               f"{args.num_processes}`: processes are numbered 0 to {args.num_processes - 1}")
    return Processes(args.coordinator, args.num_processes, args.process_id, args.coordinator_timeout)


def wait_for_coordinator(p: Processes) -> None:
    """For a process other than 0: until the coordinator accepts a connection, at most
    `timeout` seconds (process 0 starts the coordinator itself)."""
    if p.host_port is None or p.index == 0:
        return
    host, port = p.host_port
    deadline = time.monotonic() + p.timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, p.timeout)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DistributedError(f"cannot reach the coordinator `{p.coordinator}` within {p.timeout:g} s "
                                       f"({exc.strerror or exc}): start process 0 there first, or check the "
                                       "address and that the port is open") from None
            time.sleep(0.2)


_JOINED = False


def joined() -> bool:
    """Whether this process joined others (`initialize`)."""
    return _JOINED


def initialize(p: Processes) -> None:
    """In the child: join the other processes (JAX's CPU collectives through gloo)."""
    global _JOINED
    import jax
    _JOINED = True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    beat = int(os.environ.get(HEARTBEAT, "100"))
    if p.auto:
        jax.distributed.initialize(initialization_timeout=int(p.timeout), heartbeat_timeout_seconds=beat)
    else:
        jax.distributed.initialize(p.coordinator, p.count, p.index, initialization_timeout=max(1, int(p.timeout)),
                                   heartbeat_timeout_seconds=beat)


# What a glog line of XLA/JAX looks like (`F1201 17:57:10.505664 32288 client.h:80] ...`),
# a frame of its stack trace, and gloo's chatter.
_GLOG = re.compile(r"^[FEWI]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ?(.*)$")
_NOISE = re.compile(r"^(\s+@\s+0x[0-9a-f]+|\*\*\* Check failure stack trace|\[Gloo\]|RPC: /|$)")


def supervise(argv: list[str], p: Processes, run: str | None) -> int:
    """Run `nnspec ARGV` in a child that joins the processes; its stdout as is, its stderr
    without JAX's logging, and a JAX abort as one `error:` line. Returns the exit code."""
    env = {**os.environ, CHILD: "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    fatal: list[str] = []

    def forward_stdout() -> None:  # gloo writes its chatter to stdout
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("[Gloo]"):
                sys.stdout.write(line)
                sys.stdout.flush()
    out = threading.Thread(target=forward_stdout, daemon=True)
    out.start()
    try:
        assert proc.stderr is not None
        while True:
            try:
                line = proc.stderr.readline()
            except KeyboardInterrupt:  # the child has it too (one process group): let it save
                continue
            if not line:
                break
            text = line.rstrip("\n")
            m = _GLOG.match(text)
            if m is not None:
                if text.startswith("F") or text.startswith("E"):
                    fatal.append(m.group(1))
                continue
            if _NOISE.match(text):
                continue
            sys.stderr.write(line)
            sys.stderr.flush()
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue
        out.join(timeout=10)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code in (0, 1, 2, 130, 143):  # the child's own ending, said by the child
        return code
    why = " ".join(fatal)
    if "RegisterTask" in why or ("DEADLINE_EXCEEDED" in why and p.index == 0):
        what = (f"the other processes did not all join at `{p.coordinator or 'the coordinator'}` within "
                f"{p.timeout:g} s")
    elif "another task died" in why or "heartbeat" in why.lower() or "UNAVAILABLE" in why:
        what = "another process of this run stopped or cannot be reached"
    else:
        what = f"the process was ended by JAX ({why or f'signal {-code}'})"
    again = f"; the last saved epoch is kept: resume every process with `nnspec train --resume {run}`" if run else ""
    print(f"error: {what}{again}", file=sys.stderr)
    return 1
