"""The example specs of each data source learn from their data: specs/fixed_test.nn from
its committed CSV files, and specs/parquet_example.nn, specs/idx_digits.nn and
specs/image_folder.nn from the binary files specs/data/make_examples.py writes into a
copy of specs/ (they are not committed)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

import nnspec
from nnspec.fit import fit
from nnspec.infer import evaluate

SPECS = Path(__file__).resolve().parent.parent / "specs"

# spec -> (the split measured, the least accuracy: each well above chance, which is 1/2,
# 1/3, 1/10 and 1/2; the larger class of greenhouse_test.csv is 32 of 60)
EXPECTED = {
    "fixed_test.nn": ("test", 0.85),
    "parquet_example.nn": ("test", 0.9),
    "idx_digits.nn": ("val", 0.9),
    "image_folder.nn": ("val", 0.9),
}
NEEDS = {"parquet_example.nn": "pyarrow", "idx_digits.nn": "sklearn", "image_folder.nn": "PIL"}


def make_examples() -> ModuleType:
    """specs/data/make_examples.py, the writer of the binary example data, as a module."""
    spec = importlib.util.spec_from_file_location("make_examples", SPECS / "data" / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_specs(dest: Path) -> Path:
    """specs/ copied to DEST/specs, without any data files generated in the checkout."""
    root = dest / "specs"
    shutil.copytree(SPECS, root, ignore=shutil.ignore_patterns("flowers.parquet", "*-ubyte.gz", "stripes"))
    return root


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of specs/ with the generated data files written into its data/ folder."""
    root = copy_specs(tmp_path_factory.mktemp("specs"))
    examples = make_examples()
    writers = {"parquet_example.nn": examples.write_parquet, "idx_digits.nn": examples.write_idx,
               "image_folder.nn": examples.write_images}
    for name, write in writers.items():
        try:
            __import__(NEEDS[name])
        except ImportError:
            continue  # its test skips
        write(root / "data")
    return root


def test_every_generated_file_is_ignored_by_git() -> None:
    ignored = (SPECS.parent / ".gitignore").read_text().split("\n")
    assert {"/specs/data/flowers.parquet", "/specs/data/digits-*-ubyte.gz", "/specs/data/stripes/"} <= set(ignored)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_spec_learns(name: str, specs: Path) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    path = specs / name
    program = nnspec.check_text(path.read_text(), filename=str(path))
    result = fit(program)
    part, least = EXPECTED[name]
    split = getattr(result.splits, part)
    assert split is not None and len(split) > 0
    accuracy = evaluate(result.model, result.params, split, program)["accuracy"]
    assert accuracy >= least, f"{name}: {part} accuracy {accuracy:.3f}"


def test_fixed_test_file_is_the_test_split(specs: Path) -> None:
    from nnspec.prepare import prepare
    program = nnspec.check_text((specs / "fixed_test.nn").read_text(), filename=str(specs / "fixed_test.nn"))
    splits = prepare(program, specs)
    assert splits.test is not None and len(splits.test) == 60  # every row of greenhouse_test.csv
    assert splits.val is not None and len(splits.val) == 40  # a quarter of the training file held out
    assert len(splits.train) + len(splits.val) == 160
