"""Writes tickets.npz, the data of specs/ticket_router.nn: 2,000 made-up support
tickets, each a title (6 numbers) and a body (4 numbers), labelled with a priority
(0/1) and a department (0, 1 or 2) that each depend on both. Run from this folder:
`python make_tickets.py` (the file is committed; this says how it was made)."""

import numpy as np

rng = np.random.default_rng(2026)
n = 2000
title = rng.normal(size=(n, 6)).astype(np.float32)
body = rng.normal(size=(n, 4)).astype(np.float32)
urgency = title[:, 0] + body[:, 1] + 0.3 * rng.normal(size=n)
priority = (urgency > 0).astype(np.int64)
scores = np.stack([title[:, 1] - body[:, 3], body[:, 0], title[:, 2] + body[:, 2]], axis=1)
department = np.argmax(scores + 0.3 * rng.normal(size=scores.shape), axis=1)
np.savez_compressed("tickets.npz", title=title, body=body, priority=priority, department=department)
