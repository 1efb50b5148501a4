"""What a user of ruff, black or rustc expects of a command line: `python -m nnspec`, shell
completion generated from the parser, `-` for standard input, folders of specs,
`fmt --diff`, `--color` with NO_COLOR and FORCE_COLOR, and `check --format github|sarif`.
"""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnspec import cli
from nnspec.codes import CODES
from nnspec.diagnostics import Diagnostic, Label, Severity
from nnspec.report_formats import github
from nnspec.source import Source, Span
from nnspec.terminal import use_color

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "NO_COLOR": "", "FORCE_COLOR": ""}

CLEAN = """\
model m {
    input x[2]
    dense 1 sigmoid
}

loss binary_crossentropy
optimizer sgd
"""
MESSY = "model m {\n  input x[2]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd"
BAD = CLEAN.replace("sigmoid", "sigmoidd")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    """`nnspec ARGV...` in-process, `stdin` (bytes) as standard input: (exit code, stdout, stderr)."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def go(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        return run_cli(*argv)
    return go


def _sh(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=ENV, **kw)


# ------------------------------------------------------------------------- python -m

def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    version = _sh([sys.executable, "-m", "nnspec", "--version"])
    assert (version.returncode, version.stdout) == (0, f"nnspec {__import__('nnspec').__version__}\n")
    usage = _sh([sys.executable, "-m", "nnspec", "check"])
    assert usage.returncode == 2 and "(see `nnspec check --help`)" in usage.stderr
    (tmp_path / "m.nn").write_text(BAD, encoding="utf-8")
    bad = _sh([sys.executable, "-m", "nnspec", "check", "m.nn"], cwd=tmp_path)
    assert bad.returncode == 1 and "error[E101]: unknown activation `sigmoidd`" in bad.stderr


# ------------------------------------------------------------------------- completion

def _commands() -> dict:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def _bash_complete(script: str, lines: list[list[str]], cwd: Path | None = None) -> list[list[str]]:
    """What the bash script's function puts in COMPREPLY for each command line (its last
    word being completed)."""
    calls = "".join("COMP_WORDS=(" + " ".join("'" + w.replace("'", "'\\''") + "'" for w in words) + ")\n"
                    f"COMP_CWORD={len(words) - 1}\nCOMPREPLY=()\n_nnspec\n"
                    "printf '%s\\n' \"${COMPREPLY[@]}\"\necho '<end>'\n" for words in lines)
    got = _sh(["bash", "--norc", "--noprofile", "-c", script + "\n" + calls], cwd=cwd)
    assert got.returncode == 0, got.stderr
    return [[w for w in block.split("\n") if w] for block in got.stdout.split("<end>\n")[:-1]]


def test_bash_completion_is_valid_bash(run) -> None:
    code, script, _ = run("completion", "bash")
    assert code == 0 and script.startswith("# bash completion for nnspec")
    got = _sh(["bash", "-n"], input=script)
    assert got.returncode == 0, got.stderr


def test_bash_completes_commands_flags_and_choices(run) -> None:
    script = run("completion", "bash")[1]
    cases = {
        ("nnspec", "tr"): ["train"],
        ("nnspec", "ex"): ["export", "explain"],
        ("nnspec", "check", "--f"): ["--format"],
        ("nnspec", "check", "--format", ""): ["human", "json", "github", "sarif"],
        ("nnspec", "check", "--format", "=", "s"): ["sarif"],  # `--format=s`, as bash splits it
        ("nnspec", "--color", "never", "check", "--f"): ["--format"],
        ("nnspec", "--color", "="): ["auto", "always", "never"],
        ("nnspec", "fmt", "--d"): ["--diff"],
        ("nnspec", "compile", "--emit", "j"): ["jaxpr"],
        ("nnspec", "completion", ""): ["bash", "zsh", "fish"],
        ("nnspec", "explain", "W00"): [c for c in CODES if c.startswith("W00")],
        ("nnspec", "train", "--epochs", ""): [],  # a number: nothing to offer
        ("nnspec", "--"): ["--help", "--version", "--color"],
    }
    got = _bash_complete(script, [list(k) for k in cases])
    assert dict(zip(cases, got)) == cases


def test_bash_completes_every_command_and_every_flag(run) -> None:
    """Generated from the parser: each command and each of its flags completes."""
    script = run("completion", "bash")[1]
    commands = _commands()
    lines = [["nnspec", ""]] + [["nnspec", name, "-"] for name in commands]
    got = _bash_complete(script, lines)
    assert got[0] == list(commands)
    for name, flags in zip(commands, got[1:]):
        want = [f for a in commands[name]._actions for f in a.option_strings]
        assert flags == want, name
        assert "--color" in flags  # the global option, after the command too


def test_bash_completes_spec_files_and_folders(run, tmp_path: Path) -> None:
    script = run("completion", "bash")[1]
    for name in ("a.nn", "b.nn", "notes.txt", "sub/c.nn"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "runs").mkdir()
    spec, folders, any_file = _bash_complete(script, [["nnspec", "check", ""], ["nnspec", "eval", "--run", ""],
                                                      ["nnspec", "predict", "--input", "n"]], cwd=tmp_path)
    assert sorted(spec) == ["a.nn", "b.nn", "runs", "sub"]
    assert sorted(folders) == ["runs", "sub"]
    assert any_file == ["notes.txt"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse_and_name_every_command(run, shell: str) -> None:
    code, script, _ = run("completion", shell)
    assert code == 0
    for name, p in _commands().items():
        assert f"'{name}:" in script if shell == "zsh" else f" -a {name} " in script, name
        for flag in (f for a in p._actions for f in a.option_strings if f.startswith("--")):
            assert flag in script if shell == "zsh" else f"-l {flag[2:]}" in script, (name, flag)
    if shutil.which(shell) is None:
        pytest.skip(f"`{shell}` is not installed, so the script's syntax is not checked")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"nnspec-completion-{os.getpid()}.{shell}"
    path.write_text(script, encoding="utf-8")
    try:
        got = _sh([shell, "-n", str(path)])
    finally:
        path.unlink()
    assert got.returncode == 0, got.stderr


def test_fish_completes_commands_flags_and_choices(run, tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("`fish` is not installed")
    script = tmp_path / "nnspec.fish"
    script.write_text(run("completion", "fish")[1], encoding="utf-8")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("", encoding="utf-8")
    (tmp_path / "work" / "a.nn").write_text("", encoding="utf-8")
    lines = ["nnspec tr", "nnspec check --f", "nnspec check --format ", "nnspec --color never check --f",
             "nnspec check ", "nnspec explain W00"]
    calls = "".join(f"complete -C {json.dumps(line)}; echo '<end>'\n" for line in lines)
    got = _sh(["fish", "--no-config", "-c", f"source {script}\n{calls}"], cwd=tmp_path / "work")
    assert got.returncode == 0, got.stderr
    words = [[w.split("\t")[0] for w in block.split("\n") if w] for block in got.stdout.split("<end>\n")[:-1]]
    files = words.pop(4)
    assert [sorted(w) for w in words] == [["train"], ["--format"], ["github", "human", "json", "sarif"], ["--format"],
                                          sorted(c for c in CODES if c.startswith("W00"))]
    assert files == ["a.nn", "notes.txt"]  # fish's way: the `.nn` files first, then the others


def test_unknown_shell_is_a_usage_error(run) -> None:
    code, out, err = run("completion", "powershell")
    assert code == 2 and out == "" and "invalid choice: 'powershell'" in err


# ------------------------------------------------------------------------- standard input

def test_check_reads_standard_input(run) -> None:
    assert run("check", "-", stdin=CLEAN.encode()) == (0, "ok: `<stdin>` (3 parameters)\n", "")
    code, out, err = run("check", "-", stdin=BAD.encode())
    assert code == 1 and out == ""
    assert " --> <stdin>:3:13\n" in err and err.endswith("error: could not check `<stdin>` due to 1 previous error\n")
    code, out, err = run("check", "--stdin-filename", "models/m.nn", "-", stdin=BAD.encode())
    assert code == 1 and " --> models/m.nn:3:13\n" in err


def test_standard_input_that_is_not_utf8_is_e024(run) -> None:
    code, out, err = run("check", "--format", "json", "-", stdin=b"model m {\xff\n")
    (d,) = json.loads(out)
    assert code == 1 and (d["code"], d["file"], d["labels"][0]["col"]) == ("E024", "<stdin>", 10)
    code, _, err = run("fmt", "--stdin-filename", "x.nn", "-", stdin=b"\xfe")
    assert code == 1 and err.startswith("error[E024]: this file is not valid UTF-8") and " --> x.nn:1:1\n" in err


def test_compile_reads_standard_input_and_ir_by_its_name(run) -> None:
    code, ir_text, _ = run("compile", "--emit", "ir", "-", stdin=CLEAN.encode())
    assert code == 0 and json.loads(ir_text)["model"]["name"] == "m"
    assert run("check", "--stdin-filename", "m.json", "-", stdin=ir_text.encode()) == (
        0, "ok: `m.json` (3 parameters)\n", "")
    code, _, err = run("compile", "-", stdin=BAD.encode())
    assert code == 1 and " --> <stdin>:3:13\n" in err


def test_fmt_dash_writes_the_formatted_text_to_stdout(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("fmt", "-", stdin=MESSY.encode()) == (0, CLEAN, "")
    assert run("fmt", "-", stdin=CLEAN.encode()) == (0, CLEAN, "")  # unchanged: still the text
    assert run("fmt", "--check", "-", stdin=MESSY.encode()) == (1, "would reformat `<stdin>`\n", "")
    code, out, err = run("fmt", "-", stdin=BAD.replace("{", "{{").encode())
    assert code == 1 and out == "" and err.startswith("error[")
    assert list(tmp_path.iterdir()) == []  # no file written, none named `-`


def test_fmt_dash_is_given_alone(run, tmp_path: Path) -> None:
    (tmp_path / "m.nn").write_text(MESSY, encoding="utf-8")
    code, out, err = run("fmt", "-", str(tmp_path / "m.nn"), stdin=MESSY.encode())
    assert (code, out) == (2, "") and err.startswith("error: `nnspec fmt -` writes the formatted text to standard")
    assert (tmp_path / "m.nn").read_text(encoding="utf-8") == MESSY
    assert run("fmt", "--check", "-", str(tmp_path / "m.nn"), stdin=MESSY.encode())[0] == 1


def test_fmt_dash_in_a_pipe() -> None:
    got = _sh([sys.executable, "-m", "nnspec", "fmt", "-"], input=MESSY)
    assert (got.returncode, got.stdout, got.stderr) == (0, CLEAN, "")


def test_stdin_filename_needs_dash(run, tmp_path: Path) -> None:
    (tmp_path / "m.nn").write_text(CLEAN, encoding="utf-8")
    code, out, err = run("check", "--stdin-filename", "x.nn", str(tmp_path / "m.nn"))
    assert (code, out) == (2, "") and err.startswith("error: `--stdin-filename` names the spec read from standard")


# ------------------------------------------------------------------------- folders

def _tree(root: Path) -> None:
    files = {"b.nn": CLEAN, "a.nn": CLEAN, "sub/z.nn": CLEAN, "sub/deep/y.nn": CLEAN, "sub.nn": CLEAN,
             "notes.txt": "x", "spec.json": "{}", ".hidden/h.nn": BAD, ".e.nn": BAD,
             "runs/r1/spec.nn": BAD, "runs/r1/run.json": "{}", "runs/r2/spec.nn": BAD, "runs/r2/checkpoint.npz": ""}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "link").symlink_to(root / "sub", target_is_directory=True)


def test_check_a_folder_recursively_in_sorted_order(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run("check", ".")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"ok: `{p}` (3 parameters)" for p in
                                ("a.nn", "b.nn", "sub/deep/y.nn", "sub/z.nn", "sub.nn")]


def test_a_folder_named_is_searched_even_if_skipped_below(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run("check", "runs/r1")
    assert code == 1 and " --> runs/r1/spec.nn:3:13\n" in err


def test_a_folder_without_specs_is_a_usage_error(run, tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.nn").write_text(CLEAN, encoding="utf-8")
    (tmp_path / "x.txt").write_text("", encoding="utf-8")
    for command in ("check", "fmt"):
        code, out, err = run(command, str(tmp_path))
        assert (code, out) == (2, "") and err.startswith(f"error: `{tmp_path}` holds no `.nn` file"), command


def test_a_file_named_twice_is_checked_once(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("check", "a.nn", "./a.nn", "sub", str(tmp_path / "sub" / "z.nn"), "a.nn")
    assert code == 0
    assert out.splitlines() == [f"ok: `{p}` (3 parameters)" for p in ("a.nn", "sub/deep/y.nn", "sub/z.nn")]
    assert run("check", "-", "-", stdin=CLEAN.encode())[1] == "ok: `<stdin>` (3 parameters)\n"


def test_fmt_a_folder_leaves_run_folders_and_hidden_files_alone(run, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    for name in ("a.nn", "sub/deep/y.nn", "runs/r1/spec.nn", ".e.nn"):
        (tmp_path / name).write_text(MESSY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert run("fmt", ".") == (0, "formatted `a.nn`\nformatted `sub/deep/y.nn`\n", "")
    assert (tmp_path / "a.nn").read_text(encoding="utf-8") == CLEAN
    assert (tmp_path / "runs/r1/spec.nn").read_text(encoding="utf-8") == MESSY
    assert (tmp_path / ".e.nn").read_text(encoding="utf-8") == MESSY


# ------------------------------------------------------------------------- fmt --diff

DIFF = """\
--- a/m.nn
+++ b/m.nn
@@ -1,6 +1,7 @@
 model m {
-  input x[2]
+    input x[2]
     dense 1 sigmoid
 }
+
 loss binary_crossentropy
-optimizer sgd
\\ No newline at end of file
+optimizer sgd
"""


def test_fmt_diff_prints_a_diff_and_changes_nothing(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.nn").write_text(MESSY, encoding="utf-8")
    Path("ok.nn").write_text(CLEAN, encoding="utf-8")
    assert run("fmt", "--diff", "m.nn", "ok.nn") == (1, DIFF, "would reformat `m.nn`\n")
    assert Path("m.nn").read_text(encoding="utf-8") == MESSY
    assert run("fmt", "--diff", "--check", "m.nn") == (1, DIFF, "would reformat `m.nn`\n")
    assert run("fmt", "--diff", "ok.nn") == (0, "", "")
    assert run("fmt", "--diff", "-", stdin=MESSY.encode())[1] == DIFF.replace("m.nn", "<stdin>")


@pytest.mark.skipif(shutil.which("patch") is None, reason="`patch` is not installed")
def test_fmt_diff_applies_with_patch(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GNU patch, an independent reader of the diff, turns each file into `fmt`'s output."""
    monkeypatch.chdir(tmp_path)
    texts = {"m.nn": MESSY, "sub/crlf.nn": MESSY.replace("\n", "\r\n") + "\r\n",
             "sub/c.nn": "# a comment\n\n\n" + CLEAN.replace("sgd", "adam lr=1e-3  # small") + "\n\n"}
    for name, text in texts.items():
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_bytes(text.encode())
    code, diff, _ = run("fmt", "--diff", ".")
    assert code == 1 and diff.count("--- a/") == len(texts)
    got = subprocess.run(["patch", "-p1", "--binary"], input=diff.encode(), capture_output=True, timeout=60)
    assert got.returncode == 0, got.stdout + got.stderr
    patched = {name: Path(name).read_bytes() for name in texts}
    assert run("fmt", "--diff", ".") == (0, "", "")  # now canonical
    for name, text in texts.items():
        assert patched[name].decode() == run("fmt", "-", stdin=text.encode())[1], name


# ------------------------------------------------------------------------- colour

class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("choice,no_color,force_color,tty,want", [
    ("auto", None, None, True, True),
    ("auto", None, None, False, False),
    ("auto", "1", None, True, False),
    ("auto", "", None, True, True),  # an empty NO_COLOR is not set (no-color.org)
    ("auto", None, "1", False, True),
    ("auto", None, "0", False, False),
    ("auto", None, "0", True, True),  # FORCE_COLOR=0 forces nothing; the terminal decides
    ("auto", None, "", False, False),
    ("auto", "1", "1", True, False),  # NO_COLOR wins over FORCE_COLOR
    ("always", "1", None, False, True),  # the flag wins over both
    ("always", None, "0", False, True),
    ("never", None, "1", True, False),
    ("never", None, None, True, False),
])
def test_one_rule_decides_colour(choice, no_color, force_color, tty, want) -> None:
    env = {k: v for k, v in (("NO_COLOR", no_color), ("FORCE_COLOR", force_color)) if v is not None}
    assert use_color(_Stream(tty), choice, env) is want


@pytest.mark.parametrize("argv,env,coloured", [
    (["check", "m.nn"], {}, False),
    (["check", "m.nn"], {"FORCE_COLOR": "1"}, True),
    (["check", "m.nn"], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    (["--color", "always", "check", "m.nn"], {"NO_COLOR": "1"}, True),
    (["check", "m.nn", "--color", "always"], {"NO_COLOR": "1"}, True),
    (["check", "--color=never", "m.nn"], {"FORCE_COLOR": "1"}, False),
    (["--color", "always", "check", "--color", "never", "m.nn"], {}, False),  # after the command wins
    (["--color", "always", "fmt", "m.nn"], {}, True),
    (["--color", "always", "compile", "m.nn"], {}, True),
    (["--color", "always", "train", "m.nn"], {}, True),  # before JAX: the spec is refused
])
def test_color_flag_and_environment_on_the_command_line(argv, env, coloured, run, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.nn").write_text(BAD if "fmt" not in argv else "model m {\n", encoding="utf-8")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run(*argv)
    assert code == 1 and err.startswith("\x1b[1;31merror[" if coloured else "error[")
    assert cli._COLOR_CHOICE == "auto"  # restored for the next in-process caller


def test_auto_colours_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "m.nn").write_text(BAD, encoding="utf-8")
    for extra, coloured in (([], True), (["--color", "never"], False)):
        leader, follower = pty.openpty()
        try:
            got = subprocess.run([sys.executable, "-m", "nnspec", *extra, "check", "m.nn"], cwd=tmp_path,
                                 stderr=follower, stdout=subprocess.DEVNULL, env=ENV, timeout=60)
            os.close(follower)
            text = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal's other end is closed: all is read
                    break
                if not chunk:
                    break
                text += chunk
        finally:
            os.close(leader)
        assert got.returncode == 1
        assert text.startswith(b"\x1b[1;31merror[E101]") is coloured, text[:40]


# ------------------------------------------------------------------------- github and SARIF

def test_github_commands_escape_as_the_toolkit_does() -> None:
    src = Source("a\nb: x, 100%\n", "dir,1/we:ird%.nn")
    d = Diagnostic(Severity.WARNING, "W001", "50% of `b`\r\nis: odd, very", (Label(Span(2, 3), "here"),),
                   help="a,b: c")
    assert github([d], src, "ignored.nn") == (
        "::warning file=dir%2C1/we%3Aird%25.nn,line=2,col=1,endLine=2,endColumn=2,title=W001"
        "::50%25 of `b`%0D%0Ais: odd, very%0Ahelp: a,b: c\n")
    bare = Diagnostic(Severity.ERROR, "E401", "no data")
    assert github([bare], None, "m.json") == "::error file=m.json,title=E401::no data\n"


def test_check_format_github(run) -> None:
    code, out, err = run("check", "--format", "github", str(ROOT / "tests/ui/unknown_activation.nn"))
    assert (code, err) == (1, "")
    assert out == (f"::error file={ROOT / 'tests/ui/unknown_activation.nn'},line=4,col=13,endLine=4,"
                   "endColumn=17,title=E101::unknown activation `rleu`%0Ahelp: did you mean `relu`?\n")


def test_check_format_sarif(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    files = ["tests/ui/duplicate_let.nn", "tests/ui/warnings_only.nn", "tests/ui/not_utf8.nn", "specs/perceptron.nn"]
    code, out, err = run("check", "--format", "sarif", *files)
    assert (code, err) == (1, "")
    log = json.loads(out)
    assert log["version"] == "2.1.0" and "sarif-schema-2.1.0" in log["$schema"]
    (sarif_run,) = log["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "nnspec" and driver["version"] == __import__("nnspec").__version__
    assert driver.get("informationUri", "https://").startswith("https://")  # the installed package's home page
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    for r in rules:
        title, text = CODES[r["id"]]
        assert r["shortDescription"]["text"] == title and r["help"]["text"] == text.strip()
        assert r["defaultConfiguration"]["level"] == ("warning" if r["id"][0] == "W" else "error")
    assert sarif_run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == ROOT.as_uri() + "/"
    # the same diagnostics, at the same places, as `--format json` reports them
    expected = json.loads(run("check", "--format", "json", *files)[1])
    results = sarif_run["results"]
    assert len(results) == len(expected) == 5
    for result, d in zip(results, expected):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == d["code"]
        assert result["level"] == d["severity"]
        assert result["message"]["text"].split("\n")[0] == d["message"]
        (loc,) = result["locations"]
        assert loc["physicalLocation"]["artifactLocation"] == {"uri": d["file"], "uriBaseId": "%SRCROOT%"}
        primary = next(lab for lab in d["labels"] if lab["primary"])
        assert loc["physicalLocation"]["region"] == {"startLine": primary["line"], "startColumn": primary["col"],
                                                     "endLine": primary["end_line"], "endColumn": primary["end_col"]}
        secondary = [lab for lab in d["labels"] if not lab["primary"]]
        related = result.get("relatedLocations", [])
        assert [(r["message"]["text"], r["physicalLocation"]["region"]["startLine"]) for r in related] == [
            (lab["message"], lab["line"]) for lab in secondary]
    assert results[0]["relatedLocations"][0]["message"]["text"] == "first defined here"


def test_sarif_of_clean_specs_has_no_results(run) -> None:
    code, out, _ = run("check", "--format", "sarif", str(ROOT / "specs/perceptron.nn"))
    assert code == 0 and json.loads(out)["runs"][0]["results"] == []
