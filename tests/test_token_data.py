"""The built-in token datasets `brackets` and `order`: what they hold, that their labels
are right (against reference labellers checked on hand-made cases), that only the
tokens' order tells the classes apart, and that the checker fits them to `int` inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.data import Dataset, load
from nnspec.datasets import DATASETS, DataSource, input_of, vocab_of
from nnspec.diagnostics import NNSpecError

BRACKET = {"(": 1, ")": 2, ".": 0}


def builtin(name: str, *, seed: int = 0, **params) -> Dataset:
    return load(DataSource.of("builtin", name=name, **params), seed=seed, base_dir=Path("."))


def ids(text: str) -> np.ndarray:
    return np.array([BRACKET[c] for c in text])


def balanced(tokens: np.ndarray) -> bool:
    """Reference: no prefix closes more brackets than it opens, and all are closed."""
    depth = 0
    for t in tokens:
        depth += {1: 1, 2: -1}.get(int(t), 0)
        if depth < 0:
            return False
    return depth == 0


def one_first(tokens: np.ndarray) -> bool:
    """Reference: the first 1 comes before the first 2."""
    return list(tokens).index(1) < list(tokens).index(2)


@pytest.mark.parametrize("text,want", [
    ("()", True), (")(", False), ("(())()", True), ("())(()", False), ("((()))..", True),
    ("(()", False), ("))((", False), ("()()()()", True), ("(()))(()", False),
])
def test_bracket_reference_on_hand_made_strings(text, want):
    assert balanced(ids(text)) is want


@pytest.mark.parametrize("tokens,want", [
    ([1, 2], True), ([2, 1], False), ([3, 1, 5, 5, 2], True), ([4, 2, 3, 3, 1, 3], False),
])
def test_order_reference_on_hand_made_sequences(tokens, want):
    assert one_first(np.array(tokens)) is want


@pytest.mark.parametrize("steps", [4, 5, 12, 20])
def test_brackets_hold_padded_strings_whose_labels_are_right(steps):
    ds = builtin("brackets", n=400, steps=steps)
    x, y = ds.x.astype(np.int64), ds.y[:, 0]
    assert ds.x.shape == (400, steps) and ds.features == (steps,)
    assert np.array_equal(ds.x, x) and set(np.unique(x)) <= {0, 1, 2}
    assert [balanced(row) for row in x] == list(y == 1)
    length = (x != 0).sum(1)
    # the padding only at the end; even lengths from steps/2 to steps
    assert all((row[:n] != 0).all() and (row[n:] == 0).all() for row, n in zip(x, length))
    assert (length % 2 == 0).all() and length.min() >= steps / 2 and length.max() <= steps
    # as many ( as ) in both classes: the counts tell nothing
    assert ((x == 1).sum(1) == (x == 2).sum(1)).all()


def test_brackets_classes_are_balanced_shuffled_and_alike_in_length():
    ds = builtin("brackets", n=1000, steps=20)
    y, length = ds.y[:, 0], (ds.x != 0).sum(1)
    assert y.sum() == 500 and 0.3 < y[:100].mean() < 0.7  # not sorted by class
    for cls in (0, 1):  # the length does not give the class away either
        assert abs(length[y == cls].mean() - length.mean()) < 0.5
    assert sorted(set(length)) == [10, 12, 14, 16, 18, 20]


def test_order_holds_one_1_and_one_2_among_filler():
    ds = builtin("order", n=300, steps=9, vocab=7)
    x, y = ds.x.astype(np.int64), ds.y[:, 0]
    assert ds.x.shape == (300, 9) and x.min() >= 1 and x.max() <= 6
    assert ((x == 1).sum(1) == 1).all() and ((x == 2).sum(1) == 1).all()
    assert [one_first(row) for row in x] == list(y == 1)
    assert y.sum() == 150 and 0.3 < y[:60].mean() < 0.7
    # the 1 appears at every place it can: before the last when first, after the first when not
    assert set(np.argmax(x[y == 1] == 1, axis=1)) == set(range(8))
    assert set(np.argmax(x[y == 0] == 1, axis=1)) == set(range(1, 9))


def test_the_smallest_order_has_no_filler():
    x = builtin("order", n=10, steps=2, vocab=4).x
    assert sorted(map(tuple, np.unique(x, axis=0).tolist())) == [(1, 2), (2, 1)]


@pytest.mark.parametrize("name", ["brackets", "order"])
def test_token_data_is_the_same_for_a_seed_and_not_for_another(name):
    a, b, c = builtin(name, seed=5, n=64), builtin(name, seed=5, n=64), builtin(name, seed=6, n=64)
    assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
    assert a.x.tobytes() != c.x.tobytes()


def test_datasets_declare_their_inputs():
    brackets, order, waves = (DATASETS.get(n) for n in ("brackets", "order", "waves"))
    assert vocab_of(brackets, {}) == 3 and vocab_of(order, {"vocab": 50}) == 50
    assert vocab_of(waves, {}) is None
    assert input_of(order, {"steps": 7, "vocab": 50}, "tokens") == "tokens[7] int vocab=50"
    assert input_of(brackets, {}) == "x[20] int vocab=3"
    assert input_of(waves, {}) == "x[20, 1]"


def spec(model: str, data: str) -> str:
    return (f"model m {{\n{model}}}\n\nloss binary_crossentropy\noptimizer adam\n\n"
            f"train {{\n    data {data}\n}}\n")


def errors(text: str) -> list[tuple[str, str, str | None]]:
    with pytest.raises(NNSpecError) as err:
        nnspec.check_text(text)
    return [(d.code, d.message, d.help) for d in err.value.diagnostics]


FLAT = "    input x[12]\n    dense 16 relu\n    dense 1 sigmoid\n"


@pytest.mark.parametrize("model,data,message,help,fixed", [
    (FLAT, 'builtin("order")',
     "dataset `order` holds token ids 0..9, but input `x` holds numbers",
     "declare `input x[12] int vocab=10`, then read it with `embedding DIM` and `flatten`",
     "    input x[12] int vocab=10\n    embedding 8\n    flatten\n    dense 16 relu\n    dense 1 sigmoid\n"),
    ("    input x[2] int vocab=4\n    embedding 4\n    flatten\n    dense 1 sigmoid\n", 'builtin("moons")',
     "dataset `moons` holds numbers, but input `x` holds token ids",
     "declare `input x[2]`, and read it with layers such as `dense` instead of `embedding`",
     "    input x[2]\n    flatten\n    dense 1 sigmoid\n"),
    ("    input t[12] int vocab=5\n    embedding 4\n    flatten\n    dense 1 sigmoid\n", 'builtin("order")',
     "dataset `order` holds token ids up to 9, but input `t` takes only 0..4",
     "declare `input t[12] int vocab=10`",
     "    input t[12] int vocab=10\n    embedding 4\n    flatten\n    dense 1 sigmoid\n"),
    ("    input t[12] int\n    embedding 4 vocab=5\n    flatten\n    dense 1 sigmoid\n", 'builtin("order")',
     "dataset `order` holds token ids up to 9, but input `t` takes only 0..4",
     "give the embedding `vocab=10`",
     "    input t[12] int\n    embedding 4 vocab=10\n    flatten\n    dense 1 sigmoid\n"),
    ("    input t[10] int vocab=3\n    embedding 4 padding=0\n    lstm 4\n    dense 1 sigmoid\n",
     'builtin("brackets", steps=14)',
     "dataset `brackets` has examples of shape (14,), but the model's input is (10,)",
     'load the data so, `data builtin("brackets", steps=10)`, or declare `input t[14] int vocab=3`',
     "    input t[14] int vocab=3\n    embedding 4 padding=0\n    lstm 4\n    dense 1 sigmoid\n"),
])
def test_checker_fits_token_data_to_int_inputs_and_its_help_checks_clean(model, data, message, help, fixed):
    assert errors(spec(model, data)) == [("E311", message, help)]
    assert nnspec.check_text(spec(fixed, data)).model is not None
    if "load the data so" in help:  # the other fix it offers: the data to fit the model as written
        other = help.split("`")[1].removeprefix("data ")
        assert nnspec.check_text(spec(model, other)).model is not None


def test_an_embedding_on_numbers_is_reported_once():
    text = spec("    input x[12]\n    embedding 8\n    flatten\n    dense 1 sigmoid\n", 'builtin("order")')
    assert [code for code, _, _ in errors(text)] == ["E254"]


def test_token_data_is_fed_as_int32_and_not_standardized():
    from nnspec.prepare import prepare
    text = spec("    input t[8] int vocab=5\n    embedding 4\n    flatten\n    dense 1 sigmoid\n",
                'builtin("order", n=40, steps=8, vocab=5)')[:-2] + "    standardize\n}\n"
    splits = prepare(nnspec.check_text(text), Path("."))
    assert splits.train.x.dtype == np.int32 and splits.standardizer is None
    assert set(np.unique(splits.train.x)) == {1, 2, 3, 4}


def test_an_embedding_without_a_vocabulary_is_reported_once():
    text = spec("    input t[12] int\n    embedding 4\n    flatten\n    dense 1 sigmoid\n", 'builtin("order")')
    assert [code for code, _, _ in errors(text)] == ["E255"]
