"""Interpolation between latents, one definition for numpy and JAX arrays: :func:`lerp`
(W space) and :func:`slerp` (Z space, the official ``perceptual_path_length.py`` slerp), used
by PPL and by the interpolation figures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # numpy.ndarray or jax.Array


def _xp(x: Array) -> Any:
    return jnp if isinstance(x, jax.Array) else np


def normalize(v: Array) -> Array:
    """``v`` scaled to unit length along the last axis."""
    xp = _xp(v)
    return v / xp.sqrt(xp.sum(xp.square(v), axis=-1, keepdims=True))


def lerp(a: Array, b: Array, t: Array | float) -> Array:
    """Linear interpolation ``a + (b - a) * t`` (official ``tflib.lerp``)."""
    return a + (b - a) * t


def slerp(a: Array, b: Array, t: Array | float) -> Array:
    """Spherical interpolation of the *normalised* ``a`` and ``b`` (``[..., D]``) at ``t``
    (broadcast against ``[..., 1]``); the result has unit norm, as the official PPL slerp.
    Exact at ``t = 0``; parallel ``a`` and ``b`` give no NaN."""
    xp = _xp(a)
    a, b = normalize(a), normalize(b)
    d = xp.sum(a * b, axis=-1, keepdims=True)
    p = t * xp.arccos(xp.clip(d, -1.0, 1.0))
    ortho = b - d * a
    norm = xp.sqrt(xp.sum(xp.square(ortho), axis=-1, keepdims=True))
    c = ortho / xp.where(norm > 0, norm, 1.0)
    return normalize(a * xp.cos(p) + c * xp.sin(p))
