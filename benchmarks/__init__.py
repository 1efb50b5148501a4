"""nnspec against what its users would write instead: hand-written JAX + Optax (a jitted
step per batch, and a whole epoch fused in `lax.scan`), PyTorch eager and Keras 3 on JAX.

    python -m benchmarks [--quick] [--only W1,W2] [--repeat N] [--out FILE.json] [--report FILE.json]

The layout is the pipeline: `workloads` (what is trained, the data, the bars) →
`harness` (one `worker` subprocess per measurement, `baselines/` the implementations) →
`clock` (timing and memory arithmetic) → `report` (ratios, bars, tables); `frontend`
times `nnspec check` and `nnspec compile` on a 200-layer spec; `csv_read` times CSV
reading against `numpy.loadtxt` (and pyarrow); `stream` the peak memory of training on a
4 GiB `.npy` file with `train { stream }` (`--only stream`); `ablate` shows where
nnspec's epoch time goes. docs/benchmarks.md has the method and the latest results.
"""
