"""Mode coverage on stacked digits (the "Stacked MNIST" protocol of the unrolled-GAN, VEEGAN and
PacGAN papers): classify the digit in each colour channel of 26,000 generated images, count
the covered modes (distinct ``100 R + 10 G + B`` triples, out of 1,000) and compute
KL(generated mode histogram || real mode distribution), without truncation.

The real distribution is the exact one the ``stacked_digits`` builder draws from: the three
channels are independent uniform draws of a bundled digit image, so
``p(r, g, b) = f(r) f(g) f(b)`` with ``f`` the bundled digits' class frequencies (close to
uniform: 1/1000 per mode). With 26,000 samples even a perfect generator has a KL of about
``(1000 - 1) / (2 * 26000) = 0.02`` (the sampling bias of the plug-in estimate).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from stylegan_jax.digit_classifiers import DigitsClassifier, digit_frequencies
from stylegan_jax.metrics import progress

NUM_MODES = 1000
# (key, n) -> n images [n, 32, 32, 3] in [-1, 1]
GeneratorFn = Callable[[jax.Array, int], Any]


def mode_histogram(channel_digits: np.ndarray) -> np.ndarray:
    """Digits ``[N, 3]`` (R, G, B) -> counts ``[1000]`` of the modes ``100 R + 10 G + B``."""
    modes = np.asarray(channel_digits) @ np.array([100, 10, 1])
    return np.bincount(modes, minlength=NUM_MODES)


def real_mode_distribution(frequencies: np.ndarray | None = None) -> np.ndarray:
    """``p[100 r + 10 g + b] = f(r) f(g) f(b)`` for digit class frequencies ``f`` (default:
    the bundled digits')."""
    f = digit_frequencies() if frequencies is None else np.asarray(frequencies, np.float64)
    return np.einsum("i,j,k->ijk", f, f, f).reshape(NUM_MODES)


def kl_divergence(counts: np.ndarray, p: np.ndarray) -> float:
    """KL(q || p) in nats, ``q`` the normalised ``counts`` (terms with q = 0 are 0)."""
    q = np.asarray(counts, np.float64)
    q = q / q.sum()
    seen = q > 0
    return float(np.sum(q[seen] * np.log(q[seen] / p[seen])))


def mode_coverage(generator_fn: GeneratorFn, classifier: DigitsClassifier, *,
                  num_samples: int = 26000, batch_size: int = 500, seed: int = 0
                  ) -> dict[str, float]:
    """``{'modes': covered modes (of 1,000), 'modes_kl': KL(generated || real)}`` over
    ``num_samples`` images from ``generator_fn(key, batch_size)`` (keys ``fold_in(seed, i)``)."""
    base = jax.random.key(seed)
    digits = []
    with progress.bar(num_samples, "modes") as bar:
        for i in range(-(-num_samples // batch_size)):
            n = min(batch_size, num_samples - i * batch_size)
            images = np.asarray(jax.device_get(generator_fn(jax.random.fold_in(base, i),
                                                            batch_size)))[:n]
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"mode coverage needs RGB images [N, H, W, 3], got "
                                 f"{images.shape} (train on stacked_digits)")
            digits.append(classifier.predict_channels(images))
            bar.update(n)
    counts = mode_histogram(np.concatenate(digits))
    return {"modes": float(np.count_nonzero(counts)),
            "modes_kl": kl_divergence(counts, real_mode_distribution())}


def generator_sampler(generator: Any, variables: Any) -> GeneratorFn:
    """A :data:`GeneratorFn` for a Generator: fresh z, noise and (if conditional) uniform
    labels per key, no truncation."""
    from stylegan_jax.metrics.frechet import random_labels

    @functools.partial(jax.jit, static_argnums=1)
    def sample(key: jax.Array, n: int) -> jax.Array:
        k_z, k_label, k_noise = jax.random.split(key, 3)
        z = jax.random.normal(k_z, (n, generator.latent_size))
        labels = random_labels(k_label, n, generator.label_size)
        return generator.apply(variables, z, labels, rngs={"noise": k_noise})

    return sample
