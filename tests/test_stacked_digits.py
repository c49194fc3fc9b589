"""Stacked digits: the builder, the bundled-digits classifier and the mode-coverage metric."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from stylegan_jax.data import builders
from stylegan_jax.digit_classifiers import channel_features, digit_classifier
from stylegan_jax.metrics import modes

NUM = 400


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """A small stacked_digits build (NUM images) read back through TFDS."""
    data_dir = tmp_path_factory.mktemp("stacked")
    config = builders.StackedConfig(name="test", num_images=NUM, seed=7)
    builder = builders.StackedDigits(config=config, data_dir=str(data_dir),
                                     file_format="array_record")
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")
    records = [source[i] for i in range(len(source))]
    return (np.stack([r["image"] for r in records]), np.array([r["label"] for r in records]))


def test_builder_content_and_labels(stacked):
    images, labels = stacked
    assert images.shape == (NUM, 32, 32, 3) and images.dtype == np.uint8
    # Each channel is one whole bundled digit: find it among the 1,797 by exact match.
    digits, digit_labels = builders.digits_arrays()
    flat = digits[..., 0].reshape(len(digits), -1).astype(np.int64)
    found = np.empty((NUM, 3), np.int64)
    for c in range(3):
        channel = images[..., c].reshape(NUM, -1).astype(np.int64)
        dist = (channel ** 2).sum(1)[:, None] - 2 * channel @ flat.T + (flat ** 2).sum(1)[None]
        found[:, c] = dist.argmin(axis=1)
        assert np.all(dist.min(axis=1) == 0)
    classes = digit_labels[found]
    np.testing.assert_array_equal(labels, classes @ np.array([100, 10, 1]))
    # The picks are the documented draw (a fixed seed); the channels are independent:
    # the channel-to-channel class agreement is the chance rate sum f^2 (~0.1), not 1.
    np.testing.assert_array_equal(found, np.random.default_rng(7).integers(0, 1797, (NUM, 3)))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.mean(classes[:, a] == classes[:, b]) < 0.2
    assert len(np.unique(labels)) > 0.3 * NUM  # many distinct modes
    assert "tensorflow" not in sys.modules


def test_builder_is_deterministic(stacked, tmp_path):
    config = builders.StackedConfig(name="test", num_images=NUM, seed=7)
    builder = builders.StackedDigits(config=config, data_dir=str(tmp_path),
                                     file_format="array_record")
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")
    np.testing.assert_array_equal(np.stack([source[i]["image"] for i in range(NUM)]),
                                  stacked[0])


def test_classifier_on_held_out_and_round_trip():
    classifier = digit_classifier()
    assert classifier.held_out_accuracy > 0.97
    # The features of a prepared 32x32 digit are close to sklearn's own 8x8 values (the
    # bicubic upscale and box filter round trip), so the classifier sees what it was fit on.
    digits, _ = builders.digits_arrays()
    features = channel_features(digits[:50, :, :, :1], (0, 255))[:, 0]
    assert np.abs(features - load_digits().images[:50].reshape(50, 64)).mean() < 1.0


def real_stacked_images(key, n):
    """Real stacked digits in [-1, 1], drawn like the builder (seeded by the key)."""
    digits, _ = builders.digits_arrays()
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    picks = builders.stacked_digits_picks(len(digits), n, seed)
    return digits[picks, :, :, 0].transpose(0, 2, 3, 1) / 127.5 - 1.0


def test_modes_on_real_stacked_digits():
    result = modes.mode_coverage(real_stacked_images, digit_classifier(), num_samples=26000,
                                 batch_size=2000)
    assert result["modes"] >= 995
    # A perfect sampler's plug-in KL with 26k samples is ~ 999 / 52000 = 0.019.
    assert result["modes_kl"] < 0.05


def test_modes_on_collapsed_generator():
    digits, labels = builders.digits_arrays()
    # A collapsed stand-in: every image is one of 4 fixed triples.
    triples = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 9, 9]])
    first = np.array([np.flatnonzero(labels == d)[0] for d in range(10)])
    fixed = digits[first[triples], :, :, 0].transpose(0, 2, 3, 1) / 127.5 - 1.0

    def collapsed(key, n):
        return jnp.asarray(fixed)[jax.random.randint(key, (n,), 0, 4)]

    result = modes.mode_coverage(collapsed, digit_classifier(), num_samples=2000,
                                 batch_size=500)
    assert result["modes"] == 4
    # Four equally likely modes against ~uniform p: KL = log(1000 / 4) up to the frequencies.
    p = modes.real_mode_distribution()
    expected = -np.mean(np.log(p[[12, 345, 678, 999]] * 4))
    assert result["modes_kl"] == pytest.approx(expected, abs=0.02)
    assert result["modes_kl"] > 5.0


def test_kl_and_histogram_against_closed_forms():
    counts = modes.mode_histogram(np.array([[1, 2, 3], [1, 2, 3], [0, 0, 0]]))
    assert counts[123] == 2 and counts[0] == 1 and counts.sum() == 3
    uniform = np.full(1000, 1e-3)
    assert modes.kl_divergence(np.ones(1000), uniform) == pytest.approx(0.0, abs=1e-12)
    q = np.zeros(1000)
    q[:2] = 1
    assert modes.kl_divergence(q, uniform) == pytest.approx(np.log(500))
    np.testing.assert_allclose(modes.real_mode_distribution(np.full(10, 0.1)), uniform)


def test_experiment_rows():
    """``experiments/stacked_digits.py[:ROW]``: config F by default, a Table 1 row's generator
    otherwise, the rest of the recipe unchanged; an unknown row is refused by name."""
    from stylegan_jax import config_file
    from stylegan_jax.config import TABLE1_ROWS

    path = str(Path(__file__).resolve().parents[1] / "experiments" / "stacked_digits.py")
    f, b = config_file.load(path), config_file.load(f"{path}:b")
    assert f.label_size == 0 and f.dataset.name == "stacked_digits/32"
    assert f.G.mapping_layers == 8 and f.G.use_styles and f.G.use_instance_norm
    for field, value in TABLE1_ROWS["B"].items():
        assert b.G[field] == value
    assert b.G.fmap_base == f.G.fmap_base and b.loss == f.loss and b.sched == f.sched
    with pytest.raises(config_file.ConfigError, match="Table 1 row"):
        config_file.load(f"{path}:Z")
