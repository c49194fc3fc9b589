"""The one place a config becomes modules: :func:`build_networks` turns the data in
``config.G`` / ``config.D`` (see :mod:`stylegan_jax.config`) into the Generator and
Discriminator, parsing ``fused_scale`` and applying ``config.compute_dtype``. Training, the
network summary, run loading and the metrics all build their networks here.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from stylegan_jax.config import RETIRED_FIELDS
from stylegan_jax.networks import Discriminator, Generator

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_FUSED_SCALE = {"auto": "auto", "true": True, "false": False}


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
    """The networks' compute dtype named by ``config.compute_dtype`` (params stay float32)."""
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, "
                         f"got {config.compute_dtype!r}")
    return COMPUTE_DTYPES[config.compute_dtype]


def _fused_scale(value: str, field: str) -> bool | str:
    if value not in _FUSED_SCALE:
        raise ValueError(f"config.{field}.fused_scale must be one of {sorted(_FUSED_SCALE)}, "
                         f"got {value!r}")
    return _FUSED_SCALE[value]


def build_networks(config: ml_collections.ConfigDict) -> tuple[Generator, Discriminator]:
    """The Generator and Discriminator a config describes, in its compute dtype."""
    common = dict(resolution=config.resolution, num_channels=config.num_channels,
                  label_size=config.label_size, dtype=compute_dtype(config),
                  resample_impl=config.get("resample_impl", "fused"),
                  remat_resolution=config.get("remat_resolution", 0),
                  layout_resolution=config.get("layout_resolution", 0))
    g = {k: v for k, v in config.G.items() if f"G.{k}" not in RETIRED_FIELDS}
    g["fused_scale"] = _fused_scale(g["fused_scale"], "G")
    d = dict(config.D)
    d["fused_scale"] = _fused_scale(d["fused_scale"], "D")
    try:
        return Generator(**common, **g), Discriminator(**common, **d)
    except TypeError as e:
        raise ValueError(f"config.G / config.D hold a field the networks do not know: {e}") from e
