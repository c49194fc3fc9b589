"""Evaluation metrics as in the official StyleGAN: FID, perceptual path length, linear
separability; their networks (FID Inception-v3, LPIPS-VGG16) and weight loaders.

Notebook API: :func:`frechet_distance`, :func:`fid`, :func:`ppl`, :func:`linear_separability`.
Named metrics (``fid50k``, ``ppl_wend``, ...) live in :mod:`stylegan_jax.metrics.registry`,
whose driver :func:`~stylegan_jax.metrics.registry.evaluate` serves both the training loop
and ``stylegan-jax metrics`` (:func:`stylegan_jax.metrics.run.run_metrics`).
"""

from stylegan_jax.metrics.frechet import (
    Stats,
    array_stats,
    dataset_stats,
    fid,
    frechet_distance,
    generator_stats,
)
from stylegan_jax.metrics.inception import InceptionFeatures, load_inception
from stylegan_jax.metrics.lpips import load_lpips
from stylegan_jax.metrics.path_length import ppl
from stylegan_jax.metrics.separability import linear_separability
from stylegan_jax.metrics.weights import WeightsError, convert_to_npz

__all__ = [
    "InceptionFeatures",
    "Stats",
    "WeightsError",
    "array_stats",
    "convert_to_npz",
    "dataset_stats",
    "fid",
    "frechet_distance",
    "generator_stats",
    "linear_separability",
    "load_inception",
    "load_lpips",
    "ppl",
]
