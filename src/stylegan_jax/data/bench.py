"""Throughput of the input pipeline alone (``stylegan-jax data-bench``)."""

from __future__ import annotations

import time

from stylegan_jax.data.pipeline import InputPipeline


def images_per_second(pipeline: InputPipeline, global_batch_size: int, steps: int,
                      warmup: int = 3) -> float:
    """Global images/s delivered as on-device ``jax.Array`` batches, after ``warmup`` batches
    (thread start-up, first reads). Each batch is waited for, as a training step would."""
    for _ in range(warmup):
        pipeline.next_batch(global_batch_size)["image"].block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
        pipeline.next_batch(global_batch_size)["image"].block_until_ready()
    return steps * global_batch_size / (time.perf_counter() - start)
