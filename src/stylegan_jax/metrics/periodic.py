"""FID during training: evaluated every ``config.fid.every_kimg`` on the EMA generator.

During progressive growing the generator is evaluated as the official Gs is: at the current
phase's resolution and fade, nearest-upsampled to the full resolution. Real statistics are
computed once per run (cached on disk), generated latents use a fixed seed so successive
values are comparable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import ml_collections

from stylegan_jax.layers import upscale2d
from stylegan_jax.metrics import frechet as fid_lib
from stylegan_jax.metrics import inception as inception_lib
from stylegan_jax.networks import Generator


@dataclasses.dataclass(frozen=True)
class PhaseGenerator:
    """``Generator`` at one progressive-growing phase with full-resolution output; hashable so
    the compiled sampling step is reused while the phase lasts."""

    generator: Generator
    resolution: int
    fade: float

    @property
    def latent_size(self) -> int:
        return self.generator.latent_size

    @property
    def label_size(self) -> int:
        return self.generator.label_size

    def apply(self, variables: Any, z: jax.Array, labels: jax.Array | None = None, *,
              rngs: dict | None = None) -> jax.Array:
        images = self.generator.apply(variables, z, labels, current_resolution=self.resolution,
                                      fade=self.fade, rngs=rngs)
        return upscale2d(images, self.generator.resolution // self.resolution)


class PeriodicFID:
    """Decides when FID is due and computes it (``config.fid``: ``every_kimg``,
    ``num_images``, ``batch_size``, ``inception_weights``, ``inception_mode``).

    The Inception weights are loaded when this is built, so a missing file fails before any
    training. ``extractor`` replaces the Inception network (tests use a cheap stand-in).
    """

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                 start_nimg: int, cache_dir: str | Path,
                 extractor: fid_lib.FeatureExtractor | None = None):
        self.config = config
        self.mesh = mesh
        self.interval = int(config.fid.every_kimg * 1000)
        if self.interval <= 0:
            raise ValueError("config.fid.every_kimg must be positive to evaluate FID")
        self.extractor = extractor or inception_lib.InceptionFeatures(
            inception_lib.load_inception(config.fid.inception_weights or None),
            config.fid.inception_mode)
        self.cache_dir = Path(cache_dir)
        self._bucket = start_nimg // self.interval
        self._reals: fid_lib.Stats | None = None

    def due(self, nimg: int, done: bool) -> bool:
        """True at the first tick past each multiple of the interval, and at the end."""
        return nimg // self.interval != self._bucket or done

    def __call__(self, G: Generator, variables: Any, resolution: int, fade: float,
                 nimg: int) -> float:
        """FID of ``G`` at the phase's current ``resolution`` and ``fade``, ``nimg`` images
        into training."""
        fid = self.config.fid
        if self._reals is None:
            self._reals = fid_lib.dataset_stats(
                self.config.dataset.data_dir, self.config.dataset.name, self.extractor,
                num_images=fid.num_images, mirror=self.config.dataset.mirror_augment,
                seed=self.config.seed, batch_size=fid.batch_size, mesh=self.mesh,
                cache_dir=self.cache_dir,
                cache_key=f"{fid.inception_mode}:{fid.inception_weights}:{self.extractor.dim}")
        self._bucket = nimg // self.interval
        generator = PhaseGenerator(G, resolution, float(fade))
        return fid_lib.fid(generator, variables, self._reals, self.extractor,
                           num_images=fid.num_images, batch_size=fid.batch_size,
                           seed=self.config.seed, mesh=self.mesh)
