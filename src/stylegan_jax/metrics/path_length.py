"""Perceptual path length (official ``perceptual_path_length.py``), jitted and data-parallel.

Per pair: z0, z1 ~ N(0, I); t ~ U(0, 1) ("full") or t = 0 ("end"). In Z: slerp the
normalised z's at t and t + eps, then map; in W: map, then lerp at t and t + eps. Both images
of a pair (and the whole batch) share one noise draw; no truncation, no style mixing, float32
with full-precision convolutions, no quantisation. Images are optionally cropped to the face
region (FFHQ), box-downsampled by ``H // 256`` (after the crop, as in StyleGAN's TF code),
scaled to [0, 255] and compared with LPIPS; the distance is divided by eps^2. The host keeps the
values within [1st percentile ('lower'), 99th percentile ('higher')] and reports their mean.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from stylegan_jax import parallel
from stylegan_jax.images import box_mean, to_255
from stylegan_jax.latents import lerp, slerp
from stylegan_jax.metrics import lpips, progress
from stylegan_jax.metrics.frechet import random_labels
from stylegan_jax.networks import noise_shapes

SPACES = ("z", "w")
SAMPLINGS = ("full", "end")
Distance = Callable[[Any, jax.Array, jax.Array], jax.Array]


def pair_dlatents(generator: nn.Module, variables: Any, key: jax.Array, n: int, space: str,
                  sampling: str, epsilon: float) -> tuple[jax.Array, jax.Array]:
    """The two ends ``(w(t), w(t + eps))``, each ``[n, dlatent_size]``, of ``n`` pairs."""
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ValueError(f"space must be in {SPACES} and sampling in {SAMPLINGS}, "
                         f"got {space!r}, {sampling!r}")
    k_z, k_t, k_label = jax.random.split(key, 3)
    z0, z1 = jax.random.normal(k_z, (2, n, generator.latent_size))
    t = jax.random.uniform(k_t, (n, 1)) if sampling == "full" else jnp.zeros((n, 1))
    labels = random_labels(k_label, n, generator.label_size)

    def mapping(z: jax.Array) -> jax.Array:
        return generator.apply(variables, z, labels, method=type(generator).map)

    if space == "z":
        return mapping(slerp(z0, z1, t)), mapping(slerp(z0, z1, t + epsilon))
    w0, w1 = mapping(z0), mapping(z1)
    return lerp(w0, w1, t), lerp(w0, w1, t + epsilon)


def crop_and_downsample(images: jax.Array, crop: bool) -> jax.Array:
    """Face crop (rows 3/8..7/8, columns 2/8..6/8) if ``crop``, then box-downsample by
    ``H // 256`` when that exceeds 1."""
    if crop:
        c = images.shape[1] // 8
        images = images[:, 3 * c:7 * c, 2 * c:6 * c]
    return box_mean(images, max(images.shape[1] // 256, 1))


def filtered_mean(distances: np.ndarray) -> float:
    """Mean of the values within [1st percentile ('lower'), 99th ('higher')], inclusive."""
    d = np.asarray(distances, np.float64)
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(np.mean(d[(d >= lo) & (d <= hi)]))


@functools.cache
def ppl_step(generator: nn.Module, mesh: Mesh, n: int, space: str, sampling: str,
             epsilon: float, crop: bool, distance: Distance) -> Callable:
    """``step(variables, distance_params, key)`` -> the ``n`` pairs' ``distance / eps^2``,
    jitted for ``mesh`` (the images are sharded along ``'data'``)."""
    data, rep = parallel.data_sharding(mesh), parallel.replicated_sharding(mesh)
    shapes = noise_shapes(generator.resolution)

    @functools.partial(jax.jit, out_shardings=rep)
    def step(variables: Any, distance_params: Any, key: jax.Array) -> jax.Array:
        k_pair, k_noise = jax.random.split(key)
        with jax.default_matmul_precision("highest"):
            e0, e1 = pair_dlatents(generator, variables, k_pair, n, space, sampling, epsilon)
            dlatents = jax.lax.with_sharding_constraint(jnp.concatenate([e0, e1]), data)
            noise = [jax.random.normal(k, s) for k, s in
                     zip(jax.random.split(k_noise, len(shapes)), shapes, strict=True)]
            images = generator.apply(variables, dlatents, noise=noise,
                                     method=type(generator).synthesize)
            images = crop_and_downsample(images, crop)
            if images.shape[-1] == 1:
                images = jnp.repeat(images, 3, axis=-1)
            images = to_255(images)
            return distance(distance_params, images[:n], images[n:]) / epsilon**2

    return step


def ppl_distances(generator: nn.Module, variables: Any, distance_params: Any, *,
                  space: str = "w", sampling: str = "full", num_samples: int = 100000,
                  epsilon: float = 1e-4, crop: bool = False, batch_size: int = 64,
                  seed: int = 0, mesh: Mesh | None = None,
                  distance: Distance = lpips.distance_255) -> np.ndarray:
    """The ``num_samples`` per-pair values ``distance / eps^2`` (before outlier filtering).

    ``distance(distance_params, x, y)`` compares NHWC images in [0, 255]; the default is
    LPIPS-VGG16 with ``distance_params`` from :func:`stylegan_jax.metrics.lpips.load_lpips`.
    ``batch_size`` pairs per step must divide by the device count.
    """
    mesh = mesh if mesh is not None else parallel.make_mesh()
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} is not divisible by {mesh.size} devices")
    step = ppl_step(generator, mesh, batch_size, space, sampling, epsilon, crop, distance)
    rep = parallel.replicated_sharding(mesh)
    variables = jax.device_put(variables, rep)
    distance_params = jax.device_put(distance_params, rep)
    base = jax.random.key(seed)
    out = []
    with progress.bar(num_samples, f"ppl_{space}{sampling}") as bar:
        for i in range(-(-num_samples // batch_size)):
            out.append(np.asarray(step(variables, distance_params, jax.random.fold_in(base, i))))
            bar.update(min(batch_size, num_samples - i * batch_size))
    return np.concatenate(out)[:num_samples]


def ppl(generator: nn.Module, variables: Any, lpips_params: Any, *, space: str = "w",
        sampling: str = "full", num_samples: int = 100000, epsilon: float = 1e-4,
        crop: bool = False, batch_size: int = 64, seed: int = 0,
        mesh: Mesh | None = None, distance: Distance = lpips.distance_255) -> float:
    """Perceptual path length of the (EMA) generator: ``space`` 'z' or 'w', ``sampling``
    'full' or 'end'; ``crop=True`` for FFHQ-like faces."""
    return filtered_mean(ppl_distances(
        generator, variables, lpips_params, space=space, sampling=sampling,
        num_samples=num_samples, epsilon=epsilon, crop=crop, batch_size=batch_size,
        seed=seed, mesh=mesh, distance=distance))
