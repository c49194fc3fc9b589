"""Linear separability (official ``linear_separability.py``) with pluggable attribute classifiers.

Sample images without truncation (random noise) and keep z and w. A classifier gives, per
image, the probability of each binary attribute. Per attribute: keep the ``num_keep`` most
confident samples, fit ``sklearn.svm.LinearSVC()`` (defaults) on z and, separately, on w, and
compute the conditional entropy H(label | SVM prediction) of the 2x2 joint distribution.
Score = exp(sum of the entropies in nats) (= the official 2^(sum in bits)), as ``ls_z`` and
``ls_w``. The official face classifiers (40 CelebA-HQ networks) cannot be shipped: pass your
own ``classifier``; :func:`stylegan_jax.digit_classifiers.digit_attributes` serves the
bundled digits demo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh

from stylegan_jax import parallel
from stylegan_jax.metrics import progress
from stylegan_jax.metrics.frechet import random_labels

# images in [-1, 1], NHWC (a global array sharded along 'data') -> P(attribute) [N, A].
Classifier = Callable[[jax.Array], Any]


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def conditional_entropy(joint: np.ndarray) -> float:
    """H(Y | X) in nats of a joint distribution (or counts) ``joint[x, y]``."""
    p = np.asarray(joint, np.float64)
    p = p / p.sum()
    return _entropy(p.ravel()) - _entropy(p.sum(axis=1))


def _svm_predictions(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.svm import LinearSVC

    if np.unique(y).size < 2:  # nothing to separate: the official code counts it as perfect
        return y
    return LinearSVC().fit(x, y).predict(x)


def _most_confident(prob: np.ndarray, num_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``num_keep`` samples whose label is surest, and those labels."""
    prob = np.asarray(prob, np.float64)
    confidence = np.maximum(prob, 1 - prob)
    keep = np.argsort(-confidence, kind="stable")[:num_keep]
    return keep, (prob[keep] > 0.5).astype(np.int64)


def attribute_entropy(latents: np.ndarray, prob: np.ndarray, num_keep: int) -> float:
    """H(label | linear SVM prediction) for one attribute with probabilities ``prob [N]``,
    over the ``num_keep`` most confident samples."""
    keep, labels = _most_confident(prob, num_keep)
    predictions = _svm_predictions(np.asarray(latents)[keep], labels)
    joint = np.zeros((2, 2))
    np.add.at(joint, (predictions, labels), 1)
    return conditional_entropy(joint)


def attribute_direction(latents: np.ndarray, prob: np.ndarray, num_keep: int) -> np.ndarray:
    """The normal ``[D]`` of the linear SVM that separates one attribute (fitted as
    :func:`attribute_entropy` fits it), pointing toward the attribute, scaled to the standard
    deviation of ``latents`` along it: ``w + k * direction`` moves w by k of the samples'
    spread. Zero if the kept samples all have one label (nothing to separate)."""
    from sklearn.svm import LinearSVC

    keep, labels = _most_confident(prob, num_keep)
    x = np.asarray(latents, np.float64)
    if np.unique(labels).size < 2:
        return np.zeros(x.shape[1], np.float32)
    normal = LinearSVC().fit(x[keep], labels).coef_[0]
    normal /= np.linalg.norm(normal)
    return (normal * np.std(x @ normal)).astype(np.float32)


def separability_score(latents: np.ndarray, probs: np.ndarray, num_keep: int) -> float:
    """exp(sum over attributes of H(label | SVM prediction)); 1 is perfectly separable."""
    probs = np.asarray(probs)
    return float(np.exp(sum(attribute_entropy(latents, probs[:, a], num_keep)
                            for a in range(probs.shape[1]))))


@functools.cache
def _sample_step(generator: nn.Module, mesh: Mesh, n: int) -> Callable:
    data, rep = parallel.data_sharding(mesh), parallel.replicated_sharding(mesh)

    @functools.partial(jax.jit, out_shardings=(rep, rep, data))
    def sample(variables: Any, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        k_z, k_label, k_noise = jax.random.split(key, 3)
        z = jax.lax.with_sharding_constraint(
            jax.random.normal(k_z, (n, generator.latent_size)), data)
        labels = random_labels(k_label, n, generator.label_size)
        w = generator.apply(variables, z, labels, method=type(generator).map)
        images = generator.apply(variables, w=w, rngs={"noise": k_noise})
        return z, w, images

    return sample


def sample_attributes(generator: nn.Module, variables: Any, classifier: Classifier, *,
                      num_samples: int = 200000, batch_size: int = 64, seed: int = 0,
                      mesh: Mesh | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, w, probs)`` of ``num_samples`` generated images (no truncation)."""
    mesh = mesh if mesh is not None else parallel.make_mesh()
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} is not divisible by {mesh.size} devices")
    sample = _sample_step(generator, mesh, batch_size)
    variables = jax.device_put(variables, parallel.replicated_sharding(mesh))
    base = jax.random.key(seed)
    zs, ws, ps = [], [], []
    with progress.bar(num_samples, "ls") as bar:
        for i in range(-(-num_samples // batch_size)):
            z, w, images = sample(variables, jax.random.fold_in(base, i))
            zs.append(np.asarray(z))
            ws.append(np.asarray(w))
            ps.append(np.asarray(classifier(images), np.float64).reshape(batch_size, -1))
            bar.update(min(batch_size, num_samples - i * batch_size))
    return tuple(np.concatenate(a)[:num_samples] for a in (zs, ws, ps))


def linear_separability(generator: nn.Module, variables: Any, classifier: Classifier, *,
                        num_samples: int = 200000, num_keep: int = 100000,
                        batch_size: int = 64, seed: int = 0,
                        mesh: Mesh | None = None) -> dict[str, float]:
    """``{'ls_z': ..., 'ls_w': ...}`` for the generator and a binary-attribute classifier."""
    z, w, probs = sample_attributes(generator, variables, classifier, num_samples=num_samples,
                                    batch_size=batch_size, seed=seed, mesh=mesh)
    return {"ls_z": separability_score(z, probs, num_keep),
            "ls_w": separability_score(w, probs, num_keep)}
