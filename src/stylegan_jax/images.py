"""Image conventions, in one place, for numpy and JAX arrays alike.

* Network range: NHWC float images in [-1, 1] (official ``drange_net``); stored and written
  images are uint8 in [0, 255] (``drange_data``).
* uint8 -> [-1, 1]: ``x * 2/255 - 1`` (:func:`from_uint8`); [-1, 1] -> uint8: the official
  quantisation ``x * 127.5 + 128``, saturated to [0, 255] and truncated (:func:`to_uint8`,
  ``tflib.convert_images_to_uint8``); unquantised [0, 255] floats (PPL's LPIPS input):
  :func:`to_255`.
* Box downsampling: the mean of each ``factor x factor`` block (:func:`box_mean`), which is
  the official ``downscale2d`` and, on uint8 data, exactly the official ``dataset_tool.py``
  repeated 2x2 averaging; :func:`downsample_to` gives the training reals of a level of detail.

Functions use the arrays' own methods, so one definition serves numpy and ``jax.numpy``
(inside or outside ``jit``); results are bit-identical to the copies they replace.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # numpy.ndarray or jax.Array


def to_uint8(images: Array) -> Array:
    """[-1, 1] floats -> uint8, the official way: ``x * 127.5 + 128`` clipped to [0, 255] and
    truncated (``tflib.convert_images_to_uint8``: fid50k's and the snapshot grids' rounding)."""
    return (images * 127.5 + 128.0).clip(0, 255).astype(np.uint8)


def from_uint8(images: Array, dtype: Any = np.float32) -> Array:
    """uint8 (or [0, 255] float) images -> [-1, 1] as ``dtype``: ``x * 2/255 - 1``."""
    return images.astype(dtype) * (2.0 / 255.0) - 1.0


def to_255(images: Array) -> Array:
    """[-1, 1] floats -> [0, 255] floats, unquantised (official PPL: ``(x + 1) * (255 / 2)``)."""
    return (images + 1) * (255 / 2)


def box_mean(images: Array, factor: int) -> Array:
    """Box-filter downsampling of ``[..., H, W, C]``: the mean of each ``factor x factor`` block
    (official ``downscale2d``). On uint8-valued float32 data it is exact (block sums stay
    below 2**24), so it equals ``log2(factor)`` rounds of 2x2 averaging."""
    if factor == 1:
        return images
    *lead, h, w, c = images.shape
    return images.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(axis=(-4, -2))


def box_downsample_uint8(images: Array, resolution: int) -> Array:
    """uint8 ``[..., H, W, C]`` (square, ``H = resolution * 2**k``) -> uint8 at ``resolution``,
    as the official ``dataset_tool.py`` builds each level: box average, ``rint`` (half to
    even) to an integer."""
    h, w = images.shape[-3], images.shape[-2]
    factor = h // max(resolution, 1)
    if h != w or resolution < 1 or h % resolution or factor & (factor - 1):
        raise ValueError(f"cannot box-downsample {h}x{w} to {resolution}x{resolution}")
    x = box_mean(images.astype(np.float32), factor)
    return x.round().clip(0, 255).astype(np.uint8)


def downsample_to(images: Array, resolution: int) -> Array:
    """Training reals at a level of detail: ``[B, H, W, C]`` -> ``[B, r, r, C]`` float32.

    uint8 input (the pipeline's batches, at the stored resolution): box average rounded half
    to even, exactly as the official tool quantises each level, then :func:`from_uint8`.
    Float input is taken to be in the network range already and is averaged only. The batch
    axis is untouched, so a batch sharded over ``'data'`` stays sharded that way.
    """
    if images.dtype != np.uint8:
        _, h, w, _ = images.shape
        if h != w or h % resolution or (h // resolution) & (h // resolution - 1):
            raise ValueError(f"cannot box-downsample {h}x{w} to {resolution}x{resolution}")
        return box_mean(images.astype(np.float32), h // resolution)
    return from_uint8(box_downsample_uint8(images, resolution))


def mirror(images: Array, flips: Array) -> jax.Array:
    """Horizontally flips the images ``[B, H, W, C]`` whose flag in ``flips`` ``[B]`` is set
    (official ``mirror_augment``: ``tf.where(mask < 0.5, x, tf.reverse(x, axis=[3]))``)."""
    return jnp.where(flips[:, None, None, None], images[:, :, ::-1], images)
