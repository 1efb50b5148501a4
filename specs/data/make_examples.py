"""Writes the data files of specs/parquet_example.nn, specs/idx_digits.nn and
specs/image_folder.nn into a folder (this one by default), which are not committed
because they are binary: `python specs/data/make_examples.py [FOLDER]`. The tests call
`write_all(folder)` on a copy of specs/ and train each spec there.

- `flowers.parquet`: 300 made-up flowers, `petal` and `stem` lengths (floats), `scented`
  (a boolean) and their `kind` (text: `iris`, `lily` or `rose`); needs pyarrow.
- `digits-images-idx3-ubyte.gz`, `digits-labels-idx1-ubyte.gz`: scikit-learn's 1,797
  8×8 handwritten digits in MNIST's IDX format, pixels 0..16 stretched to 0..255.
- `stripes/`: a folder of 16×16 RGB PNG images, one sub-folder per class,
  `across/` (horizontal stripes) and `down/` (vertical ones), 40 each; needs Pillow.
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np


def write_parquet(folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(11)
    n = 300
    kind = rng.integers(0, 3, size=n)
    petal = np.array([2.0, 4.0, 6.0])[kind] + 0.6 * rng.normal(size=n)
    stem = np.array([30.0, 60.0, 45.0])[kind] + 6.0 * rng.normal(size=n)
    scented = (kind == 2) ^ (rng.random(n) < 0.1)
    table = pa.table({"petal": petal.round(2), "stem": stem.round(1), "scented": scented,
                      "kind": np.array(["iris", "lily", "rose"])[kind]})
    path = folder / "flowers.parquet"
    pq.write_table(table, path)
    return path


def _idx(a: np.ndarray) -> bytes:
    """IDX: two zero bytes, the type (0x08, unsigned bytes), the number of axes, each axis's
    length as a big-endian 32-bit number, then the values."""
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def write_idx(folder: Path) -> tuple[Path, Path]:
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255 / 16))  # (1797, 8, 8), 0..255
    out = folder / "digits-images-idx3-ubyte.gz", folder / "digits-labels-idx1-ubyte.gz"
    for path, a in zip(out, (images, digits.target)):
        path.write_bytes(gzip.compress(_idx(a), mtime=0))
    return out


def write_images(folder: Path) -> Path:
    from PIL import Image
    rng = np.random.default_rng(5)
    root = folder / "stripes"
    for label, axis in (("across", 0), ("down", 1)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(40):
            period = int(rng.integers(3, 6))
            wave = (np.arange(16) + rng.integers(0, period)) % period < period / 2
            stripes = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 16, axis=1 - axis)
            color = rng.integers(80, 256, size=3)
            pixels = stripes[..., None] * color + rng.integers(0, 40, size=(16, 16, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / label / f"{i:02d}.png")
    return root


def write_all(folder: Path) -> None:
    write_parquet(folder)
    write_idx(folder)
    write_images(folder)


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if sys.argv[1:] else Path(__file__).resolve().parent)
