"""Throughput of the full training iteration (D step with R1 and mixing + G step) on synthetic
data, after compilation and warm-up: what ``stylegan-jax bench-train`` prints."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import ml_collections
import numpy as np

from stylegan_jax import parallel, training
from stylegan_jax.models import build_networks


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
    mesh = mesh or parallel.make_mesh()
    if batch % mesh.size:
        raise ValueError(f"batch {batch} is not divisible by {mesh.size} devices")
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    state = training.create_train_state(config, G, D, optimizer, mesh)
    iteration = training.make_train_iteration(config, G, D, optimizer, mesh)
    rng = np.random.default_rng(0)
    full = config.resolution
    images = rng.integers(0, 256, (batch, full, full, config.num_channels), np.uint8)
    labels = rng.integers(0, max(config.label_size, 1), (batch,), np.int32)
    sharding = parallel.data_sharding(mesh)
    data = {"image": jax.device_put(images, sharding), "label": jax.device_put(labels, sharding)}

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

