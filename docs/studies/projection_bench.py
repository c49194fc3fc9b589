"""Projection throughput on a run: batch 1 vs batch 32, 50 steps, the second call timed (the
first also compiles and maps the 10,000 z of the start). BENCHMARKS.md's projection rows.

    python docs/studies/projection_bench.py LPIPS_WEIGHTS [RUN]   # default RUN: runs/digits
"""

import json
import sys
import time

import stylegan_jax as sg
from stylegan_jax import parallel, projection
from stylegan_jax.images import to_uint8
from stylegan_jax.metrics.lpips import load_lpips


def main(lpips_weights: str, run: str = "runs/digits", steps: int = 50) -> None:
    model = sg.load(run)
    lpips_params = load_lpips(lpips_weights)
    targets = to_uint8(model.generate(seeds=range(32)))
    mesh = parallel.make_mesh()
    for batch in (1, 32):
        kw = dict(steps=steps, batch_size=batch, mesh=mesh)
        t0 = time.perf_counter()
        projection.project(model, targets[:batch], lpips_params, **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        projection.project(model, targets[:batch], lpips_params, **kw)
        timed = time.perf_counter() - t0
        print(json.dumps(dict(batch=batch, steps=steps, devices=mesh.size,
                              first_call_s=round(first, 2), timed_s=round(timed, 2),
                              target_steps_per_s=round(batch * steps / timed, 1),
                              targets_per_s_at_1000_steps=round(batch * steps / timed / 1000,
                                                                4))), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
