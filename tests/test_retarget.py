"""`nnspec train SPEC --data FILE [--val-data FILE] [--test-data FILE]`: the same spec on
other files, by rewriting the data line before it is checked (nnspec/retarget.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnspec import check_text, parse
from nnspec.retarget import RetargetError, retarget

from cli_helpers import run_cli

SPEC = """model m {
    input x[2]
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.5
train {
    data csv("data/a.csv", target="label", features=["u", "w"])
    split test=0.25
    epochs 2
    seed 1
    metrics accuracy
}
"""


def _csv(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    rows = ["u,w,junk,label"] + [f"{a:.5f},{b:.5f},7,{int(a + b > 0)}" for a, b in x]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    _csv(tmp_path / "data" / "a.csv", 80, 0)
    _csv(tmp_path / "b.csv", 120, 1)
    _csv(tmp_path / "v.csv", 40, 2)
    (tmp_path / "m.nn").write_text(SPEC)
    return tmp_path


def test_data_replaces_the_file_and_the_run_names_what_it_read(project):
    code, _, err = run_cli("train", "m.nn", "--data", "b.csv", "--out", "runs/b", "-q", cwd=project)
    assert code == 0, err
    assert "note: `--data b.csv` replaces `data/a.csv`" in err
    info = json.loads((project / "runs" / "b" / "run.json").read_text())
    assert info["examples"]["train"] + info["examples"]["test"] == 120  # b.csv's rows, not a.csv's 80
    assert info["run"]["data"]["path"] == str((project / "b.csv").resolve())
    own = (project / "runs" / "b" / "spec.nn").read_text()
    assert f'data csv("{(project / "b.csv").resolve()}", target="label", features=["u", "w"])' in own
    # eval of the run reads b.csv again, and reports its test split
    code, out, err = run_cli("eval", "--run", "runs/b", cwd=project)
    assert code == 0, err
    assert out.startswith("test split (30 examples)")
    # the same flags resume the run (the rewritten spec is the run's spec)
    code, _, err = run_cli("train", "m.nn", "--data", "b.csv", "--resume", "runs/b", "--epochs", "3", "-q",
                           cwd=project)
    assert code == 0, err
    assert len(json.loads((project / "runs" / "b" / "run.json").read_text())["run"]["data"]) >= 1


def test_val_data_adds_a_source_read_as_the_training_file(project):
    code, _, err = run_cli("train", "m.nn", "--val-data", "v.csv", "--out", "runs/v", "-q", cwd=project)
    assert code == 0, err
    assert "adds it as the validation file" in err
    info = json.loads((project / "runs" / "v" / "run.json").read_text())
    assert info["examples"]["val"] == 40
    own = (project / "runs" / "v" / "spec.nn").read_text()
    assert f'val=csv("{(project / "v.csv").resolve()}", target="label", features=["u", "w"])' in own


def test_a_test_file_beside_a_test_fraction_is_e108_at_the_rewritten_line(project):
    code, _, err = run_cli("train", "m.nn", "--test-data", "v.csv", cwd=project)
    assert code == 1
    assert "error[E108]" in err and "split test=0.25" in err and "note: `--test-data v.csv` adds it" in err


def test_a_file_of_another_table_format_changes_the_reader(project):
    rows = [json.dumps({"u": float(a), "w": float(b), "label": int(a + b > 0)})
            for a, b in np.random.default_rng(3).normal(size=(60, 2))]
    (project / "b.jsonl").write_text("\n".join(rows) + "\n")
    code, _, err = run_cli("train", "m.nn", "--data", "b.jsonl", "--out", "runs/j", "-q", cwd=project)
    assert code == 0, err
    assert "read as `jsonl`" in err
    assert 'data jsonl("' in (project / "runs" / "j" / "spec.nn").read_text()


@pytest.mark.parametrize("data, words", [
    ('builtin("moons")', "reads a built-in dataset"),
    ('npy(x="x.npy", y="y.npy")', "reads two files"),
])
def test_a_source_without_one_file_is_refused(project, data, words):
    (project / "m.nn").write_text(SPEC.replace('csv("data/a.csv", target="label", features=["u", "w"])', data))
    code, _, err = run_cli("train", "m.nn", "--data", "b.csv", cwd=project)
    assert code == 2 and words in err and "error: `--data`" in err


def test_a_missing_file_is_a_usage_error(project):
    code, _, err = run_cli("train", "m.nn", "--data", "nope.csv", cwd=project)
    assert code == 2 and "cannot read `nope.csv`: no such file" in err


def test_retarget_follows_a_let_and_escapes_the_path(tmp_path):
    text = SPEC.replace('data csv("data/a.csv", target="label", features=["u", "w"])', "data d")
    text = 'let d = csv("data/a.csv", target="label")\n' + text
    odd = tmp_path / 'say "hi"\\now.csv'
    new, notes = retarget(text, "m.nn", {"data": str(odd)})
    assert notes == [f"`--data {odd}` replaces `data/a.csv`"]
    spec = parse(new)
    assert spec.lets[0].value.args[0].value.value == str(odd.resolve())  # read back exactly
    check_text(new)  # and the rewritten spec checks


def test_retarget_without_a_data_line_says_so():
    text = SPEC.replace('    data csv("data/a.csv", target="label", features=["u", "w"])\n', "")
    with pytest.raises(RetargetError, match="has none"):
        retarget(text, "m.nn", {"data": "b.csv"})


@pytest.mark.parametrize("key", ["source", "train"])
def test_retarget_reads_a_training_source_given_by_keyword(tmp_path, key):
    """`data source=csv(...)` is the training file as `data csv(...)` is (it was None, and
    `--val-data` crashed on it)."""
    text = SPEC.replace('data csv("data/a.csv"', f'data {key}=csv("data/a.csv"')
    check_text(text)
    new, notes = retarget(text, "m.nn", {"data": str(tmp_path / "b.csv"), "val": str(tmp_path / "v.csv")})
    assert notes[0] == f"`--data {tmp_path / 'b.csv'}` replaces `data/a.csv`"
    assert "adds it as the validation file" in notes[1]
    data = parse(new).train.get("data")
    assert [a.key for a in data.args] == [key, "val"]
    assert data.args[1].value.name == "csv" and data.args[1].value.args[0].value.value == str(tmp_path / "v.csv")
    check_text(new)
