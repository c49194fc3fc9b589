"""Throughput of the full training iteration (D step with R1 and mixing + G step) on synthetic
data, after compilation and warm-up: what ``stylegan-jax bench-train`` prints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import ml_collections
import numpy as np

from stylegan_jax import parallel, training
from stylegan_jax.models import build_networks


@dataclass(frozen=True)
class IterationCost:
    """XLA's cost analysis of one training iteration, per image of the global batch."""

    resolution: int
    batch: int
    compute_dtype: str
    flops: float
    bytes_accessed: float

    def __str__(self) -> str:
        return (f"{self.resolution}x{self.resolution}, batch {self.batch}, {self.compute_dtype}: "
                f"{self.flops / self.batch / 1e9:,.1f} GFLOP/image, "
                f"{self.bytes_accessed / self.batch / 1e9:,.2f} GB accessed/image "
                f"(XLA cost analysis of the lowered iteration)")


def _total(cost, key: str) -> float:
    """One entry of a cost analysis, which jax returns as a dict or as a list of per-module
    dicts depending on the version."""
    parts = cost if isinstance(cost, (list, tuple)) else [cost]
    return float(sum(part.get(key, 0.0) for part in parts if part))



def _iteration(config: ml_collections.ConfigDict, batch: int, mesh: jax.sharding.Mesh | None,
               make_state) -> tuple[jax.sharding.Mesh, training.TrainState, Any]:
    """``(mesh, state, iteration)`` as the training loop builds them; ``make_state`` is
    :func:`training.create_train_state` or :func:`training.abstract_train_state`."""
    mesh = mesh or parallel.make_mesh()
    if batch % mesh.size:
        raise ValueError(f"batch {batch} is not divisible by {mesh.size} devices")
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    return (mesh, make_state(config, G, D, optimizer, mesh),
            training.make_train_iteration(config, G, D, optimizer, mesh))


def _batch_layout(config: ml_collections.ConfigDict, batch: int) -> dict[str, tuple]:
    """Shape and dtype of each entry of a global batch as the pipeline hands it to the step:
    full-resolution uint8 images, labels, and mirror flags when mirroring is on."""
    full = config.resolution
    layout = {"image": ((batch, full, full, config.num_channels), np.uint8),
              "label": ((batch,), np.int32)}
    if config.dataset.mirror_augment:
        layout["flip"] = ((batch,), np.bool_)
    return layout

def lower_iteration(config: ml_collections.ConfigDict, resolution: int, batch: int,
                    mesh: jax.sharding.Mesh | None = None) -> jax.stages.Lowered:
    """The training iteration lowered exactly as :func:`bench_train` runs it, from abstract
    shapes (nothing is allocated, so this works for 1024x1024 models on any host)."""
    mesh, state, iteration = _iteration(config, batch, mesh, training.abstract_train_state)
    sharding = parallel.data_sharding(mesh)
    data = {key: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
            for key, (shape, dtype) in _batch_layout(config, batch).items()}
    return iteration.lower(state, data, 0, 0.5, 1e-3, 1e-3, 0.999, resolution=resolution)


def iteration_cost(config: ml_collections.ConfigDict, resolution: int, batch: int,
                   mesh: jax.sharding.Mesh | None = None) -> IterationCost:
    """FLOPs and bytes accessed of one iteration from XLA's cost analysis of the lowered
    (not yet backend-optimised) HLO, so the figure is the same on every machine."""
    cost = lower_iteration(config, resolution, batch, mesh).cost_analysis()
    if not cost:
        raise RuntimeError("this jax backend offers no cost analysis")
    return IterationCost(resolution, batch, config.compute_dtype, _total(cost, "flops"),
                         _total(cost, "bytes accessed"))


@dataclass(frozen=True)
class BenchResult:
    resolution: int
    batch: int
    devices: int
    compute_dtype: str
    compile_seconds: float
    step_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.batch / self.step_seconds

    def __str__(self) -> str:
        return (f"{self.resolution}x{self.resolution}, batch {self.batch}, {self.devices} "
                f"device(s), {self.compute_dtype}: {self.images_per_second:,.1f} images/s, "
                f"{self.step_seconds * 1000:,.1f} ms/iteration "
                f"(compile {self.compile_seconds:.1f} s)")


def bench_train(config: ml_collections.ConfigDict, resolution: int, batch: int,
                steps: int = 20, warmup: int = 3, fade: float = 0.5,
                mesh: jax.sharding.Mesh | None = None) -> BenchResult:
    """Times ``steps`` training iterations at ``resolution`` (static phase, mid-fade so both
    blend paths run) with global batch ``batch`` of random full-resolution uint8 reals."""
    mesh, state, iteration = _iteration(config, batch, mesh, training.create_train_state)
    rng = np.random.default_rng(0)
    highs = {"image": 256, "label": max(config.label_size, 1), "flip": 2}
    sharding = parallel.data_sharding(mesh)
    data = {key: jax.device_put(rng.integers(0, highs[key], shape).astype(dtype), sharding)
            for key, (shape, dtype) in _batch_layout(config, batch).items()}

    def run(step: int):
        nonlocal state
        state, metrics = iteration(state, data, step, fade, 1e-3, 1e-3, 0.999,
                                   resolution=resolution)
        return metrics

    start = time.perf_counter()
    jax.block_until_ready(run(0))
    compile_seconds = time.perf_counter() - start
    for i in range(warmup):
        run(1 + i)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(steps):
        metrics = run(1 + warmup + i)
    jax.block_until_ready((state, metrics))
    step_seconds = (time.perf_counter() - start) / steps
    if not all(np.isfinite(float(v)) for v in jax.device_get(metrics).values()):
        raise FloatingPointError("the benchmarked iteration produced non-finite losses")
    return BenchResult(resolution, batch, mesh.size, config.compute_dtype, compile_seconds,
                       step_seconds)

