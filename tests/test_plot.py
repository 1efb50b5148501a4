"""`nnspec plot`: every picture rendered for real and read back as pixels (size, not
blank, the colours it should hold), its numbers checked against `nnspec eval`, `nnspec
predict` and scikit-learn, and every way a command can be wrong refused clearly."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the `plot` extra (matplotlib) is not installed")
from PIL import Image  # noqa: E402  (a dependency of matplotlib)

from nnspec import plot  # noqa: E402
from nnspec.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

PASS = (REPO / "specs" / "pass_class.nn").read_text()
BLOBS = """
model blobs {
    input x[2]
    dense 16 relu
    dense 3 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.05
train {
    data builtin("blobs", n=150, classes=3, spread=0.5)
    split val=0.2 test=0.2
    batch 16
    epochs 8
    metrics accuracy
    seed 0
}
"""
SWEEP = """
model moons {
    input x[2]
    dense 8 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=sweep(0.01, 0.1, 1, 1e30)
train {
    data builtin("moons", n=200)
    split val=0.25
    batch 32
    epochs 5
    metrics accuracy
    seed 0
}
"""
REGRESSION = """
model r {
    input x[1]
    dense 8 tanh
    dense 1
}
loss mse
optimizer adam lr=0.01
train {
    data builtin("regression", n=100)
    split val=0.2
    batch 16
    epochs 3
    seed 0
}
"""



def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


C0, C1 = rgb("#1f77b4"), rgb("#ff7f0e")  # matplotlib's first two cycle colours: run 1, run 2
RED, GREEN, BLUE = (rgb(c) for c in plot.CLASS_COLORS[:3])  # class 0 (the lecture's red), 1 (green), 2


def train(tmp: Path, name: str, text: str, *extra: str) -> Path:
    spec = tmp / f"{name}.nn"
    spec.write_text(text)
    run = tmp / "runs" / name
    assert main(["train", str(spec), "--out", str(run), "-q", *extra]) == 0
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs trained once for the module: pass_class twice (two learning rates), blobs, a
    sweep with one diverging rate, a regression."""
    tmp = tmp_path_factory.mktemp("runs")
    return {"pass": train(tmp, "pass", PASS, "--epochs", "12"),
            "pass_fast": train(tmp, "pass_fast", PASS.replace("lr=0.1", "lr=0.5"), "--epochs", "12"),
            "blobs": train(tmp, "blobs", BLOBS),
            "sweep": train(tmp, "sweep", SWEEP),
            "regression": train(tmp, "regression", REGRESSION)}


def pixels(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)


def count(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    """Pixels within `tol` of colour `rgb` in every channel."""
    return int((np.abs(img - np.asarray(rgb)) <= tol).all(axis=-1).sum())


def not_blank(img: np.ndarray) -> None:
    assert img.std() > 20, "the picture is (nearly) one colour"
    assert (img < 80).all(axis=-1).sum() > 500, "no dark ink (text, axes) in the picture"


def plot_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["plot", *argv])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------- learning curves

def test_learning_curves_of_a_run_go_into_its_folder(runs, capsys):
    code, err = plot_cli(capsys, str(runs["pass"]))
    out = runs["pass"] / "curves.png"
    assert code == 0 and f"wrote the learning curves to `{out}`" in err
    img = pixels(out)
    assert img.shape == (360, 960, 3)  # two panels (loss, accuracy) of 480 x 360
    not_blank(img)
    assert count(img, C0) > 1500  # the run's curves, train and validation
    # drawn again in place: the folder's own picture is nnspec's to replace
    assert main(["plot", str(runs["pass"])]) == 0


def test_the_curves_draw_the_history_and_mark_the_kept_epoch(runs):
    curves = plot.read_curves(runs["pass"])
    history = [json.loads(line) for line in (runs["pass"] / "history.jsonl").read_text().splitlines()]
    assert curves.kept == 12 and curves.why == "last epoch"  # run.json's kept weights
    fig = plot.curves_figure([curves])
    loss, accuracy = fig.axes
    assert [loss.get_title(), accuracy.get_title()] == ["loss", "accuracy"]
    drawn = {tuple(line.get_ydata()) for line in loss.get_lines() if len(line.get_xdata()) == 12}
    assert tuple(r["loss"] for r in history) in drawn and tuple(r["val_loss"] for r in history) in drawn
    kept = [line for line in loss.get_lines() if line.get_marker() == "D"]
    assert len(kept) == 1 and list(kept[0].get_xdata()) == [12] and list(kept[0].get_ydata()) == [history[-1]["val_loss"]]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["train", "validation", "kept: epoch 12 (last epoch)"]


def test_early_stopping_marks_the_best_epoch_it_restored(tmp_path):
    text = PASS.replace("epochs 100", "epochs 60").replace(
        "standardize\n", "standardize\n    early_stop monitor=val_loss patience=2 restore_best\n").replace(
        "lr=0.1", "lr=3")
    run = train(tmp_path, "es", text)
    info = json.loads((run / "run.json").read_text())
    curves = plot.read_curves(run)
    assert curves.kept == info["kept"]["epoch"] and curves.why == "best val_loss"
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert curves.kept == min(rows, key=lambda r: r["val_loss"])["epoch"] < len(rows)  # it did stop early


def test_an_unfinished_run_marks_its_best_epoch_so_far(runs, tmp_path):
    run = tmp_path / "unfinished"
    shutil.copytree(runs["pass"], run)
    info = json.loads((run / "run.json").read_text())
    del info["kept"]  # as run.json is until the run finishes
    (run / "run.json").write_text(json.dumps(info))
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    rows[5]["val_loss"] = 0.001  # the best so far, not the last
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = plot.read_curves(run)
    assert (curves.kept, curves.finished) == (6, False)
    (legend,) = plot.curves_figure([curves]).legends
    assert legend.get_texts()[-1].get_text() == "best val_loss so far: epoch 6"


def test_several_runs_share_one_figure_one_colour_each(runs, capsys, tmp_path):
    out = tmp_path / "both.png"
    code, err = plot_cli(capsys, str(runs["pass"]), str(runs["pass_fast"]), "-o", str(out))
    assert code == 0, err
    img = pixels(out)
    assert img.shape == (360, 960, 3)
    assert count(img, C0) > 1000 and count(img, C1) > 1000
    fig = plot.curves_figure([plot.read_curves(runs["pass"], "a"), plot.read_curves(runs["pass_fast"], "b")])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "train", "validation", "kept epoch"]


def test_svg_output(runs, capsys, tmp_path):
    out = tmp_path / "c.svg"
    assert plot_cli(capsys, str(runs["pass"]), "-o", str(out))[0] == 0
    text = out.read_text()
    assert text.startswith("<?xml") and "<svg" in text and 'width="691.2pt"' in text  # 960 px at 72 pt / 100 px


def test_a_picture_is_the_same_file_every_time(runs, capsys, tmp_path):
    for name in ("a.svg", "b.svg", "a.png", "b.png"):
        assert plot_cli(capsys, str(runs["pass"]), "-o", str(tmp_path / name))[0] == 0
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# ------------------------------------------------------------------------- sweeps

def test_a_sweep_draws_its_curve_with_the_diverged_model_at_the_top_edge(runs, capsys):
    code, err = plot_cli(capsys, str(runs["sweep"]))
    out = runs["sweep"] / "sweep.png"
    assert code == 0 and f"wrote the sweep's curve to `{out}`" in err
    img = pixels(out)
    assert img.shape == (420, 640, 3)
    not_blank(img)
    assert count(img, C0) > 300
    red = np.argwhere((np.abs(img - np.asarray(rgb(plot.DIVERGED_COLOR))) <= 12).all(axis=-1))
    assert len(red) > 30 and red[:, 0].min() < 0.2 * img.shape[0]  # the cross, near the top

    sweep = plot.read_sweep(runs["sweep"])
    fig = plot.sweep_figure([sweep])
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    crosses = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [1e30] and list(crosses[0].get_ydata()) == [0.97]
    assert "diverged" in [t.get_text() for t in ax.texts]
    assert "diverged (1)" in [t.get_text() for t in ax.get_legend().get_texts()]
    members = [json.loads(line) for line in (runs["sweep"] / "sweep.jsonl").read_text().splitlines()]
    trained = sorted((m for m in members if not m["diverged"]), key=lambda m: m["setting"]["lr"])
    final, best = (line for line in ax.get_lines() if line.get_marker() in ("o", "v"))
    assert list(final.get_xdata()) == [m["setting"]["lr"] for m in trained]
    assert list(final.get_ydata()) == [m["history"][-1]["val_loss"] for m in trained]
    assert list(best.get_ydata()) == [min(r["val_loss"] for r in m["history"]) for m in trained]


def sweep_run(members, name="s") -> plot.SweepRun:
    def history(values):
        return [{"epoch": i + 1, "loss": v, "val_loss": v} for i, v in enumerate(values)]
    return plot.SweepRun(name, tuple({"setting": s, "history": history(h), "diverged": d} for s, h, d in members))


def test_a_diverged_model_does_not_squash_the_axis():
    # the record says lr=10 diverged after its loss grew to 1e12; lr=100 ends in nan
    # without a divergence recorded: both are crosses, neither sets the y range
    sweep = sweep_run([({"lr": 0.01}, [0.9, 0.5], None), ({"lr": 0.1}, [0.6, 0.2, 0.3], None),
                       ({"lr": 10.0}, [0.6, 1e12], [2, 1]), ({"lr": 100.0}, [0.7, math.nan], None)])
    (ax,) = plot.sweep_figure([sweep]).axes
    lo, hi = ax.get_ylim()
    assert 0.1 < lo < 0.2 and 0.5 < hi < 0.7  # the finals and bests of lr=0.01 and 0.1: 0.2 to 0.5
    (cross,) = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert list(cross.get_xdata()) == [10.0, 100.0]
    final = next(line for line in ax.get_lines() if line.get_marker() == "o")
    assert list(final.get_ydata()) == [0.5, 0.3]


def test_other_axes_are_series_and_linear_values_a_linear_axis():
    members = [({"lr": lr, "momentum": m}, [1 / (1 + lr + m)], None) for lr in (0.01, 0.1, 1) for m in (0, 0.9)]
    sweep = sweep_run(members)
    (ax,) = plot.sweep_figure([sweep]).axes
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["momentum=0", "momentum=0.9"]
    (ax,) = plot.sweep_figure([sweep], axis="momentum").axes
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "momentum"
    with pytest.raises(plot.PlotError, match="the sweep has no axis `momentun`: it sweeps `lr` and `momentum`; "
                                             "did you mean `momentum`?"):
        plot.sweep_figure([sweep], axis="momentun")


def test_whole_numbers_get_whole_ticks():
    (ax,) = plot.sweep_figure([sweep_run([({"seed": k}, [0.3 + k / 100], None) for k in range(5)])]).axes
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ax.get_xscale() == "linear" and labels and all(label.lstrip("−-").isdigit() for label in labels)


@pytest.mark.parametrize("values, log", [
    ((0.001, 0.01, 0.1, 1), True), ((8, 16, 32, 64), True), ((1e-4, 3e-3, 0.05), True),
    ((0.1, 0.2, 0.3, 0.4), False), ((0, 0.9), False), ((1, 2), False), ((-1, 1, 100), False), ((5,), False)])
def test_log_spaced(values, log):
    assert plot.log_spaced(values) is log


def test_a_sweep_without_validation_draws_its_training_loss():
    sweep = plot.SweepRun("s", tuple({"setting": {"lr": lr}, "history": [{"epoch": 1, "loss": lr}], "diverged": None}
                                     for lr in (0.1, 0.2)))
    (ax,) = plot.sweep_figure([sweep]).axes
    assert ax.get_ylabel() == "training loss"
    assert "final loss" in [t.get_text() for t in ax.get_legend().get_texts()]


# ------------------------------------------------------------------------- decision boundary

def test_the_boundary_is_the_models_prediction_as_nnspec_predict_makes_it(runs, capsys, tmp_path):
    code, err = plot_cli(capsys, str(runs["pass"]), "--boundary")
    out = runs["pass"] / "boundary.png"
    assert code == 0 and f"wrote the decision boundary to `{out}`" in err
    img = pixels(out)
    assert img.shape == (440, 480, 3)
    not_blank(img)
    assert count(img, RED, 20) > 150 and count(img, GREEN, 20) > 150  # the lecture's red and green points

    from nnspec.cli import load
    from nnspec.infer import load_run
    program, _, _ = load(str(runs["pass"] / "spec.nn"))
    trained = load_run(program, runs["pass"], runs["pass"].resolve(), own_copy=True)
    b = plot.boundary(trained, "pass", resolution=7)
    assert b.classes == ("fail", "pass") and b.features == ("lectures", "hours")
    # the grid spans the training points, in the data's own units (lectures 0-20, hours 0-40)
    assert b.grid[0][0] < b.points[:, 0].min() and b.grid[0][-1] > b.points[:, 0].max() > 15
    assert b.grid[1][0] < b.points[:, 1].min() and b.grid[1][-1] > b.points[:, 1].max() > 30
    assert len(b.points) == 300 and set(np.unique(b.labels)) == {0, 1}
    # `nnspec predict` on the grid's points gives the classes and probabilities drawn
    xx, yy = np.meshgrid(*b.grid)
    grid_csv = tmp_path / "grid.csv"
    with open(grid_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lectures", "hours"])
        w.writerows(zip(xx.ravel(), yy.ravel()))
    assert main(["predict", str(runs["pass"] / "spec.nn"), "--run", str(runs["pass"]), "--input", str(grid_csv),
                 "--output", str(tmp_path / "pred.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [r["class"] for r in rows] == [b.classes[c] for c in b.predicted.ravel()]
    np.testing.assert_allclose([float(r["y"]) for r in rows], b.probability.ravel(), rtol=1e-4, atol=1e-6)
    assert 0 < b.predicted.mean() < 1  # both classes somewhere on the grid


def test_a_multiclass_boundary_and_two_runs_side_by_side(runs, capsys, tmp_path):
    out = tmp_path / "b.png"
    code, err = plot_cli(capsys, str(runs["blobs"]), str(runs["pass"]), "--boundary", "-o", str(out))
    assert code == 0, err
    img = pixels(out)
    assert img.shape == (440, 960, 3)
    assert count(img[:, :480], BLUE, 20) > 100 and count(img[:, 480:], BLUE, 20) < 20  # class 2 only in blobs


def test_a_sweeps_boundary_is_its_kept_models(runs, capsys):
    code, err = plot_cli(capsys, str(runs["sweep"]), "--boundary")
    assert code == 0, err
    assert pixels(runs["sweep"] / "boundary.png").shape == (440, 480, 3)


def test_boundary_refuses_a_model_that_is_not_a_2_feature_classifier(runs, capsys):
    code, err = plot_cli(capsys, str(runs["regression"]), "--boundary")
    assert code == 2 and err == (f"error: `--boundary` draws a classifier of 2 input features over the plane, but the "
                                 f"model of `{runs['regression']}` cannot be drawn so: it is not a classifier "
                                 f"(its loss predicts numbers, not classes)\n")
    assert not (runs["regression"] / "boundary.png").exists()


@pytest.mark.parametrize("model, problem", [
    ("input x[3]\n dense 1 sigmoid", "its input `x` has 3 features (shape [3]), not 2"),
    ("input x[2, 1]\n flatten\n dense 1 sigmoid", "its input `x` has 2 features (shape [2, 1]), not 2"),
    ("input x[2]\n dense 2 sigmoid", "it predicts 2 yes/no labels at once (output shape [2]), not one class"),
])
def test_the_reasons_a_model_has_no_boundary(model, problem):
    import nnspec
    text = f"model m {{\n {model}\n}}\nloss binary_crossentropy\noptimizer sgd lr=0.1\n"
    program = nnspec.check_text(text)
    assert plot.boundary_problem(program) == problem


# ------------------------------------------------------------------------- confusion matrix

def test_confusion_matrix_against_scikit_learn():
    from sklearn.metrics import confusion_matrix
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    np.testing.assert_array_equal(plot.confusion_matrix(t, p, ["a", "b", "c", "d"]),
                                  confusion_matrix(t, p, labels=[0, 1, 2, 3]))
    assert plot.confusion_matrix([], [], ["a", "b"]).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="outside 0..1"):
        plot.confusion_matrix([0, 2], [0, 1], ["a", "b"])


def eval_accuracy(run: Path, capsys) -> tuple[int, float]:
    assert main(["eval", "--run", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    n = int(lines[0].split("(")[1].split()[0])
    return n, float(next(line.split()[1] for line in lines if line.split()[0] == "accuracy"))


@pytest.mark.parametrize("name, classes", [("pass", ("fail", "pass")), ("blobs", ("0", "1", "2"))])
def test_the_confusion_matrix_agrees_with_nnspec_eval(runs, capsys, name, classes):
    code, err = plot_cli(capsys, str(runs[name]), "--confusion")
    assert code == 0, err
    img = pixels(runs[name] / "confusion.png")
    assert img.shape == (440, 440, 3)
    not_blank(img)
    from nnspec.cli import load
    from nnspec.infer import load_run
    program, _, _ = load(str(runs[name] / "spec.nn"))
    c = plot.confusion(load_run(program, runs[name], runs[name].resolve(), own_copy=True), name)
    n, accuracy = eval_accuracy(runs[name], capsys)
    assert c.split == "test" and c.classes == classes and c.counts.sum() == n
    assert abs(np.trace(c.counts) / n - accuracy) < 1e-3  # eval prints 4 digits


def test_confusion_refuses_a_regression(runs, capsys):
    code, err = plot_cli(capsys, str(runs["regression"]), "--confusion")
    assert code == 2 and "`--confusion` counts a classifier's right and wrong classes" in err


# ------------------------------------------------------------------------- train --plot

def test_train_plot_draws_a_single_runs_curves_and_a_sweeps_curve(tmp_path, capsys):
    spec = tmp_path / "p.nn"
    spec.write_text(PASS)
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--epochs", "3", "-q",
                 "--plot", str(tmp_path / "c.png")]) == 0
    assert f"wrote the learning curves to `{tmp_path / 'c.png'}`" in capsys.readouterr().err
    assert pixels(tmp_path / "c.png").shape == (360, 960, 3)


def test_train_plot_is_refused_before_training(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "p.nn"
    spec.write_text(PASS)
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    argv = ["train", str(spec), "--out", str(tmp_path / "run"), "--epochs", "2", "-q", "--plot"]
    assert main([*argv, str(taken)]) == 2
    assert capsys.readouterr().err == (f"error: `{taken}` already exists: choose another name, "
                                       f"or pass `--overwrite` to replace it\n")
    assert taken.read_bytes() == b"mine" and not (tmp_path / "run").exists()
    assert main([*argv, str(tmp_path / "c.jpg")]) == 2
    assert "name a `.png` or an `.svg` file" in capsys.readouterr().err and not (tmp_path / "run").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main([*argv, str(tmp_path / "c.png")]) == 2
    assert "pip install 'nnspec[plot]'" in capsys.readouterr().err and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- what is refused

def test_without_matplotlib_it_says_how_to_install_it(runs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, err = plot_cli(capsys, str(runs["pass"]), "-o", "never.png")
    assert code == 2 and err == ("error: drawing pictures needs matplotlib, which is not installed: "
                                 "pip install 'nnspec[plot]'\n")
    assert not Path("never.png").exists()


def test_folders_that_hold_no_run(runs, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = {
        str(tmp_path / "missing"): f"error: `{tmp_path / 'missing'}` does not exist\n",
        str(tmp_path / "empty"): f"error: `{tmp_path / 'empty'}` is not an nnspec run folder "
                                 f"(it has no `run.json` written by `nnspec train`)\n",
        str(tmp_path / "file.txt"): f"error: `{tmp_path / 'file.txt'}` is a file, not a run folder: "
                                    f"name the folder `nnspec train` wrote\n",
    }
    for run, message in cases.items():
        assert plot_cli(capsys, run) == (2, message)
        assert plot_cli(capsys, run, "--boundary") == (2, message)


def test_a_run_with_no_history(runs, capsys, tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    shutil.copy(runs["pass"] / "run.json", run / "run.json")  # as `train` leaves it before epoch 1 ends
    shutil.copy(runs["pass"] / "spec.nn", run / "spec.nn")
    assert plot_cli(capsys, str(run)) == (2, f"error: `{run}` holds no history yet: the run has not finished an "
                                              f"epoch (continue it with `nnspec train --resume {run}`)\n")
    assert plot_cli(capsys, str(run), "--confusion") == (
        2, f"error: `{run}` holds no trained model (no `checkpoint.npz`) to draw `--confusion` from\n")
    (run / "history.jsonl").write_text('{"epoch": 1, "loss": 0.5}\nnot json\n')
    assert plot_cli(capsys, str(run)) == (2, f"error: `{run / 'history.jsonl'}`, line 2: not a history written by nnspec\n")


def test_an_unfinished_sweep(runs, capsys, tmp_path):
    run = tmp_path / "sweep"
    shutil.copytree(runs["sweep"], run)
    (run / "sweep.jsonl").unlink()
    assert plot_cli(capsys, str(run)) == (2, f"error: the sweep in `{run}` has not finished (it has no `sweep.jsonl`): "
                                              f"continue it with `nnspec train --resume {run}`\n")


def test_output_files_are_never_replaced_unasked(runs, capsys, tmp_path):
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my picture")
    assert plot_cli(capsys, str(runs["pass"]), "-o", str(mine)) == (
        2, f"error: `{mine}` already exists: choose another name, or pass `--overwrite` to replace it\n")
    assert mine.read_bytes() == b"my picture"
    assert plot_cli(capsys, str(runs["pass"]), "-o", str(mine), "--overwrite")[0] == 0
    assert pixels(mine).shape == (360, 960, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left over


def test_outputs_that_cannot_be_written(runs, capsys, tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir.png").mkdir()
    r = str(runs["pass"])
    assert plot_cli(capsys, r, "-o", str(tmp_path / "a_file" / "c.png")) == (
        2, f"error: cannot write the picture to `{tmp_path / 'a_file' / 'c.png'}`: `{tmp_path / 'a_file'}` is a file\n")
    assert plot_cli(capsys, r, "-o", str(tmp_path / "a_dir.png")) == (
        2, f"error: cannot write the picture to `{tmp_path / 'a_dir.png'}`: it is a directory\n")
    assert plot_cli(capsys, r, "-o", str(tmp_path / "c.jpg")) == (
        2, f"error: cannot tell what picture `{tmp_path / 'c.jpg'}` should be: name a `.png` or an `.svg` file\n")
    assert plot_cli(capsys, r, "-o", "/proc/nnspec-plot.png")[0] == 2  # the write itself fails: one line, no traceback
    assert "Traceback" not in capsys.readouterr().err


def test_what_a_command_line_cannot_ask(runs, capsys, tmp_path):
    assert plot_cli(capsys, str(runs["pass"]), str(runs["pass_fast"])) == (
        2, "error: name the picture of 2 runs with `-o FILE.png` (or `.svg`)\n")
    assert plot_cli(capsys, str(runs["pass"]), str(runs["sweep"]), "-o", str(tmp_path / "x.png")) == (
        2, "error: a sweep's curve and single runs' learning curves are different pictures: "
           "plot the sweep and the runs separately\n")
    assert plot_cli(capsys, str(runs["pass"]), "--axis", "lr") == (
        2, "error: `--axis` chooses a sweep's swept value for the x axis; these runs are not sweeps\n")
    assert plot_cli(capsys, str(runs["sweep"]), "--axis", "momentum") == (
        2, "error: the sweep has no axis `momentum`: it sweeps `lr`\n")
    with pytest.raises(SystemExit) as exit:
        main(["plot", str(runs["pass"]), "--boundary", "--confusion"])
    assert exit.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_plot_does_not_start_jax_for_curves(runs, tmp_path):
    """Curves and sweeps read two small files: no JAX, so they take a moment."""
    import subprocess
    code = ("import sys; from nnspec.cli import main; "
            f"rc = main(['plot', {str(runs['pass'])!r}, '-o', {str(tmp_path / 'c.png')!r}]); "
            "assert rc == 0; assert 'jax' not in sys.modules, 'jax was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=REPO)


# ------------------------------------------------------------------------- the docs

def test_docs_show_every_picture_that_make_sh_draws():
    doc = (REPO / "docs" / "plots.md").read_text()
    shown = set(re.findall(r"!\[[^\]]*\]\(img/([^)]+)\)", doc))
    script = (REPO / "docs" / "img" / "make.sh").read_text()
    drawn = set(re.findall(r'-o "\$img/([^"]+)"', script))
    committed = {p.name for p in (REPO / "docs" / "img").glob("*.png")}
    assert shown == drawn == committed and len(shown) == 9
    for name in shown:
        assert pixels(REPO / "docs" / "img" / name).std() > 20


def test_the_docs_boundary_error_is_the_real_one():
    from nnspec.cli import load
    doc = (REPO / "docs" / "plots.md").read_text()
    program, _, _ = load(str(REPO / "specs" / "digits_mlp.nn"))
    with pytest.raises(plot.PlotError) as exc:
        plot.refuse("boundary", program, "runs/digits_mlp")
    assert f"$ nnspec plot runs/digits_mlp --boundary\nerror: {exc.value}\n" in doc


def test_the_pictures_a_run_folder_gets_are_nnspecs_own_files():
    # so `train --overwrite` removes them with the run, and never calls them foreign
    from nnspec.runs import RUN_FILES
    assert set(plot.DEFAULT_NAMES.values()) <= set(RUN_FILES)
