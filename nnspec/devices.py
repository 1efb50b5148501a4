"""Where a run trains: one device, or a 1-D mesh of devices that splits every batch.

Data parallelism with JAX's own machinery, nothing home-made: the epoch program is the
same `jax.jit` program as on one device, with one sharding constraint on each step's
batch (examples split over the mesh axis `data`). Parameters, optimizer state and the
training data stay replicated; XLA's SPMD partitioner splits each step's work over the
devices and inserts the reductions (the gradient's all-reduce, a batch norm's batch
mean) itself. So a run on N devices computes what the run on one computes, with the
same examples in the same order; only the order of floating-point sums differs.

`train { devices N }` (or `devices all`) and `nnspec train --devices N|all` ask for it.
The batch must split evenly (E320 when the spec says both numbers, E406 at the start of
training otherwise); `batch all` pads the one batch with examples of weight 0 instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from nnspec.checked import Program

# JAX is imported inside the functions: the checker (which must not import JAX) uses
# `nearest_batches`.


def available() -> int:
    """How many devices JAX sees (of the default backend)."""
    import jax
    return len(jax.devices())


def count_of(requested: int | str | None) -> int:
    """The device count `requested` asks for: `all`, a number, or None (one)."""
    if requested is None:
        return 1
    return available() if requested == "all" else int(requested)


def nearest_batches(batch: int, devices: int) -> tuple[int, ...]:
    """The batch sizes nearest `batch` that `devices` devices split evenly."""
    below = batch - batch % devices
    return tuple(b for b in (below, below + devices) if b >= devices)


def batch_choices(batch: int, devices: int) -> str:
    """Those sizes as a help writes them: "`batch 28` or `batch 32`" (E320, E406)."""
    return " or ".join(f"`batch {b}`" for b in nearest_batches(batch, devices))


class Devices:
    """The devices of a run: `count` of them, with a mesh when there are several.

    The mesh has two axes, `models` × `data`. A stack of `models` models (a sweep's group)
    puts gcd(models, count) of the devices on `models`: each trains its share of the models
    with no communication between them, and the rest of the devices split each of those
    models' batches. One model (a single run) is all `data`."""

    def __init__(self, count: int, models: int = 1, shard: bool = False) -> None:
        import math

        import jax
        import numpy as np
        from jax.sharding import Mesh
        self.count = count
        self.shard = shard  # `shard=params`: the weights and optimizer state split over `data` too (`state`)
        self.platform = jax.devices()[0].platform
        # Over several processes every array stays replicated (each process reads whole
        # results back: histories, checkpoints), so models are not split there.
        self.models = math.gcd(models, count) if jax.process_count() == 1 else 1
        self.data = count // self.models
        self.mesh = None
        if count > 1:
            grid = np.array(jax.devices()[:count], dtype=object).reshape(self.models, self.data)
            self.mesh = Mesh(grid, ("models", "data"))

    def for_stack(self, models: int) -> Devices:
        """The same devices, laid out for a stack of `models` models."""
        return self if models == self.models or self.count == 1 else Devices(self.count, models, self.shard)

    @property
    def spmd_axis(self) -> str | None:
        """The mesh axis that a stack's `jax.vmap` over its models maps onto."""
        return "models" if self.mesh is not None and self.models > 1 else None

    def per_model(self, tree: Any) -> Any:
        """A stacked tree (a leading model axis on every leaf) split over `models`."""
        return self._put(tree, "models") if self.models > 1 else self.replicated(tree)

    def state(self, tree: Any) -> Any:
        """A stacked state or weights tree placed for training: as `per_model`, and with
        `shard=params` each array's largest axis that the `data` devices divide split
        over them (an array with no such axis, as a scalar count, is copied). XLA's SPMD
        partitioner then gathers each array where a step needs it whole and keeps the
        updated state split the same way (ZeRO-3 / FSDP, with no code of ours)."""
        if not self.shard or self.mesh is None or self.data == 1:
            return self.per_model(tree)
        import jax
        from jax.sharding import NamedSharding, PartitionSpec
        mesh = self.mesh
        first = "models" if self.models > 1 else None

        def put(a: Any) -> Any:
            spec: list[str | None] = [first] + [None] * (a.ndim - 1)
            fits = [i for i in range(1, a.ndim) if a.shape[i] % self.data == 0]
            if fits:
                spec[max(fits, key=lambda i: a.shape[i])] = "data"
            return jax.device_put(a, NamedSharding(mesh, PartitionSpec(*spec)))
        return jax.tree_util.tree_map(put, tree)

    def replicated(self, tree: Any) -> Any:
        """`tree` on every device (on the one device, as `jax.device_put` puts it)."""
        return self._put(tree)

    def _put(self, tree: Any, *axes: str) -> Any:
        """`tree` placed on the mesh, its leading axes split over `axes` (none: copied).
        Host arrays become device arrays with no compilation (an eager `jnp.asarray`
        compiles a copy for each shape); device arrays stay as they are."""
        import jax
        if self.mesh is None:
            return jax.device_put(tree)
        from jax.sharding import NamedSharding, PartitionSpec
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec(*axes)))

    def gathered(self, index: Any, example: tuple[int, ...], read: Callable[[Any], Any]) -> Any:
        """The examples at `index` (steps × batch positions, or models × steps × batch
        positions, of a streamed window: nnspec/stream.py), each shaped `example`, as one array over the mesh,
        each batch split over `data` as `split_batch` splits it (and a stack's models over
        `models`). `read(rows)` reads the examples of an array of row numbers; it is
        called for this process's devices' shares only, so over several hosts each
        process reads its own part of every batch from its file, never the others'."""
        import jax
        from jax.sharding import NamedSharding, PartitionSpec
        assert self.mesh is not None, "one device reads its windows whole"
        first = (("models" if self.models > 1 else None),) if index.ndim == 3 else ()
        sharding = NamedSharding(self.mesh, PartitionSpec(*first, None, "data"))
        return jax.make_array_from_callback((*index.shape, *example), sharding,
                                            lambda where: read(index[tuple(where or ())[:index.ndim]]))

    def split_batch(self) -> Callable[[Any], Any] | None:
        """Inside the program: each array of a batch split over the devices by its first
        (example) axis. None on one device, so that its program is exactly the plain one."""
        if self.mesh is None:
            return None
        import jax
        from jax.sharding import NamedSharding, PartitionSpec
        sharding = NamedSharding(self.mesh, PartitionSpec("data"))

        def split(tree: Any) -> Any:
            return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, sharding), tree)
        return split

    def describe(self) -> str:
        """For the run's header: `cpu`, `4 × cpu, each batch split over them`, or for a stack
        `8 × cpu: 4 for the models × 2 for each batch` (`... and its weights` with `shard=params`)."""
        if self.count == 1:
            return self.platform
        weights = " and its weights" if self.shard else ""  # `shard=params`: split as `state` splits them
        if self.models == 1:
            return f"{self.count} × {self.platform}, each batch{weights} split over them"
        if self.data == 1:
            return f"{self.count} × {self.platform}, the models split over them"
        return f"{self.count} × {self.platform}: {self.models} for the models × {self.data} for each batch{weights}"


def for_run(program: Program, requested: int | str | None = None) -> Devices:
    """The devices `program` trains on: `requested` (the command line's `--devices`), else
    its `devices` setting, else one. E406 when there are not that many, or when their
    number does not split the batch."""
    from nnspec.prepare import fail
    t = program.train
    assert t is not None
    asked = requested if requested is not None else t.devices
    span = None if requested is not None else t.devices_span
    by = f"`--devices {requested}`" if requested is not None else "the spec"
    have = available()
    count = count_of(asked)
    if count > have:
        raise fail("E406", f"{by} asks for {count} devices, but JAX sees {have}", program, span,
                   label=f"{have} available", help=f"use `--devices {have}` or fewer"
                   if have > 1 else "train on one device: `--devices 1`, or leave `devices` out")
    if t.shard == "params" and count > 1:
        import jax
        if jax.process_count() > 1:
            raise fail("E408", f"`shard=params` splits the weights over the devices of one process, but this run "
                               f"has {jax.process_count()} processes", program, t.devices_span,
                       label="one process only", help="leave `shard=params` out over several hosts (each then "
                                                       "keeps a copy of the weights), or train in one process")
    if count > 1 and t.batch is not None and t.batch % count:
        raise fail("E406", f"a batch of {t.batch} does not split evenly over {count} devices ({by})", program,
                   span, label=f"{count} devices",
                   help=f"use {batch_choices(t.batch, count)}, or another number of devices")
    return Devices(count, shard=t.shard == "params")
