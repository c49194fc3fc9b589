"""Throughput of the full training iteration (D step with R1 and mixing + G step) on synthetic
data, after compilation and warm-up: what ``stylegan-jax bench-train`` prints."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
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


def cost_total(cost, key: str) -> float:
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
    return IterationCost(resolution, batch, config.compute_dtype, cost_total(cost, "flops"),
                         cost_total(cost, "bytes accessed"))


def hlo_instructions(hlo_text: str) -> int:
    """Instructions of an HLO module's text (lines ``name = op(...)``, ROOT ones included)."""
    return len(re.findall(r"^\s*(?:ROOT )?%?[\w.\-]+ = ", hlo_text, flags=re.MULTILINE))


def device_bytes(compiled: jax.stages.Compiled) -> int | None:
    """Device memory one call of ``compiled`` needs by XLA's buffer assignment: its peak where
    the backend reports one, else arguments + outputs + temporaries - donated aliases."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    peak = getattr(stats, "peak_memory_in_bytes", 0)
    if peak:
        return int(peak)
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


@dataclass(frozen=True)
class CompileReport:
    """Ahead-of-time compilation of one training iteration: seconds to lower (trace to
    StableHLO) and to compile, the program's size before and after XLA's passes, and the
    device memory it needs."""

    resolution: int
    batch: int
    compute_dtype: str
    lower_seconds: float
    compile_seconds: float
    stablehlo_chars: int
    stablehlo_lines: int
    hlo_instructions: int
    device_bytes: int | None

    def __str__(self) -> str:
        memory = ("" if self.device_bytes is None
                  else f", needs {self.device_bytes / 2**30:,.2f} GiB")
        return (f"{self.resolution}x{self.resolution}, batch {self.batch}, {self.compute_dtype}: "
                f"lower {self.lower_seconds:.1f} s, compile {self.compile_seconds:.1f} s; "
                f"StableHLO {self.stablehlo_chars:,} chars / {self.stablehlo_lines:,} lines, "
                f"{self.hlo_instructions:,} optimised HLO instructions{memory}")


def compile_iteration(config: ml_collections.ConfigDict, resolution: int, batch: int,
                      mesh: jax.sharding.Mesh | None = None
                      ) -> tuple[jax.stages.Compiled, CompileReport]:
    """The iteration of :func:`lower_iteration`, compiled ahead of time (from abstract shapes:
    nothing is allocated), with its :class:`CompileReport`."""
    start = time.perf_counter()
    lowered = lower_iteration(config, resolution, batch, mesh)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    text = lowered.as_text()
    return compiled, CompileReport(
        resolution, batch, config.compute_dtype, lowered_at - start, done - lowered_at,
        len(text), text.count("\n") + 1, hlo_instructions(compiled.as_text() or ""),
        device_bytes(compiled))


@dataclass(frozen=True)
class BenchResult:
    resolution: int
    batch: int
    devices: int
    compute_dtype: str
    compile_seconds: float
    step_seconds: float
    lower_seconds: float = 0.0
    timed_steps: int = 0
    device_bytes: int | None = None  # XLA's buffer assignment of the compiled iteration
    peak_bytes_in_use: int | None = None  # the device allocator's peak (None on the CPU)

    @property
    def images_per_second(self) -> float:
        return self.batch / self.step_seconds

    def __str__(self) -> str:
        memory = ("" if self.peak_bytes_in_use is None
                  else f", peak {self.peak_bytes_in_use / 2**30:,.2f} GiB")
        return (f"{self.resolution}x{self.resolution}, batch {self.batch}, {self.devices} "
                f"device(s), {self.compute_dtype}: {self.images_per_second:,.1f} images/s, "
                f"{self.step_seconds * 1000:,.1f} ms/iteration "
                f"(lower {self.lower_seconds:.1f} s, compile {self.compile_seconds:.1f} s"
                f"{memory})")


def peak_bytes_in_use() -> int | None:
    """The first local device's allocator peak since the process started (None where the
    backend keeps no statistics, as the CPU)."""
    stats = jax.local_devices()[0].memory_stats()
    return None if not stats or "peak_bytes_in_use" not in stats else \
        int(stats["peak_bytes_in_use"])


def bench_train(config: ml_collections.ConfigDict, resolution: int, batch: int,
                steps: int = 20, warmup: int = 3, fade: float = 0.5,
                mesh: jax.sharding.Mesh | None = None, deadline: float | None = None,
                timing: Callable[[], AbstractContextManager] = contextlib.nullcontext
                ) -> BenchResult:
    """Times ``steps`` training iterations at ``resolution`` (static phase, mid-fade so both
    blend paths run) with global batch ``batch`` of random full-resolution uint8 reals.

    The iteration is compiled ahead of time (lower, then compile, each timed). With a
    ``deadline`` (``time.time()`` seconds), only as many of the ``steps`` are timed as the
    warm-up's pace says fit before it (at least one); ``timed_steps`` says how many ran.
    ``timing()`` is entered around the warm-up and the timed iterations (the bench suite
    pauses its background compiles there)."""
    mesh, state, iteration = _iteration(config, batch, mesh, training.create_train_state)
    rng = np.random.default_rng(0)
    highs = {"image": 256, "label": max(config.label_size, 1), "flip": 2}
    sharding = parallel.data_sharding(mesh)
    data = {key: jax.device_put(rng.integers(0, highs[key], shape).astype(dtype), sharding)
            for key, (shape, dtype) in _batch_layout(config, batch).items()}
    start = time.perf_counter()
    lowered = iteration.lower(state, data, 0, fade, 1e-3, 1e-3, 0.999, resolution=resolution)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compile_seconds = time.perf_counter() - lowered_at

    def run(step: int):
        nonlocal state
        state, metrics = compiled(state, data, step, fade, 1e-3, 1e-3, 0.999)
        return metrics

    jax.block_until_ready(run(0))
    with timing():
        warm_start = time.perf_counter()
        for i in range(warmup):
            run(1 + i)
        jax.block_until_ready(state)
        if deadline is not None:  # as many as fit, judged by the warm-up's pace
            per_step = (time.perf_counter() - warm_start) / max(warmup, 1)
            steps = max(1, min(steps, int((deadline - time.time()) / (1.5 * per_step))))
        start_timing = time.perf_counter()
        for i in range(steps):
            metrics = run(1 + warmup + i)
        jax.block_until_ready((state, metrics))
        step_seconds = (time.perf_counter() - start_timing) / steps
    if not all(np.isfinite(float(v)) for v in jax.device_get(metrics).values()):
        raise FloatingPointError("the benchmarked iteration produced non-finite losses")
    return BenchResult(resolution, batch, mesh.size, config.compute_dtype, compile_seconds,
                       step_seconds, lowered_at - start, steps, device_bytes(compiled),
                       peak_bytes_in_use())
