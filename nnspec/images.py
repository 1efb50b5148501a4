"""`data images("photos/")`: a folder of images with one sub-folder per class, as Keras's
`image_dataset_from_directory` reads it.

- The classes are the sub-folders' names, in sorted order (class 0 is the first).
- The images are the files in each class folder (not below it) whose suffix is one of
  `IMAGE_SUFFIXES`, in sorted order; other files, and names starting with `.`, are not
  images and are left alone. A file with an image suffix that Pillow cannot read is an
  error naming it.
- Each image is converted to the model input's channels (1: grayscale `L`, 3: `RGB`,
  4: `RGBA`) and resized to its height and width (bilinear, Keras's default), unless it is
  that size already. Pixels are numbers from 0 to 255: `rescale divide=255` in the model
  maps them to [0, 1].

Pillow is an optional extra (`pip install 'nnspec[images]'`), imported only here and only
when a folder is read. NumPy only; no JAX.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow's mode


class FolderError(Exception):
    """A problem with the folder or one of its images; `path` names the file or folder."""

    def __init__(self, message: str, path: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message, self.path, self.help = message, path, help


def resolve(path: str, base_dir: Path) -> Path:
    full = Path(path) if os.path.isabs(path) else Path(base_dir) / path
    if full.is_file():
        raise FolderError("is a file, not a folder", path,
                          "`images(...)` reads a folder with one sub-folder of images per class")
    if not full.is_dir():
        raise FolderError("folder not found", path, f"looked for `{full}`; paths are relative to the spec's folder")
    return full


def listing(full: Path, display: str) -> list[tuple[str, list[Path]]]:
    """(class name, its image files) per class folder, sorted; refuses a folder that is not
    one sub-folder of images per class."""
    entries = sorted(p for p in full.iterdir() if not p.name.startswith("."))
    stray = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if stray:
        raise FolderError(f"`{stray[0].name}` is an image outside any class folder", display,
                          "put each image in the sub-folder named after its class")
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        raise FolderError("holds no class folders", display,
                          "make one sub-folder per class, named after it, holding that class's images")
    out = []
    for folder in classes:
        images = sorted(p for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FolderError(f"class folder `{folder.name}` holds no image ({', '.join(IMAGE_SUFFIXES)})",
                              f"{display.rstrip('/')}/{folder.name}")
        out.append((folder.name, images))
    return out


def read(path: str, *, base_dir: Path, shape: tuple[int, ...], budget: int) -> tuple[np.ndarray, np.ndarray,
                                                                                     tuple[str, ...]]:
    """(pixels (n, height, width, channels) float32, class indices (n,), class names)."""
    if len(shape) != 3 or shape[2] not in MODES:
        raise FolderError(f"images need an input of (height, width, channels) with 1, 3 or 4 channels, "
                          f"not {shape}", path)
    try:
        from PIL import Image
    except ImportError:
        raise FolderError("reading images needs Pillow, which is not installed", path,
                          "install it with `pip install 'nnspec[images]'`") from None
    full = resolve(path, base_dir)
    classes = listing(full, path)
    height, width, channels = shape
    n = sum(len(files) for _, files in classes)
    if n * height * width * channels * 4 > budget:
        from nnspec.check import show_bytes
        raise FolderError(f"{n:,} images of {height}×{width}×{channels} take more than the "
                          f"{show_bytes(budget)} allowed (half of this machine's memory)", path,
                          "use fewer or smaller images")
    x = np.empty((n, height, width, channels), np.float32)
    y = np.empty(n, np.int64)
    i = 0
    for k, (_, files) in enumerate(classes):
        for file in files:
            shown = os.path.join(path, file.parent.name, file.name)
            try:
                with Image.open(file) as im:
                    im = im.convert(MODES[channels])
                    if im.size != (width, height):
                        im = im.resize((width, height), Image.Resampling.BILINEAR)
                    pixels = np.asarray(im, dtype=np.float32)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise FolderError(f"cannot read the image: {exc}", shown,
                                  "replace the file, or remove it from the folder") from None
            x[i] = pixels.reshape(height, width, channels)
            y[i] = k
            i += 1
    return x, y, tuple(name for name, _ in classes)


def digest(full: Path) -> dict[str, Any]:
    """What a run records of a folder of images: every image's relative path, size and
    SHA-256, hashed together (a changed, added or removed image changes it)."""
    h = hashlib.sha256()
    count = size = 0
    for name, files in listing(full, str(full)):
        for file in files:
            data = file.read_bytes()
            h.update(f"{name}/{file.name}\0{len(data)}\0".encode())
            h.update(hashlib.sha256(data).digest())
            count, size = count + 1, size + len(data)
    return {"images": count, "bytes": size, "sha256": h.hexdigest()}
