"""The classifiers of the bundled digits, for the metrics on digits runs: one module that
neither the ``data`` package nor the ``metrics`` package needs the other for (it reads the
bundled digits through :func:`stylegan_jax.data.builders.digits_arrays`, and the metrics take
what it returns).

- :func:`digit_classifier` (``modes`` on stacked digits): an RBF support-vector classifier
  (``sklearn.svm.SVC(gamma=0.001)``, the scikit-learn digits example) fitted,
  deterministically, on a fixed 80% of the 1,797 bundled digits *after the 32x32 round trip*
  the data goes through: the prepared 32x32 image is box-filtered back to 8x8 and rescaled to
  sklearn's 0..16 range, which is also what :func:`channel_features` does to a generated
  image. The other 20% are held out: :attr:`DigitsClassifier.held_out_accuracy` is the
  accuracy on them (0.99 with this split).
- :func:`digit_attributes` (``ls`` on the digits demo): ten one-vs-rest attributes
  P(digit = k), a logistic regression on the grey 8x8 digits.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from stylegan_jax.images import box_mean, from_uint8

HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


def channel_features(images: Any, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Images ``[N, 32, 32, C]`` -> 8x8 features ``[N, C, 64]`` in sklearn's 0..16 digit range.

    Each channel is clipped to ``value_range`` (the network range by default; ``(0, 255)`` for
    stored uint8 images), box-filtered from 32x32 to 8x8 (4x4 block means) and rescaled.
    """
    x = np.asarray(images, np.float64)
    lo, hi = value_range
    x = (np.clip(x, lo, hi) - lo) * (16.0 / (hi - lo))
    n, h, w, c = x.shape
    if h != w or h % 8:
        raise ValueError(f"digit images must be square with a side divisible by 8, got {h}x{w}")
    small = box_mean(x, h // 8)  # [N, 8, 8, C]
    return small.transpose(0, 3, 1, 2).reshape(n, c, 64)


def held_out_split(num: int, fraction: float = HELD_OUT_FRACTION, seed: int = SPLIT_SEED
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (train, held-out) index arrays over ``num`` digits."""
    perm = np.random.default_rng(seed).permutation(num)
    cut = num - int(round(num * fraction))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


@dataclasses.dataclass(frozen=True)
class DigitsClassifier:
    """A fitted digit classifier and its accuracy on held-out real digits."""

    model: Any  # a fitted sklearn classifier on 64 features
    held_out_accuracy: float

    def predict_channels(self, images: Any, value_range: tuple[float, float] = (-1.0, 1.0)
                         ) -> np.ndarray:
        """The digit (0..9) in each channel: ``[N, H, W, C]`` -> int ``[N, C]``."""
        features = channel_features(images, value_range)
        n, c, _ = features.shape
        return self.model.predict(features.reshape(n * c, 64)).reshape(n, c).astype(np.int64)


@functools.cache
def digit_classifier() -> DigitsClassifier:
    """The classifier fitted on the training split of the bundled digits (cached)."""
    from sklearn.svm import SVC

    from stylegan_jax.data.builders import digits_arrays

    images, labels = digits_arrays()
    features = channel_features(images[..., :1], (0.0, 255.0))[:, 0]
    train, held_out = held_out_split(len(labels))
    model = SVC(gamma=0.001).fit(features[train], labels[train])
    accuracy = float(np.mean(model.predict(features[held_out]) == labels[held_out]))
    return DigitsClassifier(model=model, held_out_accuracy=accuracy)


def digit_frequencies() -> np.ndarray:
    """Class frequencies ``[10]`` of the bundled digits (what a uniform draw of a digit image
    gives)."""
    from stylegan_jax.data.builders import digits_arrays

    _, labels = digits_arrays()
    return np.bincount(labels, minlength=10) / len(labels)


def _grey_features(images: np.ndarray) -> np.ndarray:
    """[-1, 1] 32x32 images -> the 8x8 grey values 0..16 of sklearn's digits, flattened."""
    grey = np.asarray(images, np.float64).mean(axis=-1, keepdims=True)
    small = box_mean(grey, grey.shape[1] // 8)
    return ((small + 1) * 8).reshape(len(grey), 64)


def digit_attributes() -> Callable[[jax.Array], np.ndarray]:
    """Ten one-vs-rest digit attributes for the digits demo: a logistic regression trained on
    the bundled digits (as prepared: 32x32 RGB), applied to images box-downsampled to 8x8.
    Returns P(digit = k) for k = 0..9 per image."""
    from sklearn.linear_model import LogisticRegression

    from stylegan_jax.data.builders import digits_arrays

    images, labels = digits_arrays()
    model = LogisticRegression(max_iter=5000).fit(
        _grey_features(from_uint8(images)), labels)

    def classify(batch: jax.Array) -> np.ndarray:
        return model.predict_proba(_grey_features(jax.device_get(batch)))

    return classify
