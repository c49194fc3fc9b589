"""The generator as a consumer of a checkpoint sees it: at the checkpoint's own progressive-growing
phase, in float32.

An official snapshot stores its ``lod``; its metrics and images evaluate ``Gs`` there, with the
output upsampled to the full resolution (``training_loop.py`` grids, ``metrics/*``). A
:class:`PhaseGenerator` is a :class:`~stylegan_jax.networks.Generator` (same parameters, same
methods) that renders at ``phase_resolution`` with ``phase_fade`` unless a call asks for another
resolution, and always returns full-resolution images (nearest upsampling, as the official
``Gs`` output at ``lod > 0``). Metrics and sampling run it in float32 whatever the run's
``compute_dtype`` (the official metrics run float32 graphs; PPL's eps = 1e-4 finite difference
is meaningless in bfloat16).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from stylegan_jax.layers import upscale2d
from stylegan_jax.networks import Generator, num_style_layers


class PhaseGenerator(Generator):
    """``Generator`` at one phase: ``phase_resolution`` (None: full) and ``phase_fade``, output
    nearest-upsampled to ``resolution``. Per-layer noise lists may be given for the full
    resolution; the layers above the phase are dropped."""

    phase_resolution: int | None = None
    phase_fade: float = 0.0

    def _phase(self, current_resolution: int | None, fade: Any) -> tuple[int, Any]:
        if current_resolution is None:
            return self.phase_resolution or self.resolution, self.phase_fade
        return current_resolution, fade

    def _upscale(self, images: jax.Array, resolution: int) -> jax.Array:
        return upscale2d(images, self.resolution // resolution)

    @staticmethod
    def _noise(noise: Sequence[Any] | None, resolution: int) -> Sequence[Any] | None:
        return None if noise is None else list(noise)[:num_style_layers(resolution)]

    def synthesize(self, w: jax.Array, *, current_resolution: int | None = None,
                   fade: jax.Array | float = 0.0,
                   noise: Sequence[jax.Array | None] | None = None) -> jax.Array:
        res, fade = self._phase(current_resolution, fade)
        images = super().synthesize(w, current_resolution=res, fade=fade,
                                    noise=self._noise(noise, res))
        return self._upscale(images, res)

    def __call__(self, z: jax.Array | None = None, labels: jax.Array | None = None, *,
                 current_resolution: int | None = None, fade: jax.Array | float = 0.0,
                 noise: Sequence[jax.Array | None] | None = None, **kwargs: Any) -> jax.Array:
        res, fade = self._phase(current_resolution, fade)
        images = super().__call__(z, labels, current_resolution=res, fade=fade,
                                  noise=self._noise(noise, res), **kwargs)
        return self._upscale(images, res)


def at_phase(G: Generator, resolution: int | None = None, fade: float = 0.0, *,
             dtype: Any = jnp.float32) -> PhaseGenerator:
    """``G`` (same parameters) rendering at ``resolution`` (None: full) and ``fade``, computing
    in ``dtype`` (float32 for metrics and sampling)."""
    fields = {f.name: getattr(G, f.name) for f in dataclasses.fields(Generator)
              if f.init and f.name not in ("parent", "name")}
    fields["dtype"] = dtype
    full = resolution is None or (resolution == G.resolution and not fade)
    return PhaseGenerator(**fields, phase_resolution=None if full else int(resolution),
                          phase_fade=0.0 if full else float(fade))


def lod_phase(resolution: int, lod: float) -> tuple[int, float]:
    """An official ``lod`` (halvings below full ``resolution``) -> ``(current resolution,
    fade)`` as the schedule defines them: ``2 ** (log2(R) - floor(lod))`` and ``frac(lod)``."""
    if lod < 0 or 2 ** math.floor(lod) > resolution // 4:
        raise ValueError(f"lod {lod} is outside [0, log2({resolution}) - 2]")
    return resolution >> math.floor(lod), lod - math.floor(lod)


def phase_note(G: PhaseGenerator) -> str | None:
    """A line saying that ``G`` is evaluated below its final resolution or mid fade-in, or
    None at the final resolution."""
    if G.phase_resolution is None:
        return None
    r = G.phase_resolution
    return (f"this checkpoint was saved at {r}x{r} fade {G.phase_fade:.2f} (progressive "
            f"growing; final {G.resolution}x{G.resolution}): evaluated there, upsampled to "
            f"{G.resolution}x{G.resolution} as the official code does")
