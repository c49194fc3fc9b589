"""Lower-resolution reals for progressive growing, made on the device from full-res batches.

One prepared dataset serves every phase: the pipeline always delivers the stored resolution
and the training step calls ``downsample_images`` for the current level of detail.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from stylegan_jax.layers import downscale2d


@functools.partial(jax.jit, static_argnames="resolution")
def downsample_images(images: jax.Array, resolution: int) -> jax.Array:
    """Box-downsamples ``[B, H, W, C]`` images to ``[B, resolution, resolution, C]`` float32.

    ``H == W == resolution * 2**k``. Each output pixel is the mean of its ``2**k x 2**k``
    block, which equals ``k`` rounds of 2x2 averaging (the official ``dataset_tool.py``).

    * uint8 input (the pipeline's batches): the mean is rounded half-to-even to an integer,
      exactly as the official tool quantises each level (``np.rint``), then mapped from
      [0, 255] to [-1, 1] (``x * 2/255 - 1``, the official ``drange_net``). The mean is exact
      in float32 (sums of at most 65,536 uint8 values stay below 2**24).
    * float input is taken to be in the network range already and is averaged only.

    The batch axis is untouched, so a batch sharded over ``'data'`` stays sharded that way.
    """
    _, h, w, _ = images.shape
    if h != w or h % resolution or (h // resolution) & (h // resolution - 1):
        raise ValueError(f"cannot box-downsample {h}x{w} to {resolution}x{resolution}")
    x = downscale2d(images.astype(jnp.float32), h // resolution)
    if images.dtype == jnp.uint8:
        x = jnp.round(x) * (2.0 / 255.0) - 1.0
    return x
