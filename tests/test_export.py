"""`nnspec export`: StableHLO that reproduces `nnspec predict`, weights by layer path,
ONNX checked in onnxruntime, and every way the command can be misused (issue 11)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec

from cli_helpers import run_cli

# standardize, batch norm and dropout: what the inference function must fold in or turn off
SPEC = """
model blobs {
    input x[2]
    h: dense 16 relu
    bn: batch_norm momentum=0.5
    dropout 0.3
    out: dense 3 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.05
train {
    data builtin("blobs", n=120, classes=3, spread=2.5)
    split val=0.25 test=0.25
    batch 16
    epochs 4
    metrics accuracy
    seed 0
    standardize
}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("export")
    (base / "blobs.nn").write_text(SPEC)
    code, _, err = run_cli("train", base / "blobs.nn", "--out", base / "run", "-q")
    assert code == 0, err
    return base / "run"


def inputs(n: int, seed: int = 1) -> np.ndarray:
    # far from the data's own scale: a missing standardization could not go unnoticed
    return np.random.default_rng(seed).normal(3.0, 4.0, size=(n, 2)).astype(np.float32)


def exported(run: Path, tmp_path: Path):
    from jax import export
    path = tmp_path / "m.stablehlo"
    code, _, err = run_cli("export", run, "--format", "stablehlo", "-o", path)
    assert code == 0 and f"to `{path}`" in err, err
    return export.deserialize(bytearray(path.read_bytes()))


def test_stablehlo_has_a_symbolic_batch_and_matches_predict_on_every_batch_size(run, tmp_path) -> None:
    fn = exported(run, tmp_path)
    (aval,), (out,) = fn.in_avals, fn.out_avals
    assert str(aval.shape[0]) == "batch" and aval.shape[1:] == (2,) and str(aval.dtype) == "float32"
    assert str(out.shape[0]) == "batch" and out.shape[1:] == (3,)
    assert "cpu" in fn.platforms
    model = nnspec.load(run)
    for n in (1, 3, 17, 64):
        x = inputs(n, seed=n)
        y = np.asarray(fn.call(x))
        assert y.shape == (n, 3)
        np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-6)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)  # probabilities
        np.testing.assert_array_equal(np.asarray(fn.call(x)), y)  # no dropout: the same twice


def test_stablehlo_matches_the_cli_predict_output(run, tmp_path) -> None:
    x = inputs(9)
    model = nnspec.load(run)
    names = model.feature_names
    assert names is not None
    with open(tmp_path / "in.csv", "w", newline="") as f:  # columns in the other order
        w = csv.writer(f)
        w.writerow(names[::-1])
        w.writerows(row[::-1].tolist() for row in x)
    code, _, err = run_cli("predict", run / "spec.nn", "--run", run, "--input", tmp_path / "in.csv",
                           "--output", tmp_path / "out.csv")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    printed = np.array([[float(r[f"y{i}"]) for i in range(3)] for r in rows])
    y = np.asarray(exported(run, tmp_path).call(x))
    np.testing.assert_allclose(y, printed, rtol=1e-5, atol=1e-6)  # predict prints 6 digits
    assert [r["class"] for r in rows] == [str(i) for i in y.argmax(axis=1)]


def test_stablehlo_is_the_inference_function_computed_by_hand(run, tmp_path) -> None:
    """An independent reference: NumPy on the checkpoint's arrays, read by name without the spec."""
    meta = json.loads(bytes(np.load(run / "checkpoint.npz")["__meta__"]))
    with np.load(run / "checkpoint.npz") as z:
        p = {k.split("/", 1)[1]: z[k].astype(np.float64) for k in z.files if k.startswith("final_params/")}
    assert set(p) == {"h.w", "h.b", "bn.moving_mean", "bn.moving_var", "bn.scale", "bn.offset", "out.w", "out.b"}
    assert not np.allclose(p["bn.moving_mean"], 0)  # trained running statistics, not the initial ones
    x = inputs(11)
    z = (x - np.asarray(meta["standardizer"]["mean"])) / np.asarray(meta["standardizer"]["std"])
    h = np.maximum(z @ p["h.w"] + p["h.b"], 0)
    h = (h - p["bn.moving_mean"]) / np.sqrt(p["bn.moving_var"] + 1e-3) * p["bn.scale"] + p["bn.offset"]
    logits = h @ p["out.w"] + p["out.b"]
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(exported(run, tmp_path).call(x)), want, atol=1e-5)


def test_stablehlo_runs_in_a_fresh_process_with_only_jax(run, tmp_path) -> None:
    fn = exported(run, tmp_path)  # writes tmp_path / "m.stablehlo"
    x = inputs(5)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np\n"
              "from jax import export\n"
              f"f = export.deserialize(bytearray(open({str(tmp_path / 'm.stablehlo')!r}, 'rb').read()))\n"
              f"y = np.asarray(f.call(np.load({str(tmp_path / 'x.npy')!r})))\n"
              "assert not any(m.split('.')[0] == 'nnspec' for m in sys.modules), 'nnspec was imported'\n"
              f"np.save({str(tmp_path / 'y.npy')!r}, y)\n")
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.asarray(fn.call(x)))


def test_safetensors_holds_the_final_weights_by_layer_path(run, tmp_path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open
    path = tmp_path / "w.safetensors"
    code, _, err = run_cli("export", run, "--format", "safetensors", "-o", path)
    assert code == 0 and "8 tensors" in err, err
    tensors = st.load_file(str(path))
    with np.load(run / "checkpoint.npz") as z:
        final = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("final_params/")}
    assert set(tensors) == set(final) and "h.w" in tensors and tensors["h.w"].shape == (2, 16)
    for name, value in final.items():
        np.testing.assert_array_equal(tensors[name], value)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    model = nnspec.load(run)
    assert meta["model"] == "blobs" and json.loads(meta["input_shape"]) == [2]
    np.testing.assert_array_equal(np.asarray(json.loads(meta["standardize"])["mean"], np.float32),
                                  model.standardizer.mean)
    assert json.loads(meta["feature_names"]) == list(model.feature_names)


def test_checkpoint_arrays_are_named_by_layer_path_and_old_checkpoints_still_load(run, tmp_path) -> None:
    from nnspec import checkpoint
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["names"]["final_params"] == ["bn.moving_mean", "bn.moving_var", "bn.offset", "bn.scale",
                                             "h.b", "h.w", "out.b", "out.w"]
    assert any(n.endswith("mu.h.w") for n in meta["names"]["opt_state"])  # optax's state, by path too
    # a checkpoint written before names (arrays by position) reads back the same
    import shutil
    old = tmp_path / "old"
    shutil.copytree(run, old)
    with np.load(run / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("__meta__")))
    names = header.pop("names")
    renamed = {f"{tree}/{i:06d}": arrays[f"{tree}/{n}"] for tree, listed in names.items() for i, n in enumerate(listed)}
    renamed["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(old / "checkpoint.npz", **renamed)
    x = inputs(4)
    np.testing.assert_array_equal(nnspec.load(old).predict(x), nnspec.load(run).predict(x))
    # a name list that does not match the arrays is refused as corrupt
    header["names"] = {**names, "final_params": names["final_params"][::-1][:-1] + ["nothing"]}
    renamed = {**arrays, "__meta__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    np.savez(old / "checkpoint.npz", **renamed)
    code, _, err = run_cli("export", old, "--format", "stablehlo", "-o", tmp_path / "x")
    assert code == 1 and "its arrays do not match its table of contents" in err, err


# ---------------------------------------------------------------------------- refusals

def test_a_missing_run_folder_or_checkpoint_is_refused(tmp_path) -> None:
    code, _, err = run_cli("export", tmp_path / "nope", "--format", "stablehlo", "-o", tmp_path / "m")
    assert (code, err) == (2, f"error: no run folder `{tmp_path / 'nope'}`\n")
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("export", tmp_path / "empty", "--format", "stablehlo", "-o", tmp_path / "m")
    assert code == 2 and err.startswith(f"error: `{tmp_path / 'empty'}` holds no trained run (no `checkpoint.npz`)")
    assert not (tmp_path / "m").exists()


def test_an_unreadable_checkpoint_is_refused_with_e405(run, tmp_path) -> None:
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    (bad / "checkpoint.npz").write_bytes(b"not a zip at all")
    code, out, err = run_cli("export", bad, "--format", "safetensors", "-o", tmp_path / "w")
    assert code == 1 and out == ""
    assert err.startswith(f"error[E405]: `{bad / 'checkpoint.npz'}` is corrupt or truncated"), err
    assert err.splitlines()[-1] == f"error: could not export `{bad / 'spec.nn'}` due to 1 previous error", err
    assert not (tmp_path / "w").exists()


def test_an_unknown_format_is_a_usage_error(run, tmp_path) -> None:
    code, _, err = run_cli("export", run, "--format", "tflite", "-o", tmp_path / "m")
    assert code == 2 and "invalid choice: 'tflite'" in err and "stablehlo" in err, err


def test_an_existing_output_is_kept_unless_overwrite(run, tmp_path) -> None:
    out = tmp_path / "m.stablehlo"
    out.write_text("mine")
    code, _, err = run_cli("export", run, "--format", "stablehlo", "-o", out)
    assert (code, err) == (2, f"error: `{out}` already exists; choose another file, or pass `--overwrite` "
                              f"to replace it\n")
    assert out.read_text() == "mine"
    code, _, err = run_cli("export", run, "--format", "stablehlo", "-o", out, "--overwrite")
    assert code == 0, err
    from jax import export
    assert export.deserialize(bytearray(out.read_bytes())).call(inputs(2)).shape == (2, 3)
    (tmp_path / "folder").mkdir()
    code, _, err = run_cli("export", run, "--format", "stablehlo", "-o", tmp_path / "folder", "--overwrite")
    assert (code, err) == (2, f"error: cannot write `{tmp_path / 'folder'}`: it is a directory\n")


@pytest.mark.parametrize("fmt,module,extra", [("safetensors", "safetensors", "export"), ("onnx", "jax2onnx", "onnx")])
def test_a_missing_optional_library_says_what_to_install(run, tmp_path, monkeypatch, fmt, module, extra) -> None:
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module, f"{module}.numpy"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import` then raises ImportError
    code, _, err = run_cli("export", run, "--format", fmt, "-o", tmp_path / "m")
    assert code == 2 and f"pip install 'nnspec[{extra}]'" in err and f"`{module}` package" in err, err
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------- ONNX

WAVES = """
model {name} {{
    input wave[20, 1]
{layers}
    out: dense 1 sigmoid
}}
loss binary_crossentropy
optimizer adam lr=0.02
train {{
    data builtin("waves", n=200)
    split val=0.2
    batch 32
    epochs 1
    seed 0
    metrics accuracy
}}
"""
TOKENS = """
model {name} {{
    input tokens[12] int vocab=10
    ids: embedding 16
{layers}
    global_avg_pool
    out: dense 1 sigmoid
}}
loss binary_crossentropy
optimizer adam lr=0.003
train {{
    data builtin("order", n=200)
    split val=0.2
    batch 32
    epochs 1
    seed 0
    metrics accuracy
}}
"""
DIGITS = """
model digits {
    input image[8, 8, 1]
    c1: conv2d 4 3 relu padding=same
    max_pool2d 2
    c2: conv2d 4 3 relu padding=same
    avg_pool2d 2
    global_avg_pool
    out: dense 10 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.01
train {
    data builtin("digits", image=true)
    split val=0.2 test=0.2
    batch 64
    epochs 2
    seed 0
    metrics accuracy
    standardize
}
"""
# separable, depthwise and transposed convolutions, upsampling, merges, an activation layer
GRAPH = """
model graph {
    input image[8, 8, 1]
    a: separable_conv2d 4 3 relu padding=same
    depthwise_conv2d 3 relu padding=same
    c: conv2d 4 1
    s: add a c
    concat a s
    max_pool2d 2
    upsampling2d 2
    conv2d_transpose 2 3 padding=same
    gelu
    flatten
    out: dense 10 log_softmax
}
loss categorical_crossentropy from_logits=true
optimizer adam lr=0.01
train {
    data builtin("digits", image=true)
    split val=0.2
    batch 64
    epochs 1
    seed 0
}
"""
# a variational autoencoder: its inference path decodes the mean (`sample` outside training)
VAE = """
model vae {
    input image[64]
    h: dense 16 relu
    mean: dense 2
    log_var: dense 2 from h
    z: sample mean log_var
    dense 16 relu
    out: dense 64
}
loss mse reduction=sum
optimizer adam lr=0.01
train {
    data builtin("digits")
    target input
    split val=0.2
    batch 64
    epochs 1
    seed 0
    standardize
}
"""
# one spec per layer family: every kind the converter is asked to express
ONNX_CASES = {
    "vae_sample": VAE,
    "graph_transpose_upsampling": GRAPH,
    "dense_norm_dropout": SPEC.replace("    dropout 0.3", "    dropout 0.3\n    layer_norm"),
    "conv2d_pooling": DIGITS,
    "rescale": DIGITS.replace("    input image[8, 8, 1]\n", "    input image[8, 8, 1]\n    rescale divide=16 offset=-0.5\n"),
    # augmentation trains with random flips and shifts and is the identity in the exported model
    "augmentation": DIGITS.replace("    input image[8, 8, 1]\n", "    input image[8, 8, 1]\n    random_flip horizontal\n"
                                   "    random_translation 0.1 0.1 fill_mode=nearest\n    random_rotation 0.05\n"
                                   "    random_zoom 0.1\n    random_contrast 0.2\n"),
    "conv1d": WAVES.format(name="c1d", layers="    conv1d 4 3 relu\n    max_pool1d 2\n    global_max_pool"),
    "pool1d_upsampling1d": WAVES.format(name="p1d", layers="    conv1d 4 3 relu\n    avg_pool1d 2\n    upsampling1d 2\n"
                                                          "    flatten"),
    "reshape_permute_merges": WAVES.format(name="moves", layers="    r: reshape [4, 5]\n    p: permute [2, 1]\n"
                                                               "    m: multiply p p\n    v: average p m\n    flatten"),
    "lstm": WAVES.format(name="lstm", layers="    lstm 8"),
    "simple_rnn": WAVES.format(name="rnn", layers="    simple_rnn 8"),
    "gru": WAVES.format(name="gru", layers="    gru 8"),
    # bidirectional, the last step's output and every step's, each merge
    "lstm_bidirectional": WAVES.format(name="bilstm", layers="    lstm 6 bidirectional=true"),
    "lstm_bidirectional_sequences": WAVES.format(
        name="bilstm_seq", layers="    lstm 6 sequences=true bidirectional=true\n    flatten"),
    "gru_bidirectional": WAVES.format(name="bigru", layers="    gru 6 bidirectional=true merge=sum"),
    "gru_bidirectional_sequences": WAVES.format(
        name="bigru_seq", layers="    gru 6 sequences=true bidirectional=true reset_after=false\n    flatten"),
    "simple_rnn_bidirectional": WAVES.format(name="birnn", layers="    simple_rnn 6 bidirectional=true merge=mean"),
    "simple_rnn_bidirectional_sequences": WAVES.format(
        name="birnn_seq", layers="    simple_rnn 6 sequences=true bidirectional=true\n    global_avg_pool"),
    "attention": TOKENS.format(name="att", layers="    position_embedding\n    self_attention heads=2"),
    "transformer": TOKENS.format(name="tr", layers="    position_embedding\n    transformer_encoder heads=2 ff=32"),
}


def _trained(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m.nn").write_text(text)
    code, _, err = run_cli("train", tmp_path / "m.nn", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    return tmp_path / "run"


def test_every_layer_kind_has_an_onnx_case() -> None:
    """The issue's bar: ONNX matches predict "for every layer kind that exists"."""
    import re
    from nnspec.layers import ACTIVATIONS, LAYERS
    activations = {a.name for a in ACTIVATIONS}
    models = "\n".join(ONNX_CASES.values())
    layers = {m.group(1) for m in re.finditer(r"^\s+(?:\w+: )?(\w+)", models, re.M)}
    assert [e.name for e in LAYERS if e.name not in activations and e.name not in layers] == []


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_onnx_matches_predict_in_onnxruntime(tmp_path, case) -> None:
    pytest.importorskip("jax2onnx")
    ort = pytest.importorskip("onnxruntime")
    run = _trained(tmp_path, ONNX_CASES[case])
    code, _, err = run_cli("export", run, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert code == 0, err
    model = nnspec.load(run)
    shape = model.program.model.input_shape
    rng = np.random.default_rng(0)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for n in (1, 7):
        if model.program.model.input_types[0].dtype == "int32":
            x = rng.integers(0, 10, (n, *shape)).astype(np.int32)
        else:
            x = rng.normal(size=(n, *shape)).astype(np.float32)
        (y,) = session.run(None, {"x": x})
        np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-5)
    if case == "conv2d_pooling":  # the check: the same class for every digit
        from sklearn.datasets import load_digits
        images = load_digits().images.astype(np.float32)[..., None]
        (y,) = session.run(None, {"x": images})
        np.testing.assert_array_equal(y.argmax(axis=1), model.predict(images).argmax(axis=1))


def test_a_layer_the_converter_fails_on_is_named_with_the_converters_reason(tmp_path, monkeypatch) -> None:
    pytest.importorskip("jax2onnx")
    pytest.importorskip("onnx")
    run = _trained(tmp_path, WAVES.format(name="both", layers="    both: gru 4 bidirectional=true"))
    # the backward direction as a reverse scan, as it was lowered before: jax2onnx fails on it
    import jax

    from nnspec.nn import recurrent
    monkeypatch.setattr(recurrent, "_scan", lambda cell, state, xs, *, reverse: jax.lax.scan(
        cell, state, xs, reverse=reverse))
    code, _, err = run_cli("export", run, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert (code, err) == (2, "error: jax2onnx cannot convert layer `both` (`gru`): Reverse scan is not supported "
                              "in IR pipeline.; export `--format stablehlo` instead\n")
    assert not (tmp_path / "m.onnx").exists()
    monkeypatch.undo()
    code, _, err = run_cli("export", run, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert code == 0 and (tmp_path / "m.onnx").is_file(), err


# ---------------------------------------------------------------------------- docs/export.md

DOC = Path(__file__).resolve().parent.parent / "docs" / "export.md"


def _fences(text: str) -> list[tuple[str, str]]:
    import re
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


@pytest.mark.slow
def test_every_example_in_docs_export_runs(tmp_path, monkeypatch) -> None:
    """The console blocks' commands, their output where shown (`…`: any), and the Python
    blocks, in order, in an empty folder holding the spec they train."""
    import shlex
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "pass_class.nn").write_text((DOC.parent.parent / "specs" / "pass_class.nn").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    try:
        import jax2onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        has_onnx = True
    except ImportError:
        has_onnx = False
    blocks = [(kind, text) for kind, text in _fences(DOC.read_text()) if kind in ("console", "python")]
    assert len(blocks) >= 6
    for kind, text in blocks:
        if "onnx" in text and not has_onnx:
            continue
        if kind == "python":
            exec(compile(text, str(DOC), "exec"), {"__name__": "__doc_example__"})
            continue
        lines = text.rstrip("\n").split("\n")
        status = None
        i = 0
        while i < len(lines):
            command, i = lines[i][2:], i + 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            if command == "echo $?":
                assert [str(status)] == expected, (command, status)
                continue
            argv = shlex.split(command)
            assert argv[0] == "nnspec"
            status, out, err = run_cli(*argv[1:])
            if expected != ["…"]:
                assert (err + out).splitlines() == expected, command
