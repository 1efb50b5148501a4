"""Writes shop.csv, the data of specs/shop_columns.nn: 200 made-up visitors of an online
shop, each with an age, a number of pages viewed, the channel they came from and their
city (words), and whether they bought something (yes/no). About one cell in twelve is
left empty, as real forms are. Run from this folder: `python make_shop.py` (the file is
committed; this says how it was made)."""

import numpy as np

rng = np.random.default_rng(7)
n = 200
age = rng.integers(18, 70, size=n)
pages = rng.poisson(6, size=n)
channel = rng.choice(["ad", "email", "search", "social"], size=n, p=[0.3, 0.2, 0.35, 0.15])
city = rng.choice(["lima", "oslo", "paris", "rome"], size=n)
lift = {"ad": -0.5, "email": 1.0, "search": 0.5, "social": -1.0}
score = 0.35 * (pages - 6) + np.array([lift[c] for c in channel]) - 0.02 * (age - 40) + 0.5 * rng.normal(size=n)
bought = np.where(score > 0, "yes", "no")
with open("shop.csv", "w", encoding="utf-8") as f:
    f.write("age,pages,channel,city,bought\n")
    for row in zip(age, pages, channel, city, bought):
        cells = [str(c) for c in row]
        for j in range(4):  # never the target
            if rng.random() < 1 / 12:
                cells[j] = ""
        f.write(",".join(cells) + "\n")
