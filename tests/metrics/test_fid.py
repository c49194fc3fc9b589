"""Fréchet distance vs scipy's sqrtm formula (pytorch-fid), and the feature statistics."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from stylegan_jax import parallel
from stylegan_jax.metrics import frechet as fid_lib


def scipy_fid(mu1, s1, mu2, s2):
    """pytorch-fid's calculate_frechet_distance (without the retry-with-offset branch)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def random_stats(rng, dim, n):
    """Mean and np.cov of n ReLU-like feature vectors (rank-deficient when n <= dim)."""
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    x = np.maximum(rng.standard_normal((n, dim)) @ mix + 0.3, 0)
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("dim,n", [
    (256, 2000), (256, 100),
    pytest.param(2048, 20000, marks=pytest.mark.slow),
    pytest.param(2048, 1500, marks=pytest.mark.slow),
])
def test_frechet_matches_scipy_sqrtm(dim, n):
    rng = np.random.default_rng(dim + n)
    a, b = random_stats(rng, dim, n), random_stats(rng, dim, n)
    expected = scipy_fid(*a, *b)
    assert fid_lib.frechet_distance(*a, *b) == pytest.approx(expected, rel=1e-6)


def test_frechet_identical_diagonal_and_symmetric():
    rng = np.random.default_rng(1)
    mu, sigma = random_stats(rng, 128, 500)
    assert abs(fid_lib.frechet_distance(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)
    a, b = rng.uniform(0, 2, 64), rng.uniform(0, 2, 64)
    m1, m2 = rng.standard_normal(64), rng.standard_normal(64)
    closed_form = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid_lib.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(
        closed_form, rel=1e-10)
    mu2, sigma2 = random_stats(rng, 128, 500)
    assert fid_lib.frechet_distance(mu, sigma, mu2, sigma2) == pytest.approx(
        fid_lib.frechet_distance(mu2, sigma2, mu, sigma), rel=1e-9)


def test_array_stats_match_numpy_on_1_and_8_devices(pixel_features):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)  # 37: a partial last batch
    feats = np.asarray(pixel_features.apply(pixel_features.params, jnp.asarray(images)),
                       np.float64)
    for devices in (1, 8):
        stats = fid_lib.array_stats(images, pixel_features, batch_size=16,
                                    mesh=parallel.make_mesh(devices))
        assert stats.count == 37
        np.testing.assert_allclose(stats.mu, feats.mean(0), rtol=1e-6)
        # float32 moments on the device: ~1e-6 of the largest covariance entries (~1e-2)
        np.testing.assert_allclose(stats.sigma, np.cov(feats, rowvar=False), rtol=1e-5,
                                   atol=1e-8)


def test_generator_stats_ignore_device_count(tiny_generator, pixel_features):
    g, variables = tiny_generator
    runs = [fid_lib.generator_stats(g, variables, pixel_features, num_images=40,
                                    batch_size=16, seed=3, mesh=parallel.make_mesh(d))
            for d in (1, 8)]
    np.testing.assert_allclose(runs[0].mu, runs[1].mu, rtol=1e-6)
    np.testing.assert_allclose(runs[0].sigma, runs[1].sigma, rtol=1e-5, atol=1e-9)


def test_stats_cache_roundtrip(tmp_path):
    stats = fid_lib.Stats(np.arange(3.0), np.eye(3), 10)
    stats.save(tmp_path / "s.npz")
    loaded = fid_lib.Stats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.count == 10


class OffsetFeatures:
    """Features far from zero relative to their spread, the hard case for float32 sums."""

    dim = 8
    params = {"scale": jnp.float32(1 / 255)}

    def apply(self, params, images):
        return 100.0 + images.reshape(images.shape[0], -1)[:, :8].astype(jnp.float32) * \
            params["scale"]


def test_device_accumulation_matches_numpy_float64_over_many_batches():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (6000, 2, 2, 2), dtype=np.uint8)  # 375 batches of 16
    feats = np.asarray(OffsetFeatures().apply(OffsetFeatures.params, jnp.asarray(images)),
                       np.float64)
    stats = fid_lib.array_stats(images, OffsetFeatures(), batch_size=16,
                                mesh=parallel.make_mesh(1))
    assert stats.count == 6000
    np.testing.assert_allclose(stats.mu, feats.mean(0), rtol=1e-9)
    expected = np.cov(feats, rowvar=False)
    # plain float32 sums drift to ~5e-7 of the scale here; compensated ones stay ~2e-8
    np.testing.assert_allclose(stats.sigma, expected, rtol=0, atol=1e-7 * expected.max())
