"""`env` shows the caches and the optional extras; an internal error carries the
versions and the command line."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import cli as cli_module
from nnspec.cli import main

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
model tiny {
    input x[2]
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("pass_class", n=200)
    split val=0.2 test=0.2
    batch 32
    epochs 2
    seed 0
    metrics accuracy
    standardize
}
"""
# another model under the same file name: its run is never taken for tiny.nn's
OTHER = SPEC.replace("    out: dense 1 sigmoid\n", "    h: dense 3 relu\n    out: dense 1 sigmoid\n")
INPUT = "lectures,hours\n3,4\n19,39\n10,20\n"


def cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------ env

def test_env_shows_the_caches_and_the_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jax
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NNSPEC_NO_CACHE", raising=False)
    (tmp_path / "cache" / "nnspec" / "xla").mkdir(parents=True)
    (tmp_path / "cache" / "nnspec" / "xla" / "entry").write_bytes(b"x" * 1500)
    code, out, err = cli("env")
    assert code == 0, err
    lines = out.splitlines()
    assert f"compile cache  {tmp_path / 'cache' / 'nnspec' / 'xla'} (1 files, 1.5 KB)" in lines
    assert any(line.startswith("datasets       none (nothing is downloaded") for line in lines)
    assert f"runs           runs/ (relative to the current folder: {tmp_path / 'runs'}, none yet)" in lines
    code, out, err = cli("env", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["versions"]["numpy"] == np.__version__ and doc["versions"]["jax"] == jax.__version__
    assert doc["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert [d["id"] for d in doc["devices"]] == [d.id for d in jax.devices()] and doc["backend"] == jax.default_backend()
    assert doc["caches"]["compile"] == {"path": str(tmp_path / "cache" / "nnspec" / "xla"), "exists": True,
                                        "files": 1, "bytes": 1500, "disabled": None}
    by_name = {e["name"]: e for e in doc["extras"]}
    assert set(by_name) >= {"matplotlib", "pygls", "safetensors", "jax2onnx", "onnxruntime", "pyarrow", "tqdm",
                            "scikit-learn"}
    for name, e in by_name.items():
        try:
            want = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            want = None
        assert e["version"] == (want if e["installed"] else None), name
        assert f"  {name}" in "\n".join(lines)
    monkeypatch.setenv("NNSPEC_NO_CACHE", "1")
    code, out, _ = cli("env")
    assert "compile cache  off (NNSPEC_NO_CACHE is set)" in out.splitlines()


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    env.pop("PYTHONSTARTUP", None)
    return env


def test_env_imports_no_optional_extra() -> None:
    code = ("import sys; from nnspec.cli import main; assert main(['env']) == 0; "
            "heavy = [m for m in ('matplotlib', 'sklearn', 'pyarrow', 'onnxruntime', 'jax2onnx', 'pygls', "
            "'safetensors', 'tqdm') if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=180)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------ internal errors

def test_an_internal_error_reports_versions_and_the_command(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(args):
        raise RuntimeError("boom")
    monkeypatch.setattr(cli_module, "cmd_explain", broken)
    code = main(["explain", "E101"])
    out, err = capsys.readouterr()
    assert code == 101 and out == ""
    assert err.startswith("error: internal compiler error: this is a bug in nnspec, not in your spec\n"
                          "  please report it with the spec and the text below\n")
    versions = next(line for line in err.splitlines() if line.startswith("  versions: "))
    for name in ("nnspec", "python", "jax", "jaxlib", "optax", "numpy"):
        assert f" {name} " in versions + " ", versions
    assert f"numpy {np.__version__}" in versions and f"nnspec {nnspec.__version__}" in versions
    assert "  platform: " in err and "  command: nnspec explain E101\n" in err
    assert err.rstrip().endswith("RuntimeError: boom") and "Traceback (most recent call last)" in err


def test_gathering_the_versions_never_hides_the_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import platform

    from nnspec import envinfo

    def broken(args):
        raise ValueError("the real problem")

    def worse(*a, **k):
        raise OSError("cannot tell")
    monkeypatch.setattr(cli_module, "cmd_explain", broken)
    monkeypatch.setattr(envinfo, "versions", worse)
    monkeypatch.setattr(platform, "platform", worse)
    code = main(["explain", "E101"])
    err = capsys.readouterr().err
    assert code == 101
    assert "  versions: unknown (OSError: cannot tell)" in err and "  platform: unknown (OSError: cannot tell)" in err
    assert err.rstrip().endswith("ValueError: the real problem") and "OSError" not in err.split("Traceback")[1]


def test_an_internal_error_before_jax_does_not_import_it(tmp_path: Path) -> None:
    code = ("import sys; import nnspec.cli as c\n"
            "def broken(args): raise RuntimeError('boom')\n"
            "c.cmd_check = broken\n"
            "code = c.main(['check', 'a file.nn'])\n"
            "assert code == 101, code\n"
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules, 'imported'\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"jax {importlib.metadata.version('jax')}" in done.stderr
    assert "  command: nnspec check 'a file.nn'\n" in done.stderr
