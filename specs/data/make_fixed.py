"""Writes greenhouse_train.csv and greenhouse_test.csv, the data of specs/fixed_test.nn:
made-up seedlings, each with the hours of sun and the millilitres of water it had a day,
and whether it grew (yes/no). It grows with enough of both, and a little luck. The test
file is a separate draw, as a public dataset ships its own test file. Run from this
folder: `python make_fixed.py` (the files are committed; this says how they were made)."""

import numpy as np


def write(name: str, n: int, rng: np.random.Generator) -> None:
    sun = rng.uniform(0, 12, size=n).round(1)
    water = rng.uniform(0, 300, size=n).round(0).astype(int)
    score = (sun - 6) / 3 + (water - 150) / 60 + 0.5 * rng.normal(size=n)
    grew = np.where(score > 0, "yes", "no")
    with open(name, "w", encoding="utf-8") as f:
        f.write("sun,water,grew\n")
        for row in zip(sun, water, grew):
            f.write(",".join(str(c) for c in row) + "\n")


rng = np.random.default_rng(3)
write("greenhouse_train.csv", 160, rng)
write("greenhouse_test.csv", 60, rng)
