"""1. No input crashes the compiler.

Checkable specs are generated from the registries (every layer, activation, initializer,
loss, optimizer and schedule), then mutated: tokens deleted, duplicated, swapped or
renamed, lines dropped or moved, truncation, huge numbers, deep nesting, random text and
random bytes. Each goes through the whole front end (`check_source`) and through the
CLI in-process (`check`, `check --format json`, `compile --emit summary`, `fmt --check`,
and `fmt` itself). Nothing may raise but argparse's SystemExit; the exit code is 0, 1 or
2; stderr holds no traceback and no internal compiler error; every diagnostic has a
code and a location inside the file. Inputs that once crashed live in `corpus/`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robust_helpers import COUNTS, RENDERED_CODE, cli
from robust_strategies import NAMES, checkable_specs, mutated, mutated_bytes

from nnspec.check import check_source
from nnspec.diagnostics import render_all
from nnspec.format import format_spec
from nnspec.parse import parse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = sorted((HERE / "corpus").glob("*.nn"))
CODE = re.compile(r"[EW]\d{3}")
MEMORY_BUDGET = 16 * 2**30  # the same answer on every machine

def fuzz(cases: int) -> settings:
    """Reproducible in CI: the same cases on every run, no example database."""
    return settings(max_examples=cases, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------ checks

def front_end(text: str, filename: str = "f.nn"):
    """check_source never raises; its diagnostics have codes and spans inside the text."""
    COUNTS["front end"] += 1
    program, diags, source = check_source(text, filename, memory_budget=MEMORY_BUDGET)
    for d in diags:
        assert CODE.fullmatch(d.code), d
        assert d.labels, f"diagnostic without a location: {d}"
        for label in d.labels:
            assert 0 <= label.span.start <= label.span.end <= len(text), (d, len(text))
    assert isinstance(render_all(diags, source), str)
    assert (program is None) == any(d.is_error for d in diags)
    return program, diags


def through_cli(path: Path, *, rewrite: bool = True) -> None:
    """Every front-end command on one file, and the JSON diagnostics located inside it."""
    data = path.read_bytes() if path.is_file() else b""
    text = data.decode("utf-8", errors="replace")
    code, _, err = cli("check", str(path))
    code_json, out, _ = cli("check", "--format", "json", str(path))
    assert code_json == code
    if code != 2:
        for d in json.loads(out):
            assert CODE.fullmatch(d["code"]) and d["file"] == str(path), d
            assert d["labels"], f"diagnostic without a location: {d}"
            for label in d["labels"]:
                assert 0 <= label["start"] <= label["end"] <= len(text), (d, len(text))
                assert 1 <= label["line"] <= text.count("\n") + 1, d
        assert sorted(RENDERED_CODE.findall(err)) == sorted(d["code"] for d in json.loads(out))
    summary_code, _, _ = cli("compile", "--emit", "summary", str(path))
    assert summary_code == code
    fmt_code, fmt_out, _ = cli("fmt", "--check", str(path))
    assert path.read_bytes() == data, "`fmt --check` changed the file"
    if rewrite and fmt_code == 1 and fmt_out.startswith("would reformat"):
        # `fmt` rewrites it; the result is formatted, and means what the original meant.
        copy = path.with_name("formatted.nn")
        shutil.copyfile(path, copy)
        assert cli("fmt", str(copy))[0] == 0
        assert cli("fmt", "--check", str(copy))[0] == 0
        again, _, err_after = cli("check", str(copy))
        assert again == code
        assert sorted(RENDERED_CODE.findall(err_after)) == sorted(RENDERED_CODE.findall(err))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------ generated, then mutated

@fuzz(300)
@given(checkable_specs())
def test_generated_specs_are_accepted_and_format_to_the_same_program(text: str) -> None:
    program, diags = front_end(text)
    assert program is not None, [(d.code, d.message) for d in diags]
    again, _ = front_end(format_spec(parse(text)))
    assert again is not None and again.model.n_params == program.model.n_params
    assert again.model.output_shape == program.model.output_shape


@pytest.mark.slow
@fuzz(4000)
@given(mutated())
def test_mutated_specs_never_crash_the_front_end(text: str) -> None:
    front_end(text)


@pytest.mark.slow
@fuzz(800)
@given(st.one_of(mutated().map(str.encode), mutated_bytes(), checkable_specs().map(str.encode)))
def test_mutated_files_never_crash_the_cli(scratch: Path, data: bytes) -> None:
    path = scratch / "f.nn"
    path.write_bytes(data)
    through_cli(path)


def _spec_texts() -> list[tuple[str, str]]:
    return [("pass_class", (ROOT / "specs" / "pass_class.nn").read_text()),
            ("schedules", (ROOT / "specs" / "schedules.nn").read_text()),
            ("digits_mlp", (ROOT / "specs" / "digits_mlp.nn").read_text())]


@pytest.mark.slow
@pytest.mark.parametrize("name,text", _spec_texts(), ids=[n for n, _ in _spec_texts()])
def test_truncation_at_every_offset(name: str, text: str, tmp_path: Path) -> None:
    for end in range(len(text) + 1):
        front_end(text[:end])
    # through the CLI too, at every 7th offset and around every line break
    path = tmp_path / f"{name}.nn"
    cuts = sorted(set(range(0, len(text) + 1, 7)) | {m.start() + d for m in re.finditer("\n", text)
                                                      for d in (-1, 0, 1)})
    for end in cuts:
        path.write_text(text[:end])
        through_cli(path, rewrite=False)


# ---------------------------------------------------------------------- hand-made extremes

VALID = (ROOT / "specs" / "pass_class.nn").read_text()
BODY = "model m {\n    input x[2]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd lr=0.1\n"

EXTREMES: dict[str, bytes] = {
    "empty": b"",
    "only a newline": b"\n",
    "only a BOM": b"\xef\xbb\xbf",
    "BOM then spec": b"\xef\xbb\xbf" + VALID.encode(),
    "NUL bytes": b"\x00" * 64,
    "NUL inside": VALID.encode().replace(b"dense", b"de\x00nse", 1),
    "not UTF-8 at the start": b"\xff\xfe" + VALID.encode(),
    "not UTF-8 in a comment": VALID.encode().replace(b"# Will", b"# W\xe9ill", 1),
    "truncated UTF-8 at the end": VALID.encode() + b"\xe2\x98",
    "UTF-16": VALID.encode("utf-16"),
    "Latin-1 name": b"model m\xe9 {\n}\n",
    "CRLF": VALID.replace("\n", "\r\n").encode(),
    "CR only": VALID.replace("\n", "\r").encode(),
    "1e999": VALID.replace("lr=0.1", "lr=1e999").encode(),
    "-1e999": VALID.replace("lr=0.1", "lr=-1e999").encode(),
    "1e-999": VALID.replace("lr=0.1", "lr=1e-999").encode(),
    "10**5000 as digits": VALID.replace("n=500", "n=1" + "0" * 5000).encode(),
    "a 100,000-digit number": VALID.replace("n=500", "n=" + "9" * 100_000).encode(),
    "huge units": BODY.replace("dense 1 sigmoid", "dense " + "9" * 40 + " relu\n    dense 1 sigmoid").encode(),
    "huge input": BODY.replace("x[2]", "x[" + ", ".join(["99999999"] * 8) + "]").encode(),
    "zero input": BODY.replace("x[2]", "x[0]").encode(),
    "negative input": BODY.replace("x[2]", "x[-2]").encode(),
    "seed 2**64": VALID.replace("seed 0", f"seed {2**64}").encode(),
    "warmup 2**40": VALID.replace("lr=0.1", f"lr=0.1 warmup={2**40}").encode(),
    "nested lists": ("let w = " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
    "unclosed lists": ("let w = " + "[" * 10_000 + "\n").encode(),
    "nested calls": ("optimizer sgd lr=" + "f(" * 5000 + ")" * 5000 + "\n").encode(),
    "nested blocks": ("model m {\n" * 2000 + "}\n" * 2000).encode(),
    "5000 layers": ("model m {\n    input x[2]\n" + "    dense 2 relu\n" * 5000
                    + "    dense 1 sigmoid\n}\nloss bce\noptimizer sgd\n").encode(),
    "a 5000-long let chain": ("let a0 = 3\n" + "".join(f"let a{i + 1} = a{i}\n" for i in range(5000))
                              + BODY.replace("dense 1 sigmoid", "dense a5000 relu\n    dense 1 sigmoid")).encode(),
    "a let cycle": ("let a = b\nlet b = a\n" + BODY.replace("dense 1 sigmoid", "dense a relu\n    dense 1 sigmoid")).encode(),
    "a 1 MB line": ("# " + "x" * 2**20 + "\n" + VALID).encode(),
    "a 1 MB string": ('let s = "' + "y" * 2**20 + '"\n').encode(),
    "10,000 errors": ("model m {\n" + "    rleu\n" * 10_000 + "}\n").encode(),
    "every registry name as a statement": "\n".join(NAMES).encode() + b"\n",
    "control characters": bytes(range(1, 32)) * 4,
    "right-to-left override": VALID.replace("relu", "re\u202elu").encode(),
    "surrogate escapes": b"model m {\n    input x[\xed\xa0\x80]\n}\n",
}


@pytest.mark.parametrize("name", list(EXTREMES), ids=list(EXTREMES))
def test_extreme_inputs(name: str, tmp_path: Path) -> None:
    data = EXTREMES[name]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        front_end(text)
    path = tmp_path / "f.nn"
    path.write_bytes(data)
    through_cli(path)


def test_not_a_file(tmp_path: Path) -> None:
    for path, why in ((tmp_path, "it is a directory"), (tmp_path / "missing.nn", "no such file")):
        for argv in (["check"], ["check", "--format", "json"], ["compile", "--emit", "summary"], ["fmt"],
                     ["fmt", "--check"]):
            code, out, err = cli(*argv, str(path))
            if path.is_dir() and argv[0] != "compile":  # a folder: the `.nn` files in it, and it has none
                want = f"error: `{path}` holds no `.nn` file (names starting with `.`, and run folders, are skipped)\n"
            else:
                want = f"error: cannot read `{path}`: {why}\n"
            assert code == 2 and err == want, (argv, err)


# ------------------------------------------------------------------------------- corpus

@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_inputs_that_once_crashed(path: Path, tmp_path: Path) -> None:
    """Each once crashed a command (the header comment says which and how); it must not now."""
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    data = copy.read_bytes()
    try:
        front_end(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    through_cli(copy)
    code, _, err = cli("train", str(copy), "--epochs", "1", "--out", str(tmp_path / "run"), "-q")
    assert code in (0, 1), err


# --------------------------------------------------------------------------- IR JSON input
# `nnspec check model.json` reads IR that another tool may have written. The IR of every
# example spec is mutated at a random place (a field's value replaced by one of another
# type, a field removed or added, a name that is not a name, a span reversed, nesting a
# hundred thousand deep); the commands must refuse bad IR with exit 2 and a message that
# names the JSON path, and check good IR as they check text.

from nnspec import ir  # noqa: E402

SPEC_IR = {p.stem: ir.to_data(parse(p.read_text(encoding="utf-8"))) for p in sorted((ROOT / "specs").glob("*.nn"))}
_ODD_VALUES = [None, 0, -1, 1.5, 10**400, True, "", "x y", "1abc", "relu", [], [[]], {}, [3, 1], [-1, 2],
               [0, 1, 2], {"kind": "Number", "value": 1}, {"kind": "Ref", "name": "x"}, {"kind": "Spec"},
               {"kind": "Nope"}, ["a"], float("nan")]


def _places(data, path=()):
    """Every (container path, key) in the JSON."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield path, k
            yield from _places(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield path, i
            yield from _places(v, path + (i,))


@st.composite
def mutated_ir(draw):
    import copy
    data = copy.deepcopy(SPEC_IR[draw(st.sampled_from(sorted(SPEC_IR)))])
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(data))
        path, key = draw(st.sampled_from(places))
        parent = data
        for p in path:
            parent = parent[p]
        how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if how == "delete":
            del parent[key]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "kind", "span"]))] = copy.deepcopy(draw(st.sampled_from(_ODD_VALUES)))
        else:
            parent[key] = copy.deepcopy(draw(st.sampled_from(_ODD_VALUES)))
    return json.dumps(data)


def _check_ir(path: Path) -> tuple[int, str]:
    code, _, err = cli("check", str(path))
    if code == 2:
        assert err.startswith(f"error: `{path}` is not nnspec IR: ") and err.count("\n") == 1, err
    else:
        assert cli("compile", "--emit", "summary", str(path))[0] == code
    return code, err


@pytest.mark.slow
@fuzz(600)
@given(mutated_ir())
def test_mutated_ir_never_crashes_the_cli(scratch: Path, text: str) -> None:
    path = scratch / "f.json"
    path.write_text(text, encoding="utf-8")
    _check_ir(path)


def _nested_list(depth: int) -> dict:
    value: dict = {"kind": "Number", "value": 1}
    for _ in range(depth):
        value = {"kind": "List", "items": [value]}
    return value


@pytest.mark.parametrize("change,message", [
    (lambda d: d["model"]["nodes"][0].__setitem__("name", "not a name"),
     '`spec.model.nodes[0].name` must be a name (letters, digits and `_`, not first a digit), found "not a name"'),
    (lambda d: d["model"]["nodes"][0].__setitem__("args", None), "`spec.model.nodes[0].args` must be an array, found null"),
    (lambda d: d["model"]["nodes"][0].__setitem__("span", None), None),  # a null span is allowed: no location
    (lambda d: d["model"]["nodes"][0].__setitem__("span", [9, 2]),
     "`spec.model.nodes[0].span` must be a span, [start, end] with 0 ≤ start ≤ end, or null"),
    (lambda d: d["model"]["inputs"][0]["shape"][0].__setitem__("value", "2"),
     "`spec.model.inputs[0].shape[0].value` must be a number, found a string"),
    (lambda d: d["model"]["nodes"][0].__setitem__("labelled", 1), "`spec.model.nodes[0].labelled` must be `true` or `false`, found a number"),
    (lambda d: d["loss"].__setitem__("kind", "Train"), '`spec.loss.kind` must be `Directive`, found "Train"'),
    (lambda d: d["model"]["nodes"][0]["args"][0].__setitem__("value", {"kind": "Node"}),
     '`spec.model.nodes[0].args[0].value.kind` must be one of `Number`, `String`, `Bool`, `Ref`, `Shaped`, `List`, `Call`, found "Node"'),
    (lambda d: d["model"]["nodes"][0].pop("op"), "`spec.model.nodes[0]`: `Node` needs the field `op`"),
    (lambda d: d["model"]["nodes"][0]["args"][0].__setitem__("value", [[[1]]]),
     "`spec.model.nodes[0].args[0].value` must be a value node, found an array"),
    (lambda d: d["model"]["nodes"][0]["args"][0].__setitem__("value", _nested_list(200)),
     "`" + ("spec.model.nodes[0].args[0].value" + ".items[0]" * 143)[:80] + "…` nests deeper than 300 levels"),
    (lambda d: d["model"]["nodes"][1].__setitem__("inputs", ["nowhere"]),
     "`spec.model.nodes[1].inputs[0]` names `nowhere`, which is not an input or a layer above it"),
    (lambda d: d["loss"].__setitem__("keyword", "optimizer"), '`spec.loss.keyword` must be "loss", found "optimizer"'),
])
def test_bad_ir_is_refused_naming_its_json_path(tmp_path: Path, change, message: str | None) -> None:
    import copy
    data = copy.deepcopy(SPEC_IR["spirals_relu"])
    change(data)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    code, err = _check_ir(path)
    if message is None:
        assert code == 0, err
    else:
        assert (code, err) == (2, f"error: `{path}` is not nnspec IR: {message}\n")


def test_ir_nested_a_hundred_thousand_deep_is_refused(tmp_path: Path) -> None:
    text = json.dumps(SPEC_IR["spirals_relu"]).replace('"lets": []', '"lets": ' + "[" * 100_000 + "]" * 100_000, 1)
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")
    assert _check_ir(path) == (2, f"error: `{path}` is not nnspec IR: the JSON nests deeper than {ir.MAX_JSON_DEPTH} levels\n")


def test_the_ir_of_every_example_spec_reads_back() -> None:
    for name, data in SPEC_IR.items():
        assert ir.to_data(ir.from_data(data)) == data, name


# The published JSON Schema of the IR (nnspec/ir.schema.json), checked with a validator
# of the few keywords it uses (no JSON Schema library is a dependency).

def _schema_errors(data, schema: dict, root: dict, path: str = "spec") -> list[str]:
    if "$ref" in schema:
        return _schema_errors(data, root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root, path)
    if "oneOf" in schema:
        found = [_schema_errors(data, s, root, path) for s in schema["oneOf"]]
        fits = sum(not errs for errs in found)
        if fits == 0:  # the nearest alternative says what is wrong
            return min(found, key=len)
        return [] if fits == 1 else [f"{path}: fits {fits} of oneOf"]
    if "const" in schema:
        return [] if data == schema["const"] and type(data) is type(schema["const"]) else [f"{path}: not {schema['const']!r}"]
    kinds = {"string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}
    t = schema.get("type")
    if t in ("integer", "number"):
        ok = not isinstance(data, bool) and isinstance(data, int if t == "integer" else (int, float))
        if not ok or data < schema.get("minimum", -math.inf):
            return [f"{path}: not a {t} in range"]
    elif t is not None and not isinstance(data, kinds[t]):
        return [f"{path}: not {t}"]
    if "pattern" in schema and not re.search(schema["pattern"], data):
        return [f"{path}: does not match {schema['pattern']}"]
    out: list[str] = []
    if isinstance(data, list):
        if not schema.get("minItems", 0) <= len(data) <= schema.get("maxItems", math.inf):
            return [f"{path}: wrong length"]
        for i, x in enumerate(data):
            sub = schema["prefixItems"][i] if i < len(schema.get("prefixItems", ())) else schema.get("items", {})
            out += _schema_errors(x, sub, root, f"{path}[{i}]")
    if isinstance(data, dict):
        out += [f"{path}: needs {k}" for k in schema.get("required", ()) if k not in data]
        for k, v in data.items():
            if k not in schema.get("properties", {}):
                out += [f"{path}: no field {k}"] if schema.get("additionalProperties") is False else []
            else:
                out += _schema_errors(v, schema["properties"][k], root, f"{path}.{k}")
    return out


def test_the_published_ir_schema_is_current_and_fits_every_example_spec() -> None:
    import copy
    published = json.loads((ROOT / "nnspec" / "ir.schema.json").read_text(encoding="utf-8"))
    assert published == ir.json_schema(), (
        "stale: python -c \"import json; from nnspec import ir; open('nnspec/ir.schema.json', 'w')"
        ".write(json.dumps(ir.json_schema(), indent=2, ensure_ascii=False) + '\\n')\"")
    for name, data in SPEC_IR.items():
        assert _schema_errors(data, published, published) == [], name
    bad = copy.deepcopy(SPEC_IR["spirals_relu"])
    bad["model"]["nodes"][0]["name"] = "not a name"
    bad["model"]["nodes"][1]["span"] = None  # allowed
    bad["loss"]["args"] = None
    assert _schema_errors(bad, published, published) == [
        "spec.model.nodes[0].name: does not match ^[A-Za-z_][A-Za-z0-9_]*$", "spec.loss.args: not array"]
