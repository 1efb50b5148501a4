"""The `nnspec` command: exit codes (0 clean, 1 spec errors, 2 usage), `compile` output,
IR in and out, no tracebacks, and a front end that starts without JAX.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnspec
from nnspec import ir

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
MEMORY_BUDGET = 16 * 2**30

SPEC = """\
# will I pass the class?
model pass_class {
    input x[2]
    h1: dense 8 relu
    out: dense 1 sigmoid
}

loss binary_crossentropy
optimizer adam lr=0.01

train {
    data builtin("pass_class", n=200)
    split val=0.2
    batch 32
    epochs 20
    metrics accuracy
    early_stop monitor=val_loss patience=3
}
"""

SUMMARY = """\
Model: pass_class
───────────────────────────────────────────────────
Layer (type)          Output shape   Params   FLOPs
───────────────────────────────────────────────────
x (input)             (2,)                0       0
h1 (dense relu)       (8,)               24      32
out (dense sigmoid)   (1,)                9      16
───────────────────────────────────────────────────
Total params: 33 (132 B as float32)
Trainable params: 33
Non-trainable params: 0
Total FLOPs per example: 48
Optimizer: adam
Loss: binary_crossentropy
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """`run_cli` (`nnspec ARGV...` in-process: (exit code, stdout, stderr)) without colour,
    on a machine of MEMORY_BUDGET bytes."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(importlib.import_module("nnspec.check"), "physical_memory", lambda: MEMORY_BUDGET)
    return run_cli


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "pass.nn"
    path.write_text(SPEC, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ exit codes

def test_clean_spec_exits_0(cli, spec_file: Path) -> None:
    code, out, err = cli("check", str(spec_file))
    assert (code, out, err) == (0, f"ok: `{spec_file}` (33 parameters)\n", "")


def test_quiet_prints_nothing_for_a_clean_spec(cli, spec_file: Path) -> None:
    assert cli("check", "-q", str(spec_file)) == (0, "", "")


def test_warnings_alone_exit_0(cli) -> None:
    code, out, err = cli("check", str(ROOT / "tests/ui/warnings_only.nn"))
    assert code == 0 and out.startswith("ok: ")
    assert err.endswith("warning: 3 warnings emitted\n")


def test_spec_errors_exit_1(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nn"
    bad.write_text(SPEC.replace("dense 8 relu", "dense 8 rleu"), encoding="utf-8")
    code, out, err = cli("check", str(bad))
    assert code == 1 and out == ""
    assert err.startswith("error[E101]: unknown activation `rleu`\n")
    assert err.endswith(f"error: could not check `{bad}` due to 1 previous error\n")


def test_one_bad_file_among_several_exits_1(cli, spec_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nn"
    bad.write_text("loss mse\n", encoding="utf-8")
    code, out, err = cli("check", str(spec_file), str(bad))
    assert code == 1
    assert out == f"ok: `{spec_file}` (33 parameters)\n"
    assert "error[E112]: no `model` section" in err


@pytest.mark.parametrize("argv,message", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["check", "--frobnicate", "x.nn"], "unrecognized arguments: --frobnicate"),
    (["check"], "the following arguments are required: FILE"),
    ([], "the following arguments are required: COMMAND"),
    (["compile", "--emit", "pdf", "x.nn"], "invalid choice: 'pdf'"),
])
def test_usage_errors_exit_2(cli, argv: list[str], message: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err
    assert "(see `nnspec" in err


def test_missing_file_exits_2(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.nn"
    assert cli("check", str(missing)) == (2, "", f"error: cannot read `{missing}`: no such file\n")
    assert cli("compile", str(missing))[0] == 2
    assert cli("fmt", str(missing))[0] == 2


def test_directory_given_as_file_exits_2(cli, tmp_path: Path) -> None:
    """`compile` takes one file; `check` takes a folder for the `.nn` files in it, and
    refuses one that has none (tests/test_cli_conventions.py has the rest)."""
    assert cli("compile", str(tmp_path)) == (2, "", f"error: cannot read `{tmp_path}`: it is a directory\n")
    assert cli("check", str(tmp_path)) == (2, "", f"error: `{tmp_path}` holds no `.nn` file (names starting "
                                                  "with `.`, and run folders, are skipped)\n")


def test_help_and_version_exit_0(cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0 and "check" in out and "explain" in out
    code, out, _ = cli("--version")
    assert code == 0 and out == f"nnspec {nnspec.__version__}\n"


# ------------------------------------------------------------------------------ compile

def test_compile_summary(cli, spec_file: Path) -> None:
    assert cli("compile", "--emit", "summary", str(spec_file)) == (0, SUMMARY, "")
    assert cli("compile", str(spec_file)) == (0, SUMMARY, "")  # summary is the default


def test_compile_reports_errors_and_exits_1(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nn"
    bad.write_text(SPEC.replace("dense 1 sigmoid", "dense 3 sigmoid"), encoding="utf-8")
    code, out, err = cli("compile", str(bad))
    assert code == 1 and out == ""
    assert err.startswith("error[E301]: `binary_crossentropy` needs exactly one output unit, but the model has 3\n")


def test_compile_ir_reads_back_as_the_parsed_spec(cli, spec_file: Path) -> None:
    code, out, err = cli("compile", "--emit", "ir", str(spec_file))
    assert code == 0 and err == ""
    data = json.loads(out)
    assert isinstance(data, dict) and data.get("version") == ir.VERSION
    assert ir.from_json(out) == nnspec.parse(SPEC)


def test_compile_traces_token_inputs_as_int32(cli, tmp_path: Path) -> None:
    """`--emit jaxpr` traces the step with each input as the data feeds it: token ids as
    int32 (a float32 trace would add a cast the real step does not have), numbers as float32."""
    spec = tmp_path / "tokens.nn"
    spec.write_text("model m {\n    input words[6] int vocab=20\n    input x[3]\n    e: embedding 4 from words\n"
                    "    f: flatten\n    c: concat f x\n    dense 1 sigmoid\n}\nloss binary_crossentropy\n"
                    "optimizer adam\n", encoding="utf-8")
    code, out, err = cli("compile", "--emit", "jaxpr", str(spec))
    assert code == 0, err
    assert "i32[32,6]" in out and "f32[32,6]" not in out and "f32[32,3]" in out


def test_check_accepts_an_ir_json_file(cli, spec_file: Path, tmp_path: Path) -> None:
    _, out, _ = cli("compile", "--emit", "ir", str(spec_file))
    ir_file = tmp_path / "pass.json"
    ir_file.write_text(out, encoding="utf-8")
    assert cli("check", str(ir_file)) == (0, f"ok: `{ir_file}` (33 parameters)\n", "")
    code, summary, _ = cli("compile", str(ir_file))
    assert code == 0 and summary == SUMMARY


def test_check_reports_errors_in_ir_without_source(cli, tmp_path: Path) -> None:
    spec = nnspec.parse(SPEC.replace("dense 8 relu", "dense 8 rleu"))
    ir_file = tmp_path / "bad.json"
    ir_file.write_text(ir.to_json(spec), encoding="utf-8")
    code, out, err = cli("check", str(ir_file))
    assert code == 1 and out == ""
    assert err == ("error[E101]: unknown activation `rleu`\n"
                   "  = help: did you mean `relu`?\n\n"
                   "error: could not check spec due to 1 previous error\n")


@pytest.mark.parametrize("text", ["not json at all", "[1, 2, 3]", '{"version": 999}'])
def test_json_that_is_not_ir_is_a_usage_error(cli, tmp_path: Path, text: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(text, encoding="utf-8")
    code, out, err = cli("check", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: `{path}` is not nnspec IR: ")


def test_explain(cli) -> None:
    code, out, _ = cli("explain", "E201")
    assert code == 0 and out.startswith("E201: layer needs a flat input\n")
    assert cli("explain", "E999")[0] == 2


# ------------------------------------------------------------------------------ no JAX

def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONSTARTUP", None)
    return env


def test_front_end_does_not_import_jax() -> None:
    code = ("import nnspec, nnspec.check, nnspec.cli, nnspec.parse, nnspec.ir, sys; "
            "nnspec.check_text(open(sys.argv[1]).read()); "
            "assert 'jax' not in sys.modules, 'jax imported'; "
            "assert 'optax' not in sys.modules, 'optax imported'")
    spec = ROOT / "tests" / "ui" / "warnings_only.nn"
    done = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr


def test_check_on_the_command_line_imports_no_jax(spec_file: Path) -> None:
    """`nnspec check` must start fast: the command line's whole path to `check` (argument
    parsing, reading, rendering) imports neither JAX nor Optax. Asserted on the modules
    loaded, not on seconds, which a loaded machine stretches (it failed so once in CI)."""
    code = ("import sys; from nnspec.cli import main; code = main(['check', sys.argv[1]]); "
            "assert code == 0, code; "
            "assert 'jax' not in sys.modules, 'jax imported'; assert 'optax' not in sys.modules, 'optax imported'")
    done = subprocess.run([sys.executable, "-c", code, str(spec_file)], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok: `{spec_file}` (33 parameters)\n"
