"""The attribute classifier of the bundled digits demo, for linear separability (``ls``).

It lives with the digits data (it trains on the bundled digits) so that the metric modules
import no dataset code.
"""

from __future__ import annotations

import jax
import numpy as np

from stylegan_jax.images import box_mean, from_uint8
from stylegan_jax.metrics.separability import Classifier


def _digit_features(images: np.ndarray) -> np.ndarray:
    """[-1, 1] 32x32 images -> the 8x8 grey values 0..16 of sklearn's digits, flattened."""
    grey = np.asarray(images, np.float64).mean(axis=-1, keepdims=True)
    small = box_mean(grey, grey.shape[1] // 8)
    return ((small + 1) * 8).reshape(len(grey), 64)


def digits_classifier() -> Classifier:
    """Ten one-vs-rest digit attributes for the digits demo: a logistic regression trained on
    the bundled digits (as prepared: 32x32 RGB), applied to images box-downsampled to 8x8.
    Returns P(digit = k) for k = 0..9 per image."""
    from sklearn.linear_model import LogisticRegression

    from stylegan_jax.data.builders import digits_arrays  # TFDS only when asked

    images, labels = digits_arrays()
    model = LogisticRegression(max_iter=5000).fit(
        _digit_features(from_uint8(images)), labels)

    def classify(batch: jax.Array) -> np.ndarray:
        return model.predict_proba(_digit_features(jax.device_get(batch)))

    return classify
