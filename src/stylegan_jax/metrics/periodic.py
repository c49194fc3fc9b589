"""Metrics during training: ``config.metrics`` every ``config.metrics_every_kimg`` on the EMA
generator, through the same driver as ``stylegan-jax metrics`` (:func:`.registry.evaluate`).

During progressive growing the generator is evaluated as the official Gs is: at the current
phase's resolution and fade, upsampled to the full resolution, in float32 whatever the
training dtype. Real statistics go to the same cache as the CLI's (same key), generated
samples use ``config.seed`` so that successive values are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import ml_collections

from stylegan_jax.metrics import registry
from stylegan_jax.metrics import run as run_lib
from stylegan_jax.networks import Generator
from stylegan_jax.sampling import at_phase


def networks_for(config: ml_collections.ConfigDict) -> registry.Networks:
    """The metric networks ``config.eval`` names (loaded on first use)."""
    return registry.Networks(inception_weights=config.eval.inception_weights or None,
                             inception_mode=config.eval.inception_mode,
                             lpips_weights=config.eval.lpips_weights or None)


def cache_dir(config: ml_collections.ConfigDict) -> Path:
    return Path(config.eval.cache_dir).expanduser() if config.eval.cache_dir else \
        registry.DEFAULT_CACHE


class PeriodicMetrics:
    """Decides when ``config.metrics`` are due and computes them. The networks they need are
    loaded when this is built, so a missing weights file fails before any training.
    ``networks`` replaces them (tests use cheap stand-ins)."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                 start_nimg: int, networks: registry.Networks | None = None):
        self.config = config
        self.mesh = mesh
        self.names = list(config.metrics)
        if not self.names:
            raise ValueError("config.metrics names no metric to evaluate")
        self.interval = int(config.metrics_every_kimg * 1000)
        if self.interval <= 0:
            raise ValueError("config.metrics_every_kimg must be positive to evaluate metrics")
        best = config.metrics_best or self.names[0]
        if best not in self.names:
            raise ValueError(f"config.metrics_best {best!r} is not in config.metrics "
                             f"{self.names}")
        self.best = registry.get(best)
        self.networks = networks or networks_for(config)
        run_lib.add_run_classifiers(self.networks, config, self.names)
        for name in self.names:
            for need in ("classifier", "digits"):
                if need in registry.get(name).needs and (why := self.networks.missing(need)):
                    raise ValueError(f"config.metrics: {name} cannot run: {why}")
        self.networks.load(registry.needs_of(self.names))
        self.reals = run_lib.real_data(config)
        self.ppl_crop = run_lib.ppl_crop(config.eval.ppl_crop, config.dataset.name)
        self._bucket = start_nimg // self.interval

    def due(self, nimg: int, done: bool) -> bool:
        """True at the first tick past each multiple of the interval, and at the end."""
        return nimg // self.interval != self._bucket or done

    def score(self, results: dict[str, float]) -> float:
        """The checkpoint-ranking score of ``results`` (lower is better)."""
        value = results[self.best.key]
        return value if self.best.lower_is_better else -value

    def __call__(self, G: Generator, variables: Any, resolution: int, fade: float,
                 nimg: int) -> dict[str, float]:
        """``{key: value}`` of every metric for ``G`` at the phase's current ``resolution``
        and ``fade``, ``nimg`` images into training, plus each metric's numeric options as
        ``NAME/option`` (``num_samples``, ``ppl_crop`` as 0 or 1) so that the log records how
        it was run."""
        self._bucket = nimg // self.interval
        options: dict[str, float] = {}

        def record(name: str, values: dict[str, float], opts: dict[str, Any]) -> None:
            options.update({f"{name}/{k}": float(v) for k, v in opts.items()
                            if isinstance(v, bool | int | float)})

        results = registry.evaluate(
            self.names, at_phase(G, resolution, float(fade)), variables,
            self.reals, networks=self.networks, cache_dir=cache_dir(self.config),
            batch_size=self.config.eval.batch_size, seed=self.config.seed, mesh=self.mesh,
            ppl_crop=self.ppl_crop, on_result=record)
        return {**results, **options}
