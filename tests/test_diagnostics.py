"""Diagnostics as a first-week student meets them: one style (STYLE.md §7), spans under
the offending token, helps that work when followed, the JSON format, and `nnspec explain`.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from nnspec.check import check_source
from nnspec.checked import TrainProgram
from nnspec.cli import main
from nnspec.codes import CODES
from nnspec.diagnostics import Diagnostic
from nnspec.parse import SYNTAX_ERRORS, parse_collect
from nnspec.source import Source

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "tests" / "ui"
MEMORY_BUDGET = 16 * 2**30


def diagnose(text: str, filename: str = "spec.nn") -> tuple[list[Diagnostic], Source]:
    _, diags, src = check_source(text, filename, memory_budget=MEMORY_BUDGET)
    return diags, src


def ui_corpus() -> list[tuple[str, list[Diagnostic], Source]]:
    out = []
    for path in sorted(UI.glob("*.nn")):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # E024 comes from the CLI's file reading, tested through the JSON below
        diags, src = diagnose(text, f"tests/ui/{path.name}")
        out.append((path.stem, diags, src))
    return out


CORPUS = ui_corpus()
ALL = [(name, d, src) for name, diags, src in CORPUS for d in diags]


def errors(text: str) -> list[str]:
    diags, _ = diagnose(text)
    return [f"{d.code}: {d.message}" for d in diags if d.is_error]


def codes(text: str) -> list[str]:
    diags, _ = diagnose(text)
    return [d.code for d in diags]


# ------------------------------------------------------------------------------ style

def test_the_corpus_is_large() -> None:
    assert len(ALL) >= 80


@pytest.mark.parametrize("name,d", [(n, d) for n, d, _ in ALL], ids=lambda x: x if isinstance(x, str) else x.code)
def test_message_style(name: str, d: Diagnostic) -> None:
    """Lowercase, no trailing period, backticks paired; the same for labels and helps."""
    texts = [d.message] + [lab.message for lab in d.labels if lab.message]
    for text in texts:
        assert text == text.strip(), text
        assert not text[0].isupper(), f"{name}: starts uppercase: {text!r}"
        assert not text.endswith("."), f"{name}: ends with a period: {text!r}"
        assert text.count("`") % 2 == 0, f"{name}: unpaired backtick: {text!r}"
    if d.help is not None:
        assert not d.help.endswith("."), f"{name}: help ends with a period: {d.help!r}"
        assert d.help.count("`") % 2 == 0, f"{name}: unpaired backtick in help: {d.help!r}"
        assert not d.help[0].isupper(), f"{name}: help starts uppercase: {d.help!r}"
    # a fix goes under `help:`, not in the message
    assert "did you mean" not in d.message, d.message
    assert not re.match(r"(try|write|use|add|remove|replace|put|change)\b", d.message), d.message
    assert d.code in CODES


@pytest.mark.parametrize("name,d,src", ALL, ids=lambda x: x if isinstance(x, str) else "")
def test_spans_sit_on_tokens(name: str, d: Diagnostic, src: Source) -> None:
    """Every label covers text that starts and ends with a token, not with blanks; a
    zero-width caret is allowed only at the end of a line (`lr=` with nothing after)."""
    for lab in d.labels:
        covered = src.text[lab.span.start:lab.span.end]
        assert lab.span.start <= lab.span.end <= len(src.text)
        if covered in ("", "\n", "\r\n"):
            rest_of_line = src.text[lab.span.start:].split("\n", 1)[0]
            assert rest_of_line.strip() == "", f"{name}: empty span in the middle of a line"
            continue
        assert covered == covered.strip(), f"{name}: span {covered!r} has blanks at its ends"


def test_secondary_labels_never_hide_the_primary() -> None:
    for name, d, _ in ALL:
        assert sum(lab.primary for lab in d.labels) == 1, name


# ------------------------------------------------------------------------------ spans

def caret_line(text: str, name: str = "spec.nn") -> tuple[str, str]:
    """The source line and the caret line of the first diagnostic's primary label."""
    from nnspec.diagnostics import render
    diags, src = diagnose(text, name)
    lines = render(diags[0], src).splitlines()
    i = next(k for k, line in enumerate(lines) if "^" in line)
    return lines[i - 1].split("| ", 1)[1], lines[i].split("| ", 1)[1]


@pytest.mark.parametrize("text,token", [
    ("model m {\n    input x[2]\n    dense 8 rleu\n}\n", "rleu"),
    ("model m {\n    input x[2]\n    dense 8 relu init=he_norml\n}\n", "he_norml"),
    ("model m {\n    input x[2]\n    dense 1 sigmoid\n}\noptimizer adam lr=0\n", "0"),
    ("model m {\n    input x[2]\n    dense 1 sigmoid\n}\noptimizer adam learning_rate=0.1\n", "learning_rate"),
    ("model m {\n\tinput x[2]\n\tdense 8 relu\tinit=zeroes\n}\n", "zeroes"),
    ("# caf\u00e9 \u2713\nmodel m {\n    input x[2]\n    dense 8 r\u00e9lu\n}\n", "\u00e9"),
    ("model m {\r\n    input x[2]\r\n    dense 8 rleu\r\n}\r\n", "rleu"),
])
def test_carets_sit_exactly_under_the_token(text: str, token: str) -> None:
    source_line, carets = caret_line(text)
    start = carets.index("^")
    width = len(carets.split(" ", 1)[0] if not carets.startswith(" ") else carets[start:].split(" ", 1)[0])
    assert source_line.expandtabs(1)[start:start + width] == token.expandtabs(1)


# ------------------------------------------------------------------------------ helps that work

def _help(text: str, code: str) -> str:
    diags, _ = diagnose(text)
    found = [d for d in diags if d.code == code]
    assert found, [f"{d.code}: {d.message}" for d in diags]
    assert found[0].help is not None
    return found[0].help


def _ui(name: str) -> str:
    return (UI / f"{name}.nn").read_bytes().decode("utf-8")  # keeping `\r\n`, as the CLI does


def _assert_clean(text: str, *, warnings_too: bool = False) -> None:
    diags, _ = diagnose(text)
    bad = [f"{d.code}: {d.message}" for d in diags if d.is_error or warnings_too]
    assert not bad, bad


@pytest.mark.parametrize("name,code,suggested,old,new", [
    # UI case, code, the fix as the help spells it, and where it goes in the file
    ("constant_without_let", "E023", "let hidden = 64", "hidden = 64", "let hidden = 64"),
    ("missing_open_brace", "E007", "model m {", "model m\n", "model m {\n"),
    ("model_without_block", "E017", "model m {", "model m\nloss mse", "model m {\n    input x[1]\n    dense 1\n}\nloss mse"),
    ("too_many_positionals", "E107", "init=he_normal", "relu he_normal", "relu init=he_normal"),
    ("loss_as_string", "E103", "loss binary_crossentropy", 'loss "binary_crossentropy"', "loss binary_crossentropy"),
    ("dataset_features", "E311", "input x[2]", "input x[3]", "input x[2]"),
    ("dataset_classes", "E311", "dense 4 softmax", "dense 3 softmax", "dense 4 softmax"),
    ("bce_three_units", "E301", "dense 1 sigmoid", "dense 3 sigmoid", "dense 1 sigmoid"),
    ("bce_linear_output", "E302", "loss binary_crossentropy from_logits=true", "loss binary_crossentropy",
     "loss binary_crossentropy from_logits=true"),
    ("bce_linear_output", "E302", "sigmoid", "    dense 1\n", "    dense 1 sigmoid\n"),
    ("split_sum", "E308", "split val=0.2 test=0.1", "split val=0.5 test=0.5", "split val=0.2 test=0.1"),
    ("named_train_block", "E021", "train {", "train quick {", "train {"),
    ("loss_as_block", "E271", "loss binary_crossentropy", "loss {\n    binary_crossentropy\n}", "loss binary_crossentropy"),
    ("optimizer_as_block", "E019", "optimizer adam", "optimizer {\n    adam\n}", "optimizer adam"),
    ("label_on_setting", "E016", "size:", "size: batch", "batch"),
    ("val_monitor_without_split", "E307", "split val=0.2", "    early_stop", "    split val=0.2\n    early_stop"),
    ("early_stop_unmeasured", "E306", "accuracy", "    early_stop", "    metrics accuracy\n    early_stop"),
    ("dense_after_image_input", "E201", "flatten", "    dense 32 relu", "    flatten\n    dense 32 relu"),
    ("weights_and_init", "E108", "init", " init=he_normal", ""),
    ("duplicate_argument", "E105", "remove one of them", " activation=tanh", ""),
    ("unknown_argument", "E102", "lr", "learning_rate=", "lr="),
    ("accuracy_with_mse", "E305", "mae", "metrics accuracy", "metrics mae"),
    ("missing_loss_and_optimizer", "E112", "loss binary_crossentropy", "train {",
     "loss binary_crossentropy\noptimizer sgd lr=0.1\ntrain {"),
    # shapes and graphs of the layer families: each help's fix, made as it says
    ("shape_conv_after_flatten", "E220", "remove this `flatten`", "relu\n    flatten\n", "relu\n"),
    ("shape_dense_after_sequences", "E201", "remove `sequences=true`", " sequences=true", ""),
    ("shape_dense_after_sequences", "E201", "add a `flatten` layer", "    dense", "    flatten\n    dense"),
    ("shape_add_channels", "E252", "join them with `concat`", "add a b", "concat a b"),
    ("shape_add_channels", "E252", "make the last axis 16", "b: conv2d 8", "b: conv2d 16"),
    ("shape_concat_spatial", "E252", "`padding=same`", "a: conv2d 16 3 relu\n", "a: conv2d 16 3 relu padding=same\n"),
    ("shape_concat_ranks", "E252", "`flatten` each input", "    c: concat a b", "    fb: flatten from b\n    c: concat a fb"),
    ("shape_embedding_numbers", "E254", "input words[20] int vocab=N", "input words[20]", "input words[20] int vocab=50"),
    ("shape_lstm_token_ids", "E254", "embedding DIM", "    lstm", "    embedding 8\n    lstm"),
    ("graph_embedding_after_layer", "E254", "embedding ... from words", "4 vocab=30\n", "4 vocab=30 from words\n"),
    ("shape_pool_leaves_nothing", "E221", "padding=same", "2\n    flatten", "2 padding=same\n    flatten"),
    ("shape_pool_leaves_nothing", "E221", "a `size` of at most 1", "2\n    flatten", "1\n    flatten"),
    ("shape_permute_axis_zero", "E245", "permute [2, 1]", "permute [0, 1]", "permute [2, 1]"),
    ("shape_reshape_not_divisor", "E242", "reshape [2, -1]", "    reshape [3, -1]", "    reshape [2, -1]"),
    ("shape_conv1d_flat_series", "E220", "input wave[20, 1]", "input wave[20]", "input wave[20, 1]"),
    ("shape_lstm_flat_digits", "E230", "reshape [64, 1]", "    lstm", "    reshape [64, 1]\n    lstm"),
    ("shape_upsampling_after_dense", "E220", "reshape [8, 8, 1]", "    upsampling2d", "    reshape [8, 8, 1]\n    upsampling2d"),
    ("recurrent_stacked_without_sequences", "E230", "sequences=true", "lstm 32\n", "lstm 32 sequences=true\n"),
    ("recurrent_flat_input", "E230", "input wave[20, 1]", "input wave[20]", "input wave[20, 1]"),
    ("attention_heads_split", "E243", "heads=3", "heads=4", "heads=3"),
    ("attention_flat_input", "E240", "input x[8, 8]", "input x[64]", "input x[8, 8]"),
    ("conv_global_pool_flat", "E220", "remove this `flatten`", "relu\n    flatten\n", "relu\n"),
    ("conv_missing_channel_axis", "E220", "input image[28, 28, 1]", "image[28, 28]", "image[28, 28, 1]"),
    ("graph_cycle", "E251", "such as `x`", "from b", "from x"),
    ("recurrent_image_input", "E230", "reshape [8, 8]", "    gru", "    reshape [8, 8]\n    gru"),
    ("conv_pool1d_on_image", "E220", "max_pool2d", "    max_pool1d 2", "    max_pool2d 2"),
    ("conv_kernel_too_large", "E221", "padding=same", "conv2d 8 3 relu", "conv2d 8 3 relu padding=same"),
    ("conv_dilation_too_large", "E221", "a `dilation` of at most 3", "dilation=4", "dilation=3"),
    ("conv_pool_window_too_large", "E221", "a `size` of at most 4", "avg_pool1d 5", "avg_pool1d 4"),
    ("attention_position_table", "E244", "steps=8", "steps=4", "steps=8"),
    ("attention_reshape_count", "E242", "reshape [8, -1]", "    reshape [8, 9]", "    reshape [8, -1]"),
    ("shape_conv_digits_as_numbers", "E311", 'data builtin("digits", image=true)', 'builtin("digits")',
     'builtin("digits", image=true)'),
])
def test_following_the_help_fixes_the_error(name: str, code: str, suggested: str, old: str, new: str) -> None:
    text = _ui(name)
    help_ = _help(text, code)
    assert f"`{suggested}`" in help_ or suggested in help_, help_
    assert text.count(old) == 1, old
    _assert_clean(text.replace(old, new))


@pytest.mark.parametrize("name,d", [(n, d) for n, d, _ in ALL
                                    if d.help and d.help.startswith("did you mean")],
                         ids=lambda x: x if isinstance(x, str) else x.code)
def test_every_did_you_mean_names_a_working_fix(name: str, d: Diagnostic) -> None:
    """Replace the flagged token with the suggestion: that diagnostic must go away, and
    in a case with a single error the whole file must then check clean."""
    text = _ui(name)
    suggestion = re.fullmatch(r"did you mean `([^`]+)`\?", d.help or "")
    assert suggestion, d.help
    span = d.primary_span
    assert span is not None
    word = text[span.start:span.end]
    new = f'"{suggestion.group(1)}"' if word.startswith('"') else suggestion.group(1)
    fixed = text[:span.start] + new + text[span.end:]
    diags, _ = diagnose(fixed)
    assert not any(x.code == d.code and x.primary_span == span for x in diags)
    original, _ = diagnose(text)
    if sum(x.is_error for x in original) == 1:
        assert not [x for x in diags if x.is_error], [x.message for x in diags]


def test_a_declared_input_comes_with_the_data_that_fits_it() -> None:
    """`conv2d` on the 64 numbers of the digits: the help declares an image and loads the
    digits as images, both, so that following it checks clean (either alone does not)."""
    text = _ui("conv_flat_input")
    help_ = _help(text, "E220")
    assert "declare `input x[8, 8, 1]`" in help_ and '`data builtin("digits", image=true)`' in help_, help_
    image = text.replace("input x[64]", "input x[8, 8, 1]")
    assert [d.code for d in diagnose(image)[0] if d.is_error] == ["E311"]
    _assert_clean(image.replace('builtin("digits")', 'builtin("digits", image=true)'))


def test_independent_errors_are_all_reported_and_nothing_follows_from_them() -> None:
    """An unknown layer, a shape mistake in a branch that does not read it, and a loss that
    does not fit the output: all three in one run, and nothing about the layers below the
    unknown one (their input's shape is unknown, so they are not checked against it)."""
    text = _ui("graph_all_errors_reported")
    diags, src = diagnose(text)
    found = [(d.code, src.line_col(d.primary_span.start)[0]) for d in diags if d.is_error]  # type: ignore[union-attr]
    assert [c for c, _ in found][:2] == ["E101", "E221"] and found[2][0] in ("E301", "E302"), found
    assert [line for _, line in found] == [5, 8, 11], found
    # each fix removes its own error only: none hid another
    for old, new, gone in [("cnov2d", "conv2d", "E101"), ("conv2d 8 9", "conv2d 8 3", "E221"),
                           ("binary_crossentropy", "categorical_crossentropy", found[2][0])]:
        left = [d.code for d in diagnose(text.replace(old, new))[0] if d.is_error]
        assert left == [c for c, _ in found if c != gone], (old, left)


def test_a_merge_error_does_not_blame_the_layer_above() -> None:
    """`concat ... axis=1` of flat vectors: the axis is wrong, not the `flatten` before it."""
    text = ("model m {\n    input a[2, 2]\n    input b[2, 2]\n    fa: flatten from a\n    fb: flatten from b\n"
            "    c: concat fa fb axis=1\n    dense 1\n}\n")
    diags, _ = diagnose(text)
    assert [(d.code, d.help) for d in diags] == [
        ("E252", "an input of shape (4,) has axes -1 to 0: leave `axis` out to join along the last")]
    assert len(diags[0].labels) == 1
    _assert_clean(text.replace(" axis=1", ""))


def test_the_switch_to_turn_is_found_inside_a_block_too() -> None:
    """A `dense` after a block whose last layer passes on every step: the help names the
    `sequences=true` to remove, and the model checks clean without it."""
    text = ("block rec(n) {\n    lstm n sequences=true\n}\n\nmodel m {\n    input x[20, 1]\n    r: rec 8\n"
            "    dense 1\n}\n")
    help_ = _help(text, "E201")
    assert help_.startswith("remove `sequences=true` from the `lstm` it reads; or add a `flatten`"), help_
    _assert_clean(text.replace(" sequences=true", ""))


def test_e311_task_help_names_loss_and_output() -> None:
    text = _ui("dataset_task")
    assert "`binary_crossentropy`" in _help(text, "E311") and "`dense 1 sigmoid`" in _help(text, "E311")
    _assert_clean(text.replace("loss mse", "loss binary_crossentropy").replace("    dense 1\n", "    dense 1 sigmoid\n"))


def test_e303_either_fix_works() -> None:
    text = _ui("softmax_from_logits")
    help_ = _help(text, "E303")
    assert "remove `softmax`" in help_ and "`from_logits=true`" in help_
    _assert_clean(text.replace("dense 3 softmax", "dense 3"))
    _assert_clean(text.replace(" from_logits=true", ""))


def test_e309_fix_works() -> None:
    text = _ui("adamw_weight_decay_twice")
    assert "remove it from `regularize`" in _help(text, "E309")
    _assert_clean(text.replace("regularize weight_decay=0.01\n", ""))


def test_quoted_activation_help_works() -> None:
    text = "model m {\n    input x[2]\n    dense 8 activation=\"relu\"\n    dense 1 sigmoid\n}\n"
    assert "`relu`" in _help(text, "E103")
    _assert_clean(text.replace('"relu"', "relu"))


def test_missing_units_names_the_order() -> None:
    text = "model m {\n    input x[2]\n    dense relu\n    dense 1 sigmoid\n}\n"
    assert errors(text) == ["E106: missing `units` for `dense`"]
    assert _help(text, "E106") == "write `dense UNITS relu`"
    _assert_clean(text.replace("dense relu", "dense 8 relu"))


def test_warning_helps_remove_the_warning() -> None:
    text = _ui("warn_early_stop_training_loss")
    help_ = _help(text, "W005")
    assert "`val_loss`" in help_ and "`split val=0.2`" in help_
    _assert_clean(text.replace("monitor=loss", "monitor=val_loss").replace("    epochs 20\n", "    epochs 20\n    split val=0.2\n"),
                  warnings_too=True)
    text = _ui("warn_deep_sigmoid")
    assert "use `relu` in hidden layers" in _help(text, "W002")
    _assert_clean(text.replace("dense 16 sigmoid", "dense 16 relu"), warnings_too=True)


# ------------------------------------------------------------------------------ cascades

def test_an_unreadable_number_is_reported_once() -> None:
    """The parser stands in 0 for `1.2.3`; the checker must not then call 0 out of range."""
    text = "model m {\n    input x[2]\n    dense 1 sigmoid\n}\noptimizer adam lr=1.2.3\n"
    assert codes(text) == ["E015"]


def test_a_dropped_section_is_not_also_missing() -> None:
    assert codes("model m\nloss mse\n") == ["E017"]
    assert codes("model m {\n    input [2]\n    dense 1\n}\n") == ["E022"]


def test_a_misspelt_setting_is_not_also_missing() -> None:
    text = _ui("misspelt_data")
    assert codes(text) == ["E101"]


def test_a_misnamed_argument_is_not_also_missing() -> None:
    text = "model m {\n    input x[2]\n    dense 8 relu\n    dropout rate=0.5\n    dense 1 sigmoid\n}\n"
    assert errors(text) == ["E102: unknown argument `rate` for `dropout`"]
    assert "`drop_prob`" in _help(text, "E102")


def test_a_typo_does_not_make_its_constant_unused() -> None:
    text = _ui("undefined_constant")
    assert codes(text) == ["E109"]


# ------------------------------------------------------------------------------ syntax table

@pytest.mark.parametrize("label,example", [(label, ex) for label, exs in SYNTAX_ERRORS.items() for ex in exs],
                         ids=lambda x: x[0] if isinstance(x, tuple) else repr(x))
def test_syntax_examples_name_their_own_mistake(label: tuple, example: str) -> None:
    _, diags, _ = parse_collect(example)
    assert [d.code for d in diags] == [label[0]]


@pytest.mark.parametrize("text,code", [
    # the same mistakes after other statements and inside blocks, where the parser's
    # state (and the depth of its stack) differs from the table's examples
    ("model m {\n    input x[2]\n    64 relu\n}\n", "E014"),
    ("model m {\n    input x[2]\n    dense 1 weights=[[3] [-2]]\n}\n", "E011"),
    ("train {\n    data builtin(\"moons\" n=3)\n}\n", "E012"),
    ("model m {\n    input x[2]\n    h1:\n}\n", "E013"),
    ("model m {\n    input x[2]\n    train {\n", "E010"),
    ("model m {\n    input x[2]\n}\n}\n", "E007"),
    ("model m {\n    input x[2]\n    dense 1 init=normal(stddev=0.1\n}\n", "E002"),
    ("let w = [[1, 2],\n  [3, 4]\n  [5, 6]]\n", "E011"),
    ("optimizer adam lr 0.01 = 3\n", "E001"),
    ("loss mse )\n", "E001"),
])
def test_syntax_errors_are_named_in_any_context(text: str, code: str) -> None:
    _, diags, _ = parse_collect(text)
    assert [d.code for d in diags] == [code]


def test_braces_may_close_on_a_statement_line() -> None:
    one_line = "model m { input x[2]\n    dense 1 sigmoid }\ntrain { data builtin(\"moons\") }\n"
    spec, diags, _ = parse_collect(one_line)
    assert spec is not None and not diags
    spaced = "model m {\n    input x[2]\n    dense 1 sigmoid\n}\ntrain {\n    data builtin(\"moons\")\n}\n"
    assert spec == parse_collect(spaced)[0]


# ------------------------------------------------------------------------------ JSON

def run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(importlib.import_module("nnspec.check"), "physical_memory", lambda: MEMORY_BUDGET)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_format(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(["check", "--format", "json", "tests/ui/unknown_activation.nn"], capsys, monkeypatch)
    assert code == 1 and err == ""
    assert json.loads(out) == [{
        "severity": "error",
        "code": "E101",
        "message": "unknown activation `rleu`",
        "file": "tests/ui/unknown_activation.nn",
        "labels": [{"start": 73, "end": 77, "message": "not a known activation", "primary": True,
                    "line": 4, "col": 13, "end_line": 4, "end_col": 17}],
        "help": "did you mean `relu`?",
        "notes": [],
    }]


def test_json_secondary_labels_and_notes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(["check", "--format", "json", "tests/ui/duplicate_let.nn", "tests/ui/memory_budget.nn"],
                       capsys, monkeypatch)
    assert code == 1
    dup, mem = json.loads(out)
    assert [(lab["primary"], lab["line"], lab["col"], lab["end_line"], lab["end_col"], lab["message"])
            for lab in dup["labels"]] == [(True, 3, 5, 3, 11, "defined again here"),
                                          (False, 2, 5, 2, 11, "first defined here")]
    assert mem["code"] == "E310" and mem["notes"] == ["the memory budget is 16.0 GiB"]
    assert mem["file"] == "tests/ui/memory_budget.nn"


def test_json_for_a_clean_file_and_warnings(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(["check", "--format", "json", "tests/ui/clean_one_line_blocks.nn"], capsys, monkeypatch)
    assert (code, json.loads(out), err) == (0, [], "")
    code, out, err = run(["check", "--format", "json", "tests/ui/warnings_only.nn"], capsys, monkeypatch)
    assert code == 0 and err == ""
    assert [(d["severity"], d["code"]) for d in json.loads(out)] == [
        ("warning", "W004"), ("warning", "W006"), ("warning", "W001")]


def test_json_for_a_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(["check", "--format", "json", "tests/ui/not_utf8.nn"], capsys, monkeypatch)
    assert code == 1
    (d,) = json.loads(out)
    assert d["code"] == "E024" and d["file"] == "tests/ui/not_utf8.nn"
    assert (d["labels"][0]["line"], d["labels"][0]["col"]) == (1, 19)


def test_json_covers_the_whole_corpus(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every UI case in one run: the same diagnostics as the text output, well formed."""
    paths = [f"tests/ui/{p.name}" for p in sorted(UI.glob("*.nn"))]
    code, out, err = run(["check", "--format", "json", *paths], capsys, monkeypatch)
    assert code == 1 and err == ""
    diags = json.loads(out)
    assert {"severity", "code", "message", "file", "labels", "help", "notes"} == set(diags[0])
    for d in diags:
        assert d["severity"] in ("error", "warning") and d["code"] in CODES
        assert d["file"] in paths
        for lab in d["labels"]:
            assert 1 <= lab["line"] <= lab["end_line"] and lab["col"] >= 1 and lab["end_col"] >= 1
            assert (lab["line"], lab["col"]) <= (lab["end_line"], lab["end_col"])
    headers = []
    for p in sorted(UI.glob("*.stderr")):
        headers += re.findall(r"^(?:error|warning)\[(\w+)\]: (.*)$", p.read_text(encoding="utf-8"), re.M)
    assert sorted((d["code"], d["message"]) for d in diags) == sorted(headers)


# ------------------------------------------------------------------------------ explain

def _catalog_examples() -> list[tuple[str, str]]:
    out = []
    for code, (_, text) in CODES.items():
        for block in re.findall(r"\n\n((?:    .*\n?)+)", text):
            out.append((code, "\n".join(line[4:] for line in block.splitlines()) + "\n"))
    return out


@pytest.mark.parametrize("code,example", _catalog_examples())
def test_catalog_examples_produce_their_code(code: str, example: str) -> None:
    """The examples in `nnspec explain` texts, as written or with the statements that
    are not `let` put inside a model block."""
    lines = example.splitlines()
    lets = [line for line in lines if line.startswith("let ")]
    body = [line for line in lines if not line.startswith("let ")]
    wrapped = "\n".join(lets + ["model m {", "    input x[2]", *("    " + b for b in body), "}"]) + "\n"
    assert code in codes(example) or code in codes(wrapped)



@pytest.mark.parametrize("code", sorted(CODES))
def test_explain_every_code(code: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = run(["explain", code], capsys, monkeypatch)
    title, text = CODES[code]
    assert status == 0 and err == ""
    assert out.startswith(f"{code}: {title}\n")
    assert text.strip() in out
    assert not title[0].isupper() and not title.endswith(".")


def test_explain_is_case_insensitive(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, _ = run(["explain", "e101"], capsys, monkeypatch)
    assert status == 0 and out.startswith("E101: unknown name\n")


def test_explain_unknown_code(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = run(["explain", "E999"], capsys, monkeypatch)
    assert status == 2 and out == ""
    assert err == "error: no diagnostic code `E999`\n"


def test_only_the_dropped_section_is_not_reported_missing() -> None:
    # `optimiser` was meant as the optimizer; the missing loss is a mistake of its own
    text = "model m {\n    input x[2]\n    dense 1 sigmoid\n}\noptimiser sgd\ntrain {\n    data builtin(\"moons\")\n}\n"
    assert errors(text) == ["E018: unknown section `optimiser`", "E112: training needs a `loss`"]


# ------------------------------------------------------------------------ divergence

DIVERGENCE = """\
model m {
    input x[2]
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd
train {
    data builtin("moons")
    %s
}
"""


@pytest.mark.parametrize("line,factor", [("", TrainProgram.divergence), ("divergence 100", 100.0),
                                         ("divergence factor=2.5", 2.5), ("divergence off", None)])
def test_divergence_sets_the_trainers_factor(line: str, factor: float | None) -> None:
    program, diags, _ = check_source(DIVERGENCE % line, "spec.nn", memory_budget=MEMORY_BUDGET)
    assert program is not None and diags == []
    assert program.train is not None and program.train.divergence == factor


@pytest.mark.parametrize("line,error", [
    ("divergence 1", "E104: `1` is out of range: must be > 1"),
    ("divergence 0.5", "E104: `0.5` is out of range: must be > 1"),
    ("divergence of", "E104: `of` is not one of `off`"),
    ("divergence", "E106: missing `factor` for `divergence`"),
    ("divergence \"off\"", "E103: expected a number > 1 or one of `off`, found the string `\"off\"`"),
])
def test_divergence_factor_is_checked(line: str, error: str) -> None:
    assert errors(DIVERGENCE % line) == [error]


def test_nnspec_check_refuses_a_divergence_factor_of_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.nn"
    spec.write_text(DIVERGENCE % "divergence 1", encoding="utf-8")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "error[E104]: `1` is out of range: must be > 1" in err and "divergence 1" in err


# ---------------------------------------------------------------- every help, swept
# Mistakes made on purpose at every registry row (an unknown name, a misspelling, no
# arguments, an unknown argument, too many positionals, a wrong value for each
# parameter), so that every help the registries can generate is read, not only the
# ones the UI corpus happens to reach.

from nnspec.check import REGULARIZE, TRAIN  # noqa: E402
from nnspec.datasets import DATASETS, SOURCES  # noqa: E402
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS  # noqa: E402
from nnspec.losses import LOSSES, METRICS  # noqa: E402
from nnspec.optim import OPTIMIZERS, SCHEDULES  # noqa: E402
from nnspec.params import Choice, Entry, Union  # noqa: E402

_KINDS = {"layer": LAYERS, "activation": ACTIVATIONS, "initializer": INITIALIZERS, "loss": LOSSES,
          "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "metric": METRICS, "dataset": DATASETS,
          "data source": SOURCES, "train setting": TRAIN}
_CALLED = ("activation", "initializer", "schedule", "data source")  # written `name(args)`
_HEADED = ("loss", "optimizer")  # written `loss name args`


def _site(kind: str, text: str, name: str = "") -> str:
    """A spec, clean but for `text` in the place where a `kind` goes."""
    body, top, data, train = "", "", 'data builtin("moons")', "    split val=0.2\n"
    if kind == "layer" and LAYERS.get(name) is not None and LAYERS.get(name).attrs.get("tokens"):  # type: ignore[union-attr]
        # a layer of token ids reads an `int` input, and its (steps, dim) output is flattened;
        # the built-in token data fits it
        return (f"model m {{\n    input x[2] int vocab=10\n    {text}\n    flatten\n    dense 1 sigmoid\n}}\n"
                f"loss binary_crossentropy\noptimizer sgd\ntrain {{\n    data builtin(\"order\", steps=2)\n{train}}}\n")
    cases = LAYERS.get(name).attrs.get("examples", ()) if kind == "layer" and name in LAYERS else ()  # type: ignore[union-attr]
    if cases and len(cases[0][0]) > 1:
        # a layer that reads more than a flat vector (a sequence, an image) gets the input of
        # its first shape example (no built-in data has that shape: no `train` block), and its
        # output is flattened for the dense output layer
        dims = ", ".join(map(str, cases[0][0]))
        return (f"model m {{\n    input x[{dims}]\n    {text}\n    flatten\n    dense 1 sigmoid\n}}\n"
                f"loss binary_crossentropy\noptimizer sgd\n")
    if kind == "layer":
        body = f"    {text}\n"
    elif kind in ("activation", "initializer"):
        body = f"    dense 4 {'activation' if kind == 'activation' else 'init'}={text}\n"
    elif kind in _HEADED:
        other = "optimizer sgd" if kind == "loss" else "loss binary_crossentropy"
        task = LOSSES.get(name).attrs["task"] if name in LOSSES else "binary"  # type: ignore[union-attr]
        out = {"binary": "dense 1 sigmoid", "multiclass": "dense 3 softmax", "regression": "dense 1"}[task]
        return f"model m {{\n    input x[2]\n    {out}\n}}\n{kind} {text}\n{other}\n"
    elif kind == "schedule":
        return f"model m {{\n    input x[2]\n    dense 1 sigmoid\n}}\nloss binary_crossentropy\noptimizer sgd lr={text}\n"
    elif kind == "regularize":
        top = f"regularize {text}\n"
    elif kind == "metric":
        train += f"    metrics {text}\n"
    elif kind == "dataset":
        data = f"data builtin({text})"
    elif kind == "data source" or name == "data":
        data = text if name == "data" else f"data {text}"
    else:  # a train setting
        train = ("" if name == "split" else train) + f"    {text}\n"
        if name in ("categorical", "missing"):  # they encode a table's cells: a CSV file's
            data = 'data csv("t.csv", target="y")'
        if name == "sample_weight":  # it reads a column of a CSV file
            data = 'data csv("t.csv", target="y")'
        if name == "stream":  # it reads `.npy` files, a window of whole batches at a time
            data, train = 'data npy(x="x.npy", y="y.npy")', "    batch 1\n" + train
    out = "dense 2 sigmoid" if name == "target" else "dense 1 sigmoid"  # `target input`: an autoencoder
    shape = "2"
    if kind == "data source" and name == "images":  # a folder of images needs an image input
        shape, body = "8, 8, 3", "    flatten\n"
    return (f"model m {{\n    input x[{shape}]\n{body}    {out}\n}}\nloss binary_crossentropy\n"
            f"optimizer sgd\n{top}train {{\n    {data}\n{train}}}\n")


def _written(kind: str, name: str, args: list[str]) -> str:
    if kind == "dataset":
        return ", ".join([f'"{name}"', *args])
    if kind in _CALLED:
        return f"{name}({', '.join(args)})"
    return " ".join([name, *args])


def _mistakes() -> list[tuple[str, Entry, str]]:
    """(kind, row, spec text) for every mistake made at every row."""
    out = []
    for kind, registry in _KINDS.items():
        out.append((kind, registry.entries[0], _site(kind, _written(kind, "zzqq", []))))
        for e in registry:
            typo = e.name[:-1] if len(e.name) > 3 else e.name + "x"
            args = [[], ["zzqq=1"], ["7"] * 6] + [[f"{p.name}={bad}"] for p in e.params
                                                    for bad in ('"s"', "-1e9", "1e9", "zzqq", "[1]", "true")]
            out.append((kind, e, _site(kind, _written(kind, typo, []), e.name)))
            out += [(kind, e, _site(kind, _written(kind, e.name, a), e.name)) for a in args]
    for p in REGULARIZE.params:
        out += [("regularize", REGULARIZE, _site("regularize", f"{p.name}={bad}")) for bad in ('"s"', "-1", "zzqq")]
    return out


MISTAKES = _mistakes()
SWEPT = [(kind, e, text, d) for kind, e, text in MISTAKES for d in diagnose(text)[0]]


def _every_help() -> dict[str, str]:
    """Each distinct help line -> where it came from: the sweep, the UI corpus, the catalog."""
    helps: dict[str, str] = {}
    for kind, e, _text, d in SWEPT:
        helps.setdefault(d.help or "", f"{d.code} at {kind} `{e.name}`")
    for name, d in [(n, d) for n, d, _ in ALL]:
        helps.setdefault(d.help or "", f"{d.code} in tests/ui/{name}.nn")
    for code, example in _catalog_examples():
        for d in diagnose(example)[0]:
            helps.setdefault(d.help or "", f"{d.code} in the example of `nnspec explain {code}`")
    helps.pop("", None)
    return helps


HELPS = _every_help()


def test_the_help_sweep_is_large() -> None:
    assert len(MISTAKES) > 1000 and len(HELPS) > 300


@pytest.mark.parametrize("help_", sorted(HELPS))
def test_every_help_reads_right(help_: str) -> None:
    """No `losss` (a plural made by appending `s`), no doubled word, no stray spacing,
    no `...` placeholder left in a doc string."""
    where = HELPS[help_]
    prose = re.sub(r"`[^`]*`", "`x`", help_)  # code may repeat letters; words may not
    assert not re.search(r"([a-z])\1\1", prose), (where, help_)
    assert not re.search(r"\b(\w+) \1\b", prose), (where, help_)
    assert "  " not in help_ and " ;" not in help_ and " ," not in help_, (where, help_)
    assert not re.search(r"(^|[:;] )\.\.\.|\.\.\.$", prose), (where, help_)  # a doc left unfinished


def _fill(snippet: str, kind: str, e: Entry) -> str:
    """A `write` snippet with each placeholder (`UNITS`, `"PATH"`) replaced by a value its
    parameter accepts, and a `loss`/`optimizer` head dropped (the site writes it)."""
    from nnspec.check import _Checker
    from nnspec.parse import parse
    values = {}
    # a layer's positional values may depend on its input (`permute [2, 1]`): its first
    # shape example, the input `_site` gives it, shows values that fit
    cases = e.attrs.get("examples", ()) if kind == "layer" else ()
    if cases:
        written = [t for t in re.findall(r"\[[^\]]*\]|\S+", cases[0][1])[1:] if "=" not in t]
        values.update({p.name.upper(): t for p, t in zip(e.positionals, written)})
    for p in e.params:
        if p.name.upper() in values:
            continue
        # `precision bf16`: a word it names; `stream auto`: one of a union's (a number may
        # need to fit other settings of the site, as `stream 2` its batch: E332)
        choices = p.type.options if isinstance(p.type, Union) else (p.type,)
        words = tuple(w for c in choices if isinstance(c, Choice) for w in c.options)
        for text in (*words, "2", "1.5", "0.5", "true", '"moons"', 'builtin("moons")',
                     *(f"{n}" for n in ("relu", "zeros", "accuracy"))):
            checker = _Checker(parse("", "x.nn"), None, None)
            try:
                checker.convert(p.type, parse(f"let v = {text}\n").lets[0].value)
            except Exception:
                continue
            if checker.diags:  # an unknown name is reported, not raised
                continue
            values[p.name.upper()] = text
            break
    filled = re.sub(r'"?\b([A-Z][A-Z_0-9]+)\b"?', lambda m: values.get(m.group(1), m.group(0)), snippet)
    if kind in _HEADED:
        filled = filled.split(" ", 1)[1]
    return filled


_WRITES = sorted({(kind, e.name, m.group(1), d.code) for kind, e, text, d in SWEPT if d.code in ("E106", "E107")
                  for m in re.finditer(r"write (`[^`]+`)", d.help or "")})


@pytest.mark.parametrize("kind,name,snippet,code", _WRITES)
def test_every_write_help_checks_when_followed(kind: str, name: str, snippet: str, code: str) -> None:
    """The statement or call a `write ...` help shows, with its placeholders filled in,
    checks clean where the mistake was made: test your hints."""
    # the row the snippet writes: the one the mistake was made at, or the call around it
    head = re.match(r"(?:loss |optimizer )?(\w+)", snippet.strip("`")).group(1)  # type: ignore[union-attr]
    kind, e = next((k, r.get(head)) for k, r in [(kind, _KINDS[kind]), *_KINDS.items()] if head in r)
    assert e is not None
    fixed = _site(kind, _fill(snippet.strip("`"), kind, e), e.name)
    assert not [x for x in diagnose(fixed)[0] if x.is_error], (snippet, fixed, errors(fixed))


def test_check_leaves_a_sigmoid_regression_output_to_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An autoencoder of pixels ends in `sigmoid` under `mse`, rightly: only the targets
    can say whether a bounded output is wrong, so W003 is given by training, not `check`."""
    spec = tmp_path / "pixels.nn"
    spec.write_text("model pixels {\n    input x[64]\n    dense 16 relu\n    dense 64 sigmoid\n}\n"
                    "loss mse\noptimizer adam\n", encoding="utf-8")
    assert main(["check", str(spec)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("line,error,note", [
    ("optimizer sgd lr=sweep(0.1, 0.2, -1)", "E104: `-1` is out of range: must be > 0", "lr=-1"),
    ("optimizer sgd lr=sweep(0.1, 0.2) momentum=sweep(0, 0.5, 2)", "E104: `2` is out of range: must be ≥ 0 and < 1",
     "lr=0.1, momentum=2"),
])
def test_a_bad_value_late_in_a_sweep_is_found(line: str, error: str, note: str) -> None:
    """Only the first model of a group is checked in full; the rest re-bind their swept
    numbers, and a bad one is still reported, naming its model."""
    text = ("model m {\n    input x[2]\n    dense 4 relu\n    dropout sweep(0.1, 0.2)\n    dense 1 sigmoid\n}\n"
            f"loss binary_crossentropy\n{line.replace('sgd', 'momentum') if 'momentum=' in line else line}\n")
    diags, _ = diagnose(text)
    bad = [d for d in diags if d.is_error]
    assert [f"{d.code}: {d.message}" for d in bad] == [error]
    assert bad[0].notes == (f"in the model with dropout_1.drop_prob=0.1, {note}",)


def test_a_sweeps_models_carry_their_own_values() -> None:
    text = ("model m {\n    input x[2]\n    dense sweep(2, 3) relu\n    dropout sweep(0.1, 0.2)\n    dense 1 sigmoid\n}\n"
            "loss binary_crossentropy\noptimizer adam lr=sweep(0.01, 0.1)\n"
            'train {\n    data builtin("moons")\n    seed sweep(1, 2)\n}\n')
    program, diags, _ = check_source(text, "spec.nn", memory_budget=MEMORY_BUDGET)
    assert program is not None and program.sweep is not None and diags == []
    got = [(p.model.layers[0].params["units"], p.model.layers[1].params["drop_prob"], p.optimizer.params["lr"],
            p.train.seed, p.model.layers[0].param_shapes["w"]) for p in program.sweep.programs]  # type: ignore[union-attr]
    assert got == [(u, d, lr, s, (2, u)) for u in (2, 3) for d in (0.1, 0.2) for lr in (0.01, 0.1) for s in (1, 2)]
