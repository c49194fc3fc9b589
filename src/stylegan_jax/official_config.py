"""What the build kwargs of NVIDIA's StyleGAN networks mean in our config.

The official build functions (``training/networks_stylegan.py``: ``G_style``, ``G_mapping``,
``G_synthesis``, ``D_basic``; ``training/networks_progan.py``: ``D_paper``) take keyword
arguments that a pickle stores as ``static_kwargs``. Here are their official defaults (so that a
kwarg a pickle does not list takes the value the official graph used), the values our networks
implement, and :func:`config_from_kwargs`, which turns a G/D pair's kwargs into our config.
Reading the pickle itself is :mod:`stylegan_jax.official`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_collections

from stylegan_jax.config import paper_config
from stylegan_jax.networks import num_style_layers

# Official defaults of the build functions' kwargs (training/networks_stylegan.py), so that a
# kwarg a pickle does not list takes the value the official graph used.
G_STYLE_DEFAULTS = dict(truncation_psi=0.7, truncation_cutoff=8, truncation_psi_val=None,
                        truncation_cutoff_val=None, dlatent_avg_beta=0.995,
                        style_mixing_prob=0.9)
G_MAPPING_DEFAULTS = dict(latent_size=512, label_size=0, dlatent_size=512,
                          dlatent_broadcast=None, mapping_layers=8, mapping_fmaps=512,
                          mapping_lrmul=0.01, mapping_nonlinearity="lrelu", use_wscale=True,
                          normalize_latents=True, dtype="float32")
G_SYNTHESIS_DEFAULTS = dict(dlatent_size=512, num_channels=3, resolution=1024, fmap_base=8192,
                            fmap_decay=1.0, fmap_max=512, use_styles=True,
                            const_input_layer=True, use_noise=True, randomize_noise=True,
                            nonlinearity="lrelu", use_wscale=True, use_pixel_norm=False,
                            use_instance_norm=True, dtype="float32", fused_scale="auto",
                            blur_filter=[1, 2, 1], structure="auto")
D_BASIC_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192,
                        fmap_decay=1.0, fmap_max=512, nonlinearity="lrelu", use_wscale=True,
                        mbstd_group_size=4, mbstd_num_features=1, dtype="float32",
                        fused_scale="auto", blur_filter=[1, 2, 1], structure="auto")
# G_style passes every kwarg it does not name itself on to both sub-networks, which ignore the
# ones they do not know: a G kwarg is supported if one of the three functions takes it.
G_DEFAULTS = {**G_MAPPING_DEFAULTS, **G_SYNTHESIS_DEFAULTS, **G_STYLE_DEFAULTS}
# Other build functions seen in official pickles, named in the refusal.
KNOWN_OTHERS = {"G_main": "a StyleGAN2 generator", "D_stylegan2": "a StyleGAN2 discriminator",
                "G_paper": "a Progressive GAN generator", "D_paper": "a Progressive GAN "
                "discriminator", "G_synthesis_stylegan2": "a StyleGAN2 synthesis network"}
FUSED = {True: "true", False: "false", "auto": "auto"}

# networks_progan.D_paper (training/networks_progan.py): D_basic's layers without blur, fused
# resampling at every resolution and one output; its defaults.
D_PAPER_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192,
                        fmap_decay=1.0, fmap_max=512, use_wscale=True, mbstd_group_size=4,
                        dtype="float32", fused_scale=True, structure=None)

# The kwargs whose other values our networks do not implement: name -> accepted value.
KWARG_CHECKS: dict[str, Callable[[Any], bool]] = {
    "nonlinearity": lambda v: v == "lrelu",
    "mapping_nonlinearity": lambda v: v == "lrelu",
    "use_wscale": lambda v: v is True or v == 1,
    "dtype": lambda v: v in ("float32", "float16"),
    "fused_scale": lambda v: v in ("auto", True, False),
    "blur_filter": lambda v: v is None or list(v) in ([], [1, 2, 1]),
    "structure": lambda v: v in ("auto", "linear", "recursive", None),
    "use_noise": lambda v: v in (True, False, 0, 1),
}


def config_from_kwargs(g: dict, d: dict) -> ml_collections.ConfigDict:
    """Our config (``paper_config`` fields) for official G_style and D_basic kwargs."""
    config = paper_config(int(g["resolution"]))
    config.num_channels = int(g["num_channels"])
    config.label_size = int(g["label_size"])
    num_layers = num_style_layers(config.resolution)
    config.G.update(dict(
        latent_size=int(g["latent_size"]), dlatent_size=int(g["dlatent_size"]),
        mapping_layers=int(g["mapping_layers"]), mapping_fmaps=int(g["mapping_fmaps"]),
        mapping_lrmul=float(g["mapping_lrmul"]),
        normalize_latents=bool(g["normalize_latents"]), fmap_base=int(g["fmap_base"]),
        fmap_decay=float(g["fmap_decay"]), fmap_max=int(g["fmap_max"]),
        use_styles=bool(g["use_styles"]), const_input_layer=bool(g["const_input_layer"]),
        use_noise=bool(g["use_noise"]), use_pixel_norm=bool(g["use_pixel_norm"]),
        use_instance_norm=bool(g["use_instance_norm"]), fused_scale=FUSED[g["fused_scale"]],
        use_blur=bool(g["blur_filter"]),
        # None disables each of these in G_style; ours take the equivalent values. (G_style's
        # truncation_psi is a sampling default; ours take psi at sampling time.)
        truncation_cutoff=(num_layers if g["truncation_cutoff"] is None
                           else min(int(g["truncation_cutoff"]), num_layers)),
        dlatent_avg_beta=1.0 if g["dlatent_avg_beta"] is None else float(g["dlatent_avg_beta"]),
        style_mixing_prob=(0.0 if g["style_mixing_prob"] is None
                           else float(g["style_mixing_prob"])),
    ))
    config.D.update(dict(
        fmap_base=int(d["fmap_base"]), fmap_decay=float(d["fmap_decay"]),
        fmap_max=int(d["fmap_max"]), mbstd_group_size=int(d["mbstd_group_size"]),
        mbstd_num_features=int(d["mbstd_num_features"]), fused_scale=FUSED[d["fused_scale"]],
        use_blur=bool(d["blur_filter"]),
    ))
    return config
