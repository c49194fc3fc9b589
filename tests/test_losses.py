"""Losses against closed forms and finite differences; the official low-resolution R1 factor."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stylegan_jax as sg
from stylegan_jax import layers, losses
from stylegan_jax.config import paper_config
from stylegan_jax.training import r1_resolution_scale

RNG = np.random.default_rng(0)


def softplus(x):
    return np.log1p(np.exp(x))


def test_logistic_losses_closed_form():
    logits = jnp.array([-3.0, 0.0, 2.5])
    np.testing.assert_allclose(losses.g_logistic_nonsaturating(logits), softplus(-logits),
                               rtol=1e-6)
    np.testing.assert_allclose(losses.g_wgan(logits), -logits)


def linear_setup(n, size):
    """A linear D(x) = <x, a> (its input gradient is ``a`` everywhere), reals and fakes."""
    a = RNG.normal(size=(size, size, 3)).astype(np.float32)

    def d_fn(x):
        return jnp.sum(x * a, axis=(1, 2, 3))

    reals, fakes = RNG.normal(size=(2, n, size, size, 3)).astype(np.float32)
    return a, d_fn, reals, fakes


def test_d_logistic_r1_with_a_linear_discriminator():
    a, d_fn, reals, fakes = linear_setup(5, 4)
    loss, aux = losses.d_logistic_r1(d_fn, reals, fakes, r1_gamma=10.0, r1_scale=0.25)
    real, fake = (reals * a).sum((1, 2, 3)), (fakes * a).sum((1, 2, 3))
    expected = softplus(fake) + softplus(-real) + 10.0 / 2 * 0.25 * (a**2).sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(aux["r1_penalty"], np.full(5, (a**2).sum()), rtol=1e-5)


def test_r1_gamma_zero_is_the_logistic_loss_alone():
    a, d_fn, reals, fakes = linear_setup(5, 4)
    loss, aux = losses.d_logistic_r1(d_fn, reals, fakes, r1_gamma=0.0, r1_scale=0.25)
    real, fake = (reals * a).sum((1, 2, 3)), (fakes * a).sum((1, 2, 3))
    np.testing.assert_allclose(loss, softplus(fake) + softplus(-real), rtol=1e-5)
    np.testing.assert_array_equal(aux["r1_penalty"], np.zeros(5))


def test_r1_matches_finite_differences_of_a_real_discriminator():
    """R1 is the squared input gradient of sum(D(reals)) (samples interact through the
    minibatch stddev, so the sum matters); checked by central differences in float64."""
    d = sg.Discriminator(resolution=4, fmap_base=16, fmap_max=8, dtype=jnp.float64)
    x = RNG.normal(size=(4, 4, 4, 3))
    with jax.enable_x64(True):
        variables = d.init(jax.random.key(0), jnp.asarray(x))

        def total(images):
            return float(jnp.sum(d.apply(variables, images)))

        penalty, _ = losses.r1_penalty(lambda im: d.apply(variables, im), jnp.asarray(x))
        eps = 1e-3  # the layers keep statistics in float32: not much smaller
        grads = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[idx] += eps
            minus[idx] -= eps
            grads[idx] = (total(plus) - total(minus)) / (2 * eps)
    np.testing.assert_allclose(penalty, (grads**2).sum((1, 2, 3)), rtol=1e-3)


def test_wgan_gp_with_a_linear_discriminator():
    a, d_fn, reals, fakes = linear_setup(3, 2)
    loss, aux = losses.d_wgan_gp(d_fn, reals, fakes, jax.random.key(0), wgan_lambda=10.0,
                                 wgan_epsilon=0.001, wgan_target=1.0, grad_scale=0.5)
    real, fake = (reals * a).sum((1, 2, 3)), (fakes * a).sum((1, 2, 3))
    gp = (0.5 * math.sqrt((a**2).sum()) - 1.0) ** 2  # the gradient of a linear D is a
    np.testing.assert_allclose(loss, fake - real + 10.0 * gp + 0.001 * real**2, rtol=1e-5)
    np.testing.assert_allclose(aux["gp_penalty"], np.full(3, gp), rtol=1e-5)


@pytest.mark.parametrize("k", [2, 4])
def test_official_r1_scale_equals_gradient_wrt_upsampled_reals(k):
    """The official graph feeds D nearest-upsampled reals that it box-downsamples again; R1
    taken there equals the native R1 times r1_resolution_scale."""
    config = paper_config(32)
    resolution = 32 // k
    w = RNG.normal(size=(resolution, resolution, 3)).astype(np.float32)

    def d_native(x):
        return jnp.sum(jnp.tanh(x) * w, axis=(1, 2, 3))

    def d_official(x_full):
        return d_native(layers.downscale2d(x_full, k))

    x = jnp.asarray(RNG.normal(size=(2, resolution, resolution, 3)), jnp.float32)
    native, _ = losses.r1_penalty(d_native, x)
    official, _ = losses.r1_penalty(d_official, layers.upscale2d(x, k))
    scale = r1_resolution_scale(config, resolution)
    assert scale == pytest.approx(1 / k**2)
    np.testing.assert_allclose(official, native * scale, rtol=1e-5)
    config.loss.r1_scaling = "native"
    assert r1_resolution_scale(config, resolution) == 1.0
    config.loss.r1_scaling = "other"
    with pytest.raises(ValueError, match="r1_scaling"):
        r1_resolution_scale(config, resolution)
