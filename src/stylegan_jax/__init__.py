"""stylegan-jax: a faithful, fast and scalable StyleGAN (Karras et al., 2019) in JAX/Flax."""

from stylegan_jax.generate import load
from stylegan_jax.networks import (
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    noise_shapes,
    num_style_layers,
)

__all__ = [
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "load",
    "noise_shapes",
    "num_style_layers",
]
__version__ = "0.1.0"
