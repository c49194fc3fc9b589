"""Fréchet Inception Distance: feature statistics over the mesh and the distance in float64.

Statistics: each jitted step turns a global batch (sharded along ``'data'``, so every device
of every host works) into features and adds the shifted sums ``sum(x - c)`` and
``sum((x - c)(x - c)^T)`` (full-precision matmuls) to running sums that stay on the device,
with Kahan compensation, so float32 accumulation over 50k images keeps float64-equivalent
accuracy; the host fetches them once per metric and finishes in float64. ``c`` is the first
batch's mean, which keeps the second moments well conditioned. The
covariance is unbiased (``np.cov``), as in the official code and pytorch-fid.

Generated images: the EMA generator without truncation, fresh noise, quantised to uint8 as the
official code does (``x * 127.5 + 128``, clipped, truncated). Reals: the prepared dataset in
the training run's shuffled order with its mirror setting (``InputPipeline``), or any uint8
array; dataset statistics are cached on disk keyed by dataset, resolution, count, mirror,
preprocessing mode and weights file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from stylegan_jax import parallel
from stylegan_jax.images import to_uint8
from stylegan_jax.metrics import progress


class FeatureExtractor(Protocol):
    """``apply(params, uint8-range NHWC images) -> [N, dim]``; see ``InceptionFeatures``."""

    params: Any
    dim: int

    def apply(self, params: Any, images: jax.Array) -> jax.Array: ...


@dataclass(frozen=True)
class Stats:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of ``count`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, count=self.count)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Stats:
        with np.load(path, allow_pickle=False) as f:  # a cache file never runs code
            return cls(f["mu"], f["sigma"], int(f["count"]))


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`` in float64.

    ``tr sqrt(S1 S2) = sum sqrt(eig(r S2 r))`` with ``r = S1^(1/2)``: two symmetric
    eigendecompositions, no complex numbers, valid for singular covariances. Runs through
    ``jnp.linalg.eigh`` (every backend) with 64-bit enabled locally.
    """
    with jax.enable_x64(True):
        return float(_frechet(*(jnp.asarray(np.asarray(a, np.float64))
                                for a in (mu1, sigma1, mu2, sigma2))))


@jax.jit
def _frechet(mu1: jax.Array, s1: jax.Array, mu2: jax.Array, s2: jax.Array) -> jax.Array:
    def sym(a: jax.Array) -> jax.Array:
        return (a + a.T) / 2

    w, v = jnp.linalg.eigh(sym(s1))
    root = (v * jnp.sqrt(jnp.clip(w, 0))) @ v.T
    lam = jnp.linalg.eigvalsh(sym(root @ s2 @ root))
    tr_covmean = jnp.sum(jnp.sqrt(jnp.clip(lam, 0)))
    diff = mu1 - mu2
    return diff @ diff + jnp.trace(s1) + jnp.trace(s2) - 2 * tr_covmean


def _kahan_add(acc: tuple[jax.Array, jax.Array], x: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """Compensated (Kahan) summation: ``(sum, lost)`` + x, where ``sum - lost`` carries the
    low-order bits float32 rounding drops, so the error does not grow with the batch count."""
    total, lost = acc
    y = x - lost
    new = total + y
    return new, (new - total) - y


def _moments(features: jax.Array, valid: jax.Array, shift: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    x = jnp.where(valid[:, None], features.astype(jnp.float32) - shift, 0.0)
    s2 = jnp.einsum("nd,ne->de", x, x, precision=jax.lax.Precision.HIGHEST)
    return jnp.sum(x, axis=0), s2


@functools.cache
def image_steps(extractor: FeatureExtractor, mesh: Mesh) -> tuple[Callable, Callable]:
    """``mean(params, images, valid)`` -> the valid features' mean (the shift), and
    ``accumulate(sums, params, images, valid, shift)`` -> the sums plus this batch's, all on
    the device (the sums are donated)."""
    rep = parallel.replicated_sharding(mesh)

    @functools.partial(jax.jit, out_shardings=rep)
    def mean(params: Any, images: jax.Array, valid: jax.Array) -> jax.Array:
        feats = extractor.apply(params, images).astype(jnp.float32)
        return jnp.sum(jnp.where(valid[:, None], feats, 0), 0) / jnp.sum(valid)

    @functools.partial(jax.jit, out_shardings=rep, donate_argnums=0)
    def accumulate(sums: dict, params: Any, images: jax.Array, valid: jax.Array,
                   shift: jax.Array) -> dict:
        s1, s2 = _moments(extractor.apply(params, images), valid, shift)
        return {"s1": _kahan_add(sums["s1"], s1), "s2": _kahan_add(sums["s2"], s2)}

    return mean, accumulate


def _finish(shift: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: int) -> Stats:
    """Mean and unbiased covariance, in float64, from sums of ``n`` shifted features."""
    if n < 2:
        raise ValueError("need at least 2 images for a covariance")
    mean = s1 / n
    sigma = (s2 - n * np.outer(mean, mean)) / (n - 1)
    return Stats(shift.astype(np.float64) + mean, sigma, n)


def _batches_stats(batches: Iterator[tuple[jax.Array, int]], extractor: FeatureExtractor,
                   mesh: Mesh, num_images: int, desc: str) -> Stats:
    """Stats of ``num_images`` images from ``(global uint8 batch, n_valid)`` pairs; the only
    device-to-host transfer is the final sums."""
    mean, accumulate = image_steps(extractor, mesh)
    rep = parallel.replicated_sharding(mesh)
    d = extractor.dim
    zeros = functools.partial(jnp.zeros, dtype=jnp.float32, device=rep)
    sums = {"s1": (zeros((d,)), zeros((d,))), "s2": (zeros((d, d)), zeros((d, d)))}
    shift, count = None, 0
    with progress.bar(num_images, desc) as bar:
        for images, n_valid in batches:
            valid = jax.device_put(np.arange(images.shape[0]) < n_valid,
                                   parallel.data_sharding(mesh))
            if shift is None:
                shift = mean(extractor.params, images, valid)
            sums = accumulate(sums, extractor.params, images, valid, shift)
            count += n_valid
            bar.update(n_valid)
    if shift is None:
        raise ValueError("need at least 2 images for a covariance")
    host = jax.device_get({"shift": shift, "sums": sums})
    s1, s2 = ((np.asarray(t, np.float64) - np.asarray(c, np.float64))
              for t, c in (host["sums"]["s1"], host["sums"]["s2"]))
    return _finish(np.asarray(host["shift"]), s1, s2, count)


def _batch_plan(num_images: int, batch_size: int, mesh: Mesh) -> Iterator[int]:
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} is not divisible by {mesh.size} devices")
    for start in range(0, num_images, batch_size):
        yield min(batch_size, num_images - start)


def random_labels(key: jax.Array, n: int, label_size: int) -> jax.Array | None:
    """Uniform one-hot labels for a conditional generator, ``None`` for an unconditional one."""
    if not label_size:
        return None
    return jax.nn.one_hot(jax.random.randint(key, (n,), 0, label_size), label_size)


@functools.cache
def generate_step(generator: nn.Module, mesh: Mesh, batch_size: int) -> Callable:
    """``generate(variables, key)`` -> ``batch_size`` uint8 fakes sharded along ``'data'``
    (random z, labels and noise from ``key``), jitted for ``mesh``."""
    data = parallel.data_sharding(mesh)

    @functools.partial(jax.jit, out_shardings=data)
    def generate(variables: Any, key: jax.Array) -> jax.Array:
        k_z, k_label, k_noise = jax.random.split(key, 3)
        z = jax.lax.with_sharding_constraint(
            jax.random.normal(k_z, (batch_size, generator.latent_size)), data)
        labels = random_labels(k_label, batch_size, generator.label_size)
        images = generator.apply(variables, z, labels, rngs={"noise": k_noise})
        return to_uint8(images)

    return generate


def generator_stats(generator: nn.Module, variables: Any, extractor: FeatureExtractor, *,
                    num_images: int = 50000, batch_size: int = 64, seed: int = 0,
                    mesh: Mesh | None = None) -> Stats:
    """Feature stats of ``num_images`` generated images (no truncation, random noise)."""
    mesh = mesh if mesh is not None else parallel.make_mesh()
    generate = generate_step(generator, mesh, batch_size)
    variables = jax.device_put(variables, parallel.replicated_sharding(mesh))
    base = jax.random.key(seed)

    def batches() -> Iterator[tuple[jax.Array, int]]:
        for i, n_valid in enumerate(_batch_plan(num_images, batch_size, mesh)):
            yield generate(variables, jax.random.fold_in(base, i)), n_valid

    return _batches_stats(batches(), extractor, mesh, num_images, "fid: fakes")


def array_stats(images: np.ndarray, extractor: FeatureExtractor, *, batch_size: int = 64,
                mesh: Mesh | None = None) -> Stats:
    """Feature stats of uint8 NHWC images held in host memory (every image once)."""
    mesh = mesh if mesh is not None else parallel.make_mesh()
    data = parallel.data_sharding(mesh)

    def batches() -> Iterator[tuple[jax.Array, int]]:
        for start, n_valid in zip(range(0, len(images), batch_size),
                                  _batch_plan(len(images), batch_size, mesh), strict=True):
            chunk = np.asarray(images[start:start + n_valid])
            if n_valid < batch_size:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - n_valid, 0)])
            yield jax.device_put(chunk, data), n_valid

    return _batches_stats(batches(), extractor, mesh, len(images), "fid: reals")


def real_stats_key(data_dir: str | os.PathLike, dataset_name: str, num_images: int,
                   mirror: bool, seed: int, feature_id: str) -> str:
    """The one cache file name of real statistics: dataset directory and name, image count,
    mirror, shuffle seed and the feature extractor's id."""
    key = json.dumps([os.fspath(Path(data_dir).absolute()), dataset_name, num_images, mirror,
                      seed, feature_id])
    digest = hashlib.md5(key.encode()).hexdigest()[:16]
    return f"{dataset_name.replace('/', '-')}-{num_images}-{digest}.npz"


def dataset_stats(data_dir: str | os.PathLike, dataset_name: str,
                  extractor: FeatureExtractor, *, num_images: int = 50000,
                  mirror: bool = True, seed: int = 0, batch_size: int = 64,
                  mesh: Mesh | None = None, cache_dir: str | os.PathLike | None = None,
                  cache_key: str = "") -> Stats:
    """Feature stats of the first ``num_images`` of a prepared dataset's shuffled stream
    (cycling if the dataset is smaller), mirrored as in training; cached under ``cache_dir``
    (None: no cache) by dataset, count, mirror, seed and ``cache_key`` (e.g. mode and weights).
    """
    from stylegan_jax.data.pipeline import InputPipeline

    mesh = mesh if mesh is not None else parallel.make_mesh()
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / real_stats_key(data_dir, dataset_name, num_images, mirror,
                                                seed, cache_key)
        if path.is_file():
            return Stats.load(path)
    with InputPipeline(data_dir, dataset_name, mesh=mesh, seed=seed, mirror=mirror) as reals:
        batches = ((reals.next_batch(batch_size)["image"], n)
                   for n in _batch_plan(num_images, batch_size, mesh))
        stats = _batches_stats(batches, extractor, mesh, num_images, "fid: reals")
    if path is not None and jax.process_index() == 0:
        stats.save(path)
    return stats


def fid(generator: nn.Module, variables: Any, reals: Stats, extractor: FeatureExtractor, *,
        num_images: int = 50000, batch_size: int = 64, seed: int = 0,
        mesh: Mesh | None = None) -> float:
    """FID between ``num_images`` generated images and real statistics ``reals`` (from
    :func:`dataset_stats` or :func:`array_stats`)."""
    fakes = generator_stats(generator, variables, extractor, num_images=num_images,
                            batch_size=batch_size, seed=seed, mesh=mesh)
    return frechet_distance(fakes.mu, fakes.sigma, reals.mu, reals.sigma)
