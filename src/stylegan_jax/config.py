"""The paper's config F as an ml_collections ConfigDict, and the networks it describes.

Experiment files in ``experiments/`` start from :func:`paper_config` and override fields; field
names follow the official ``G_style`` / ``G_mapping`` / ``G_synthesis`` / ``D_basic`` kwargs.
"""

from __future__ import annotations

import ml_collections

from stylegan_jax.networks import Discriminator, Generator

_FUSED_SCALE = {"auto": "auto", "true": True, "false": False}


def paper_config(resolution: int = 1024) -> ml_collections.ConfigDict:
    """Config F of the paper (FFHQ) at ``resolution``: networks part."""
    config = ml_collections.ConfigDict()
    config.resolution = resolution
    config.num_channels = 3
    config.label_size = 0
    config.G = ml_collections.ConfigDict(dict(
        latent_size=512, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
        mapping_lrmul=0.01, normalize_latents=True,
        fmap_base=8192, fmap_decay=1.0, fmap_max=512,
        use_styles=True, const_input_layer=True, use_noise=True, use_pixel_norm=False,
        use_instance_norm=True, fused_scale="auto", use_blur=True,
        truncation_psi=0.7, truncation_cutoff=8, dlatent_avg_beta=0.995, style_mixing_prob=0.9,
    ))
    config.D = ml_collections.ConfigDict(dict(
        fmap_base=8192, fmap_decay=1.0, fmap_max=512, mbstd_group_size=4, mbstd_num_features=1,
        fused_scale="auto", use_blur=True,
    ))
    return config


def _fused_scale(value: str, field: str) -> bool | str:
    if value not in _FUSED_SCALE:
        raise ValueError(f"config.{field}.fused_scale must be one of {sorted(_FUSED_SCALE)}, "
                         f"got {value!r}")
    return _FUSED_SCALE[value]


def build_networks(config: ml_collections.ConfigDict, **module_kwargs
                   ) -> tuple[Generator, Discriminator]:
    """The Generator and Discriminator a config describes (``module_kwargs`` go to both, e.g.
    ``dtype``)."""
    common = dict(resolution=config.resolution, num_channels=config.num_channels,
                  label_size=config.label_size, **module_kwargs)
    g = dict(config.G)
    g["fused_scale"] = _fused_scale(g["fused_scale"], "G")
    d = dict(config.D)
    d["fused_scale"] = _fused_scale(d["fused_scale"], "D")
    try:
        return Generator(**common, **g), Discriminator(**common, **d)
    except TypeError as e:
        raise ValueError(f"config.G / config.D hold a field the networks do not know: {e}") from e
