"""`nnspec plot --steps`: every step's training loss (`history steps`, steps.csv) drawn for
real and read back, as pixels and as the figure's own line data, which must be the
file's numbers at x = epoch − 1 + step / steps per epoch; and the ways to ask wrongly."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the `plot` extra (matplotlib) is not installed")
from PIL import Image  # a dependency of matplotlib

from nnspec import plot
from nnspec.cli import main

REPO = Path(__file__).resolve().parents[1]
N, VAL = 50, 0.2
N_TRAIN = int(N * (1 - VAL))  # 40
SPEC = """
model m {{
    input x[2]
    dense 1 sigmoid
}}
loss binary_crossentropy
optimizer sgd lr={lr}
train {{
    data builtin("linear", n=50)
    split val=0.2
    batch {batch}
    epochs {epochs}
    seed 0
    {history}
}}
"""


def train(tmp: Path, name: str, *, batch: str, epochs: int = 3, lr: str = "0.1", history: str = "history steps") -> Path:
    spec = tmp / f"{name}.nn"
    spec.write_text(SPEC.format(batch=batch, epochs=epochs, lr=lr, history=history))
    run = tmp / "runs" / name
    assert main(["train", str(spec), "--out", str(run), "-q"]) == 0
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The lecture's three: one example a step, mini-batches of 16, the full batch; a run
    without `history steps`; a sweep of two learning rates with it."""
    tmp = tmp_path_factory.mktemp("steps")
    return {"sgd": train(tmp, "sgd", batch="1"), "mini": train(tmp, "mini", batch="16"),
            "full": train(tmp, "full", batch="all", epochs=6),
            "epochs": train(tmp, "epochs", batch="16", history=""),
            "sweep": train(tmp, "sweep", batch="16", lr="sweep(0.1, 1)")}


def plot_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["plot", *map(str, argv)])
    return code, capsys.readouterr().err


def pixels(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)


def count(img: np.ndarray, color: str, tol: int = 12) -> int:
    rgb = np.asarray([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img - rgb) <= tol).all(axis=-1).sum())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_three_batch_sizes_on_one_figure(runs, capsys, tmp_path):
    out = tmp_path / "steps.png"
    code, err = plot_cli(capsys, runs["sgd"], runs["mini"], runs["full"], "--steps", "--smooth", "0.9", "-o", out)
    assert (code, err) == (0, f"wrote the loss of every step to `{out}`\n")
    img = pixels(out)
    assert img.shape == (440, 800, 3)
    assert img.std() > 20 and (img < 80).all(axis=-1).sum() > 500  # not blank: lines, text, axes
    for color in ("#1f77b4", "#ff7f0e", "#2ca02c"):  # one colour per run
        assert count(img, color) > 100, color


def test_the_lines_are_the_steps_csv_at_the_epoch_as_a_fraction(runs):
    series = [s for name in ("sgd", "mini", "full") for s in plot.read_steps(runs[name], name)]
    fig = plot.steps_figure(series, smooth=0.8)
    (ax,) = fig.axes
    raw, smooth = ax.lines[0::2], ax.lines[1::2]
    assert len(ax.lines) == 6
    for line, sm, name, per_epoch, epochs in zip(raw, smooth, ("sgd", "mini", "full"),
                                                  (N_TRAIN, math.ceil(N_TRAIN / 16), 1), (3, 3, 6)):
        rows = csv_rows(runs[name] / "steps.csv")
        assert len(rows) == epochs * per_epoch
        x, y = (np.asarray(v, float) for v in line.get_data())
        np.testing.assert_array_equal(y, [float(r["loss"]) for r in rows])
        want_x = [int(r["epoch"]) - 1 + int(r["step"]) / per_epoch for r in rows]
        np.testing.assert_allclose(x, want_x, rtol=0, atol=1e-12)
        assert x[-1] == epochs and x[per_epoch - 1] == 1.0  # an epoch's last step at the epoch's number
        # the smoothed line: the debiased moving average written as its sum
        w, v = 0.8, y
        want = [sum(w ** i * v[t - i] for i in range(t + 1)) / sum(w ** i for i in range(t + 1)) for t in range(len(v))]
        np.testing.assert_allclose(sm.get_ydata(), want, rtol=1e-12)
        assert line.get_linewidth() < sm.get_linewidth()  # the raw losses thin, their average thick
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"sgd ({N_TRAIN} steps an epoch)", "mini (3 steps an epoch)", "full (1 step an epoch)",
        "each step", "smoothed (weight 0.8)"]
    assert ax.get_xlabel() == "epoch (step / steps per epoch)"


def test_without_smooth_only_the_raw_losses():
    s = plot.Steps("r", np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]), np.array([0.9, 0.7, 0.6, 0.5]), 2)
    (ax,) = plot.steps_figure([s]).axes
    assert len(ax.lines) == 1 and list(ax.lines[0].get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["r (2 steps an epoch)"]


def test_the_docs_error_is_the_real_one(tmp_path, monkeypatch):
    (tmp_path / "runs" / "pass_class").mkdir(parents=True)
    from nnspec.runs import FORMAT
    (tmp_path / "runs" / "pass_class" / "run.json").write_text(json.dumps({"format": FORMAT}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(plot.PlotError) as exc:
        plot.read_steps(Path("runs/pass_class"))
    assert f"```text\nerror: {exc.value}\n```" in (REPO / "docs" / "plots.md").read_text()


@pytest.mark.parametrize("losses, scale", [([1.0, 0.1, 0.01, 0.001], "log"), ([0.7, 0.6, 0.5, 0.45], "linear"),
                                           ([0.7, 0.0, 0.5, 0.45], "linear")])
def test_a_log_axis_where_the_losses_span_decades(losses, scale):
    s = plot.Steps("r", np.ones(4, int), np.arange(1, 5), np.array(losses), 4)
    (ax,) = plot.steps_figure([s]).axes
    assert ax.get_yscale() == scale


def test_smoothing_leaves_out_a_step_that_is_not_finite():
    got = plot.smoothed([1.0, math.nan, 3.0, math.inf], 0.5)
    assert got[0] == 1.0 and math.isnan(got[1]) and math.isnan(got[3])
    assert got[2] == pytest.approx((0.5 * 1.0 + 3.0) / 1.5)  # as if the NaN step were not there
    np.testing.assert_allclose(plot.smoothed([2.0, 4.0, 6.0], 0.0), [2.0, 4.0, 6.0])  # weight 0: the losses


def test_one_run_draws_into_its_folder(runs, capsys):
    code, err = plot_cli(capsys, runs["mini"], "--steps")
    assert (code, err) == (0, f"wrote the loss of every step to `{runs['mini'] / 'steps.png'}`\n")
    assert pixels(runs["mini"] / "steps.png").shape == (440, 800, 3)


def test_a_sweep_draws_a_line_per_model_named_by_its_setting(runs):
    series = plot.read_steps(runs["sweep"], "runs/sweep")
    assert [s.name for s in series] == ["runs/sweep, lr=0.1", "runs/sweep, lr=1"]
    rows = csv_rows(runs["sweep"] / "steps.csv")
    for m, s in enumerate(series):
        np.testing.assert_array_equal(s.loss, [float(r["loss"]) for r in rows if r["model"] == str(m)])
        assert s.per_epoch == 3


def test_a_run_without_history_steps_is_told_to_add_it(runs, capsys, tmp_path):
    assert plot_cli(capsys, runs["mini"], runs["epochs"], "--steps", "-o", tmp_path / "s.png") == (
        2, (f"error: `{runs['epochs']}` has no `steps.csv` to draw `--steps` from: add `history steps` to the "
            "`train` block of its spec and train it again\n"))
    assert not (tmp_path / "s.png").exists()
    assert plot_cli(capsys, tmp_path / "nothing", "--steps")[1] == f"error: `{tmp_path / 'nothing'}` does not exist\n"


def test_a_steps_file_that_nnspec_did_not_write(runs, capsys, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(runs["mini"], run)
    (run / "steps.csv").write_text("epoch,step,loss\n1,1,0.5\n1,x,0.4\n")
    assert plot_cli(capsys, run, "--steps") == (2, f"error: `{run / 'steps.csv'}`, line 3: not a step written by nnspec\n")
    (run / "steps.csv").write_text("a,b\n")
    assert plot_cli(capsys, run, "--steps") == (
        2, f"error: `{run / 'steps.csv'}`, line 1: not the steps of a run written by nnspec\n")
    (run / "steps.csv").write_text("epoch,step,loss\n")
    assert plot_cli(capsys, run, "--steps")[1].startswith(f"error: `{run}` holds no steps yet")


def test_what_the_command_line_cannot_ask(runs, capsys):
    assert plot_cli(capsys, runs["mini"], "--smooth", "0.9") == (
        2, "error: `--smooth` smooths the loss of every step: it goes with `--steps`\n")
    assert plot_cli(capsys, runs["sweep"], "--steps", "--axis", "lr") == (
        2, "error: `--axis` chooses a sweep's swept value for the x axis; `--steps` has no such axis\n")
    for argv, words in ((["--steps", "--smooth", "1"], "must be ≥ 0 and < 1"),
                        (["--steps", "--boundary"], "not allowed with argument")):
        with pytest.raises(SystemExit) as exit:
            main(["plot", str(runs["mini"]), *argv])
        assert exit.value.code == 2 and words in capsys.readouterr().err


def test_steps_does_not_start_jax(runs, tmp_path):
    code = ("import sys; from nnspec.cli import main; "
            f"rc = main(['plot', {str(runs['sgd'])!r}, '--steps', '-o', {str(tmp_path / 's.png')!r}]); "
            "assert rc == 0; assert 'jax' not in sys.modules, 'jax was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=REPO)
