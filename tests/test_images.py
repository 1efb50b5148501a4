"""`data images("folder")`: one sub-folder of images per class (nnspec/images.py)."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.data import DataError, DataSource, load

from cli_helpers import run_cli

Image = pytest.importorskip("PIL.Image")

SPEC = """model light {
    input image[SHAPE]
    rescale divide=255
    flatten
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.05
train {
    data images("photos")
    split val=0.25
    batch 8
    epochs 3
    seed 0
    metrics accuracy
}
"""


def _folder(root: Path, sizes=((12, 10),), per_class: int = 8, classes=("dark", "light")) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        d = root / "photos" / name
        d.mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            a = np.clip(rng.normal(40 + 160 * k, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{i:02d}.png")
    return root / "photos"


def _source(path: str = "photos") -> DataSource:
    return DataSource("images", {"path": path})


def test_images_are_read_by_class_folder_in_sorted_order(tmp_path):
    photos = _folder(tmp_path, sizes=((8, 6),), classes=("b_light", "a_dark"))
    (photos / "a_dark" / "notes.txt").write_text("not an image")
    (photos / "a_dark" / ".hidden.png").write_bytes(b"not read")
    ds = load(_source(), seed=0, base_dir=tmp_path, task="binary", shape=(8, 6, 3))
    assert ds.classes == ("a_dark", "b_light") and ds.x.shape == (16, 8, 6, 3)
    want = np.stack([np.asarray(Image.open(photos / c / f"{i:02d}.png"), np.float32)
                     for c in ("a_dark", "b_light") for i in range(8)])
    np.testing.assert_array_equal(ds.x, want)  # the same size: the pixels as stored, 0..255
    np.testing.assert_array_equal(ds.y[:, 0], [0] * 8 + [1] * 8)


def test_images_are_converted_and_resized_as_pillow_does(tmp_path):
    photos = _folder(tmp_path, sizes=((12, 10), (5, 7)), classes=("x", "y", "z"))
    ds = load(_source(), seed=0, base_dir=tmp_path, task="multiclass", shape=(6, 4, 1))
    assert ds.x.shape == (24, 6, 4, 1) and ds.classes == ("x", "y", "z")
    one = Image.open(photos / "y" / "01.png").convert("L").resize((4, 6), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(ds.x[9, :, :, 0], np.asarray(one, np.float32))
    np.testing.assert_array_equal(ds.y, np.repeat([0, 1, 2], 8))


@pytest.mark.parametrize("make, words", [
    (lambda p: (p / "stray.png").write_bytes((p / "dark" / "00.png").read_bytes()), "outside any class folder"),
    (lambda p: (p / "empty").mkdir(), "class folder `empty` holds no image"),
    (lambda p: (p / "light" / "05.png").write_bytes(b"\x89PNG broken"), "light/05.png"),
])
def test_a_folder_that_is_not_one_folder_per_class_is_refused_where(tmp_path, make, words):
    make(_folder(tmp_path))
    with pytest.raises(DataError) as info:
        load(_source(), seed=0, base_dir=tmp_path, task="binary", shape=(8, 8, 3))
    assert words in str(info.value)


def test_one_class_a_regression_loss_and_a_missing_folder_are_refused(tmp_path):
    _folder(tmp_path, classes=("only",))
    with pytest.raises(DataError, match="one class folder, `only`"):
        load(_source(), seed=0, base_dir=tmp_path, task="binary", shape=(8, 8, 3))
    with pytest.raises(DataError, match="regression loss needs numbers"):
        load(_source(), seed=0, base_dir=tmp_path, task="regression", shape=(8, 8, 3))
    with pytest.raises(DataError, match="folder not found"):
        load(_source("nope"), seed=0, base_dir=tmp_path, task="binary", shape=(8, 8, 3))
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load(_source("f.png"), seed=0, base_dir=tmp_path, task="binary", shape=(8, 8, 3))


def test_without_pillow_the_message_says_what_to_install(tmp_path, monkeypatch):
    _folder(tmp_path)
    real = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(DataError, match="needs Pillow") as info:
        load(_source(), seed=0, base_dir=tmp_path, task="binary", shape=(8, 8, 3))
    assert "nnspec[images]" in (info.value.help or "")


@pytest.mark.parametrize("shape", ["64", "8, 8", "8, 8, 2"])
def test_an_input_that_is_not_an_image_is_e311_at_the_data_line(shape):
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.check_text(SPEC.replace("SHAPE", shape).replace("    flatten\n", "    flatten\n" if "," in shape else ""))
    (d,) = info.value.diagnostics
    assert d.code == "E311" and "(height, width, channels)" in d.message


def test_a_run_on_a_folder_is_evaluated_again_and_refused_once_an_image_changes(tmp_path):
    photos = _folder(tmp_path, sizes=((12, 10), (9, 9)), per_class=12)
    (tmp_path / "m.nn").write_text(SPEC.replace("SHAPE", "8, 8, 3"))
    code, _, err = run_cli("train", "m.nn", "--out", "run", "-q", cwd=tmp_path)
    assert code == 0, err
    code, out, err = run_cli("eval", "--run", "run", cwd=tmp_path)
    assert code == 0 and out.startswith("validation split (6 examples)"), err
    run = nnspec.load(tmp_path / "run")
    assert run.classes == ("dark", "light")
    (photos / "dark" / "00.png").write_bytes((photos / "light" / "00.png").read_bytes())
    code, _, err = run_cli("eval", "--run", "run", cwd=tmp_path)
    assert code == 1 and "has changed since the run was trained" in err
