"""Linear separability: entropy arithmetic, synthetic latents, sampling, digits classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stylegan_jax as sg
from stylegan_jax import parallel
from stylegan_jax.images import from_uint8
from stylegan_jax.metrics import separability as ls


def test_conditional_entropy_by_hand():
    joint = np.array([[40, 10], [5, 45]])  # rows: SVM prediction, columns: label
    h = lambda *p: -sum(q * np.log(q) for q in p)  # noqa: E731
    expected = 0.5 * h(0.8, 0.2) + 0.5 * h(0.1, 0.9)
    assert ls.conditional_entropy(joint) == pytest.approx(expected, rel=1e-12)
    assert ls.conditional_entropy(np.diag([3, 7])) == 0.0
    assert ls.conditional_entropy(np.ones((2, 2))) == pytest.approx(np.log(2))


def test_attribute_linear_in_w_is_separable_in_w_not_z():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3000, 6))
    w = z**2 - 1  # nonlinear in z
    directions = rng.standard_normal((6, 3))
    probs = 1 / (1 + np.exp(-8 * (w @ directions)))  # three attributes, linear in w
    score_w = ls.separability_score(w, probs, num_keep=1500)
    score_z = ls.separability_score(z, probs, num_keep=1500)
    assert 1.0 <= score_w < 1.2
    assert score_z > 2.0


def test_keep_most_confident_and_single_class():
    prob = np.array([0.51, 0.99, 0.02, 0.49, 0.97, 0.03])
    x = np.array([[5.0], [1.0], [-1.0], [-5.0], [1.5], [-1.5]])  # only 0.51/0.49 mislabelled
    assert ls.attribute_entropy(x, prob, num_keep=4) == 0.0
    assert ls.attribute_entropy(x, np.full(6, 0.9), num_keep=6) == 0.0


def test_linear_separability_on_tiny_generator(tiny_generator):
    g, variables = tiny_generator

    def brightness(images):
        return jax.nn.sigmoid(10 * jnp.mean(images, axis=(1, 2)))  # 3 attributes (channels)

    z, w, probs = ls.sample_attributes(g, variables, brightness, num_samples=60,
                                       batch_size=16, mesh=parallel.make_mesh(8))
    assert z.shape == (60, 8) and w.shape == (60, 8) and probs.shape == (60, 3)
    np.testing.assert_allclose(w, g.apply(variables, jnp.asarray(z), method=sg.Generator.map),
                               rtol=1e-5, atol=1e-6)
    scores = ls.linear_separability(g, variables, brightness, num_samples=60, num_keep=30,
                                    batch_size=16)
    assert set(scores) == {"ls_z", "ls_w"}
    assert all(1.0 <= v <= 8.0 + 1e-9 for v in scores.values())  # exp(3 ln 2) at most


def test_digit_attributes_recognise_the_digits():
    from stylegan_jax.data.builders import digits_arrays
    from stylegan_jax.digit_classifiers import digit_attributes

    classify = digit_attributes()
    images, labels = digits_arrays()
    probs = classify(jnp.asarray(from_uint8(images[::5])))
    assert probs.shape == (len(labels[::5]), 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)
    assert np.mean(probs.argmax(1) == labels[::5]) > 0.95


def test_attribute_direction_is_the_separating_normal_scaled_to_the_spread():
    """Labels from the side of a known hyperplane: the SVM normal is that hyperplane's normal
    (toward the attribute), scaled to the samples' std along it; one label gives zero."""
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((2000, 6)) * [1, 2, 3, 1, 1, 1]
    u = np.array([1.0, -2.0, 0.5, 0, 0, 3.0]) / np.linalg.norm([1.0, -2.0, 0.5, 0, 0, 3.0])
    prob = 1 / (1 + np.exp(-10 * latents @ u))
    d = ls.attribute_direction(latents, prob, num_keep=1000)
    assert d.shape == (6,) and d.dtype == np.float32
    normal = d / np.linalg.norm(d)
    assert normal @ u > 0.99
    np.testing.assert_allclose(np.linalg.norm(d), np.std(latents @ normal), rtol=1e-5)
    np.testing.assert_array_equal(
        ls.attribute_direction(latents, np.full(2000, 0.9), 1000), np.zeros(6))
