"""nnspec in a notebook: `progress=` (a tqdm bar, a callable, nothing) for single runs and
sweeps alike, `resume=` for both, and the result's HTML with its learning curve."""

from __future__ import annotations

import base64
import re
import struct
import sys
import types

import numpy as np
import pytest

import nnspec
from nnspec.plot import CURVE_DPI, CURVE_INCHES, SWEEP_PANEL
from nnspec.sweep_fit import fit_sweep

SPEC = """
model m {
    input x[2]
    h: dense 8 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=LR
train {
    data builtin("moons", n=120)
    split val=0.25
    batch 30
    epochs EPOCHS
}
"""


def spec(lr="0.1", epochs=3):
    return SPEC.replace("LR", lr).replace("EPOCHS", str(epochs))


class FakeBar:
    """Stands in for tqdm.auto.tqdm: records what the trainer tells it."""
    made: list[FakeBar] = []

    def __init__(self, total=None, initial=0, desc=None, unit=None):
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.initial = initial
        self.updates: list[int] = []
        self.postfix: list[object] = []
        self.closed = False
        FakeBar.made.append(self)

    def update(self, k=1):
        self.updates.append(k)
        self.n += k

    def set_postfix(self, values, refresh=True):
        self.postfix.append(dict(values))

    def set_postfix_str(self, text, refresh=True):
        self.postfix.append(text)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    FakeBar.made = []
    module = types.ModuleType("tqdm.auto")
    module.tqdm = FakeBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", module)
    return FakeBar.made


def test_progress_bar_gets_one_update_per_epoch(fake_tqdm):
    result = nnspec.train(spec(epochs=4), progress=True)
    (bar,) = fake_tqdm
    assert bar.total == 4 and bar.initial == 0 and bar.unit == "epoch" and bar.desc == "m"
    assert bar.updates == [1, 1, 1, 1] and bar.closed
    # each update shows that epoch's numbers, as the history has them
    assert [p["loss"] for p in bar.postfix] == [f"{row['loss']:.4f}" for row in result.history]
    assert set(bar.postfix[0]) == {"loss", "val_loss"}


def test_a_callable_gets_each_epoch_and_false_gets_nothing(fake_tqdm):
    seen = []
    result = nnspec.train(spec(), progress=lambda epoch, total, row, seconds: seen.append((epoch, total, row["loss"])))
    assert seen == [(i + 1, 3, row["loss"]) for i, row in enumerate(result.history)]
    nnspec.train(spec(epochs=1), progress=False)
    assert fake_tqdm == []
    with pytest.raises(TypeError, match="`progress` is True, False, None or a callable, not str"):
        nnspec.train(spec(), progress="yes")


def test_without_tqdm_progress_true_says_what_to_install_before_training(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # `import tqdm.auto` now fails
    for text in (spec(), spec(lr="sweep(0.03, 0.3)")):
        with pytest.raises(ImportError, match=re.escape("pip install 'nnspec[notebook]'")):
            nnspec.train(text, progress=True, out=tmp_path / "run")
        assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_resume_needs_a_run_folder_for_single_runs_and_sweeps():
    for text in (spec(), spec(lr="sweep(0.03, 0.3)")):
        with pytest.raises(ValueError, match="`resume=True` needs the run folder to resume: pass `out`"):
            nnspec.train(text, resume=True)


def _interrupt_after(lines: int):
    seen = []

    def progress(line: str) -> None:
        seen.append(line)
        if len(seen) == lines:
            raise KeyboardInterrupt
    return progress


def test_a_sweep_takes_progress_and_resume_as_a_single_run(fake_tqdm, tmp_path):
    text = spec(lr="sweep(0.03, 0.3)", epochs=4)
    whole = nnspec.train(text, progress=True)
    (bar,) = fake_tqdm
    assert bar.total == 4 and bar.updates == [1] * 4 and bar.closed
    assert all(isinstance(p, str) and p.startswith(f"epoch {i + 1}/4") for i, p in enumerate(bar.postfix))
    # interrupted after 2 epochs (checkpoint_every=0: each epoch saved), then resumed by
    # nnspec.train with a bar that starts where the sweep stopped
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit_sweep(nnspec.check_text(text), out=run, progress=_interrupt_after(2), checkpoint_every=0.0)
    resumed = nnspec.train(text, out=run, resume=True, progress=True)
    bar = fake_tqdm[-1]
    assert bar.total == 4 and bar.initial == 2 and bar.updates == [1, 1] and bar.closed
    for a, b in zip(whole.members, resumed.members):
        assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in b.history], rel=1e-6)
    # a sweep's callable gets its line of text an epoch
    lines: list[str] = []
    nnspec.train(spec(lr="sweep(0.03, 0.3)", epochs=2), progress=lines.append)
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


def test_a_stack_that_stops_early_moves_the_bar_to_its_end(fake_tqdm):
    text = spec(lr="sweep(1e-9, 2e-9)", epochs=8).replace("batch 30", "batch 30\n    early_stop patience=1 min_delta=0.1")
    result = nnspec.train(text, progress=True)
    (bar,) = fake_tqdm
    ran = max(len(m.history) for m in result.members)
    assert ran < 8 and bar.n == 8 and bar.updates == [1] * ran + [8 - ran]


def test_real_tqdm_draws_a_bar(capsys):
    pytest.importorskip("tqdm")
    nnspec.train(spec(epochs=2), progress=True)
    assert "2/2" in capsys.readouterr().err


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_repr_html_shows_the_learning_curve_as_a_png(monkeypatch):
    pytest.importorskip("matplotlib")
    result = nnspec.train(spec(epochs=3).replace("batch 30", "batch 30\n    early_stop patience=5"))
    page = result._repr_html_()
    found = re.search(r"<img alt='learning curve' src='data:image/png;base64,([A-Za-z0-9+/=]+)'/>", page)
    assert found is not None
    png = base64.b64decode(found.group(1), validate=True)
    assert _png_size(png) == (int(CURVE_INCHES[0] * CURVE_DPI), int(CURVE_INCHES[1] * CURVE_DPI))
    # the picture is drawn, not blank: it holds many colours
    from matplotlib.image import imread
    import io
    pixels = imread(io.BytesIO(png))
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    assert "<table>" in page and page.index("<img") < page.index("<table>")
    assert len(repr(result).splitlines()) < 8
    # without matplotlib: the summary and the table, no picture
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    bare = result._repr_html_()
    assert "<img" not in bare and "<table>" in bare


def test_a_sweeps_repr_html_shows_the_sweeps_curve_as_nnspec_plot_draws_it(monkeypatch):
    pytest.importorskip("matplotlib")
    from nnspec import plot
    drawn = []
    real = plot.sweep_figure

    def spy(sweeps, axis=None):
        drawn.append(sweeps)
        return real(sweeps, axis)
    monkeypatch.setattr(plot, "sweep_figure", spy)
    result = nnspec.train(spec(lr="sweep(0.01, 0.1, 1.0)", epochs=3))
    page = result._repr_html_()
    found = re.search(r"<img alt='sweep curve' src='data:image/png;base64,([A-Za-z0-9+/=]+)'/>", page)
    assert found is not None, page[:300]
    png = base64.b64decode(found.group(1), validate=True)
    assert _png_size(png) == SWEEP_PANEL
    import io

    from matplotlib.image import imread
    pixels = imread(io.BytesIO(png))
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    # the picture's data are the models' own: their settings and histories
    (sweeps,) = drawn
    (sweep,) = sweeps
    assert [m["setting"] for m in sweep.members] == [m.setting for m in result.members]
    assert [m["history"] for m in sweep.members] == [m.history for m in result.members]
    fig = real(sweeps)
    (ax,) = fig.axes
    final = ax.lines[0]
    want = sorted((m.setting["lr"], m.history[-1]["val_loss"]) for m in result.members if m.diverged is None)
    np.testing.assert_allclose(np.column_stack(final.get_data()), want)
    assert page.index("<pre>") < page.index("<img") and "rank" in page
    # without matplotlib: the table only
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    bare = result._repr_html_()
    assert "<img" not in bare and bare.startswith("<pre>") and "rank" in bare
