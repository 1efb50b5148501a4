"""Editor support stays true: the TextMate grammar is what editors/vscode/generate.py
writes from the registries and names every layer, loss and optimizer; the VS Code folder
is well-formed; the Pygments lexer reads every example spec without an error token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS
from nnspec.losses import LOSSES, METRICS
from nnspec.optim import OPTIMIZERS, SCHEDULES

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "nnspec.tmLanguage.json"
SPECS = sorted((ROOT / "specs").glob("*.nn"))


def _grammar() -> dict:
    return json.loads(GRAMMAR.read_text(encoding="utf-8"))


def _words(rule: dict) -> set[str]:
    """The names a `\\b(?:a|b|c)\\b` rule matches."""
    m = re.fullmatch(r"\\b\(\?:(.*)\)\\b", rule["match"])
    assert m, rule["match"]
    return set(m.group(1).split("|"))


def test_grammar_is_generated() -> None:
    """The committed grammar is exactly what the script writes now (no drift)."""
    out = subprocess.run([sys.executable, str(VSCODE / "generate.py"), "--check"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_grammar_names_every_registry_row() -> None:
    repo = _grammar()["repository"]
    # a name that is also a train setting (`precision`, a metric and `precision bf16`) shows as the setting
    named = _words(repo["layer"]) | _words(repo["function"]) | _words(repo["setting"])
    for registry in (LAYERS, LOSSES, OPTIMIZERS, ACTIVATIONS, INITIALIZERS, SCHEDULES, METRICS):
        missing = set(registry.names()) - named
        assert not missing, f"{registry.kind}: {sorted(missing)}"
    assert set(LAYERS.names()) <= _words(repo["layer"])
    assert {"model", "loss", "optimizer", "train", "let", "block", "regularize"} <= _words(repo["section"])


def test_grammar_is_well_formed() -> None:
    g = _grammar()
    assert g["scopeName"] == "source.nnspec" and g["fileTypes"] == ["nn"]
    repo = g["repository"]
    for inc in g["patterns"]:
        assert inc["include"].lstrip("#") in repo  # every include resolves

    def regexes(rule: dict):
        for key in ("match", "begin", "end"):
            if key in rule:
                yield rule[key]
        for sub in rule.get("patterns", ()):
            yield from regexes(sub)

    for rule in repo.values():
        for rx in regexes(rule):
            re.compile(rx)  # Oniguruma reads a superset of what these use; Python's re checks the syntax


def _scope_of(word: str, line: str) -> str | None:
    """The scope the first matching top-level rule gives `word` in `line`, TextMate-style:
    at each position, the earliest-starting match wins, ties to the earlier rule."""
    g = _grammar()
    rules = [g["repository"][inc["include"].lstrip("#")] for inc in g["patterns"]]
    flat = []
    for r in rules:
        flat += r.get("patterns", [r]) if "match" not in r and "begin" not in r else [r]
    pos = 0
    while pos < len(line):
        best = None
        for r in flat:
            m = re.compile(r.get("match") or r["begin"], re.M).search(line, pos)
            if m and (best is None or m.start() < best[0].start()):
                best = (m, r)
        if best is None:
            return None
        m, r = best
        if "begin" in r:  # a region, to its `end`
            end = re.compile(r["end"], re.M).search(line, m.end())
            stop = end.end() if end else len(line)
            if line[m.start():stop] == word:
                return r["name"]
            pos = max(stop, pos + 1)
            continue
        groups = [(m.start(int(k)), m.end(int(k)), c["name"]) for k, c in r.get("captures", {}).items()]
        spans = groups or [(m.start(), m.end(), r.get("name", ""))]
        for a, b, scope in spans:
            if line[a:b] == word:
                return scope
        pos = max(m.end(), pos + 1)
    return None


@pytest.mark.parametrize("line, word, scope", [
    ("    h1: dense 64 relu init=he_normal  # hidden", "dense", "support.class.layer.nnspec"),
    ("    h1: dense 64 relu init=he_normal  # hidden", "h1", "entity.name.label.nnspec"),
    ("    h1: dense 64 relu init=he_normal  # hidden", "init", "variable.parameter.nnspec"),
    ("    h1: dense 64 relu init=he_normal  # hidden", "64", "constant.numeric.nnspec"),
    ("loss binary_crossentropy", "binary_crossentropy", "support.function.nnspec"),
    ("loss binary_crossentropy", "loss", "keyword.other.section.nnspec"),
    ("let hidden = 32", "hidden", "variable.other.constant.nnspec"),
    ("model pass_class {", "pass_class", "entity.name.type.nnspec"),
    ("    batch 32", "batch", "keyword.other.setting.nnspec"),
    ('    data builtin("moons # not a comment", n=500)', '"moons # not a comment"', "string.quoted.double.nnspec"),
    ("    skip: add h1 h2 from x  # dense", "# dense", "comment.line.number-sign.nnspec"),
])
def test_grammar_scopes(line: str, word: str, scope: str) -> None:
    assert _scope_of(word, line) == scope


def test_vscode_extension_folder() -> None:
    pkg = json.loads((VSCODE / "package.json").read_text())
    (language,) = pkg["contributes"]["languages"]
    assert language["id"] == "nnspec" and language["extensions"] == [".nn"]
    (grammar,) = pkg["contributes"]["grammars"]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR and grammar["scopeName"] == _grammar()["scopeName"]
    assert (VSCODE / pkg["main"]).is_file()
    assert pkg["contributes"]["configuration"]["properties"]["nnspec.server.command"]["default"] == ["nnspec", "lsp"]
    config = json.loads((VSCODE / language["configuration"]).read_text())
    assert config["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in config["brackets"] and ["[", "]"] in config["brackets"]
    readme = (VSCODE / "README.md").read_text()
    assert "nnspec lsp" in readme and "nnspec.server.command" in readme


# -------------------------------------------------------------------- Pygments

def _entry_points() -> dict[str, str]:
    """pyproject's `pygments.lexers` entry points."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pygments.lexers"]


def _lexer():
    pytest.importorskip("pygments", reason="the lexer needs Pygments (in the `test` extra)")
    from nnspec.pygments_lexer import NNSpecLexer
    return NNSpecLexer()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_lexer_reads_every_spec(path: Path) -> None:
    from pygments.token import Error
    text = path.read_text(encoding="utf-8")
    tokens = list(_lexer().get_tokens(text))
    assert not [(t, v) for t, v in tokens if t in Error]
    assert "".join(v for _, v in tokens) == text if text.endswith("\n") else text + "\n"


def test_lexer_token_classes() -> None:
    from pygments.token import Comment, Keyword, Name, Number, String
    tokens = [(t, v) for t, v in _lexer().get_tokens(
        'let w = 8\nmodel m {\n    h1: dense w relu init=he_normal  # note\n}\n'
        'loss mse\noptimizer adam lr=1e-3\ntrain {\n    data builtin("a#b")\n    batch 32\n}\n')
        if v.strip()]
    kinds: dict = {}
    for t, v in tokens:
        kinds.setdefault(v, t)  # each word's first use
    assert kinds["let"] in Keyword and kinds["w"] in Name.Constant and kinds["m"] in Name.Class
    assert kinds["dense"] in Name.Builtin and kinds["h1"] in Name.Label and kinds["init"] in Name.Attribute
    assert kinds["relu"] in Name.Builtin and kinds["mse"] in Name and kinds["adam"] in Name.Function
    assert kinds["1e-3"] in Number and kinds["# note"] in Comment and kinds["a#b"] in String
    assert kinds["batch"] in Keyword


def test_lexer_entry_point() -> None:
    """pyproject registers the lexer under `pygments.lexers`, so `pygmentize -l nnspec` finds it
    once nnspec is installed; the target it names is the lexer class."""
    _lexer()
    import importlib
    eps = _entry_points()
    module, _, attr = eps["nnspec"].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert "nnspec" in cls.aliases and "*.nn" in cls.filenames
    from pygments.lexers import find_lexer_class_for_filename
    from importlib.metadata import entry_points
    if any(ep.name == "nnspec" for ep in entry_points(group="pygments.lexers")):  # installed with this pyproject
        assert find_lexer_class_for_filename("x.nn").__name__ == cls.__name__


def test_pygmentize_finds_the_lexer(tmp_path: Path) -> None:
    """`pygmentize -l nnspec` through the entry point as pyproject declares it: the metadata an
    install writes (entry_points.txt) is made by hand here, as installing would be slow."""
    _lexer()
    eps = _entry_points()
    info = tmp_path / "nnspec_editors_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nnspec-editors-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pygments.lexers]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    spec = ROOT / "specs" / "pass_class.nn"
    out = subprocess.run([sys.executable, "-m", "pygments", "-l", "nnspec", "-f", "html", str(spec)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '<span class="nb">dense</span>' in out.stdout  # Name.Builtin: a layer
    out = subprocess.run([sys.executable, "-m", "pygments", "-N", "x.nn"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.strip() == "nnspec"


def test_highlighting_words_import_no_jax() -> None:
    """The word lists are front end: importing them (as editors and the lexer do) starts no JAX."""
    code = "import sys, nnspec.highlight; assert 'jax' not in sys.modules, 'jax imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


def test_lexer_reads_the_docs_examples() -> None:
    """The doc's own fences (```nn, ```nn-fragment, ```nn-warning) name the lexer's aliases
    and lex without an error token; ```nn-error blocks hold deliberate mistakes."""
    from pygments.token import Error
    lexer = _lexer()
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    blocks = re.findall(r"(?ms)^```(nn(?:-fragment|-warning)?)\n(.*?)^```$", text)
    assert len(blocks) > 20
    for fence, body in blocks:
        assert fence in lexer.aliases
        bad = [(t, v) for t, v in lexer.get_tokens(body) if t in Error]
        assert not bad, (fence, body[:200], bad)
