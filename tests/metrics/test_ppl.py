"""PPL pieces: interpolation, pairs, crop/downsample, percentile filter, device invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stylegan_jax as sg
from stylegan_jax import latents, parallel
from stylegan_jax.metrics import lpips
from stylegan_jax.metrics import path_length as ppl_lib


@pytest.fixture(scope="module")
def tiny():
    g = sg.Generator(resolution=16, fmap_base=64, fmap_max=16, latent_size=8, dlatent_size=8,
                     mapping_fmaps=8, mapping_layers=2)
    return g, g.init(jax.random.key(0), jnp.zeros((1, 8)))


def test_slerp_and_lerp_endpoints_and_step():
    """The official PPL slerp (unit-norm result) and lerp, on JAX and numpy arrays."""
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal((4, 16))) for _ in range(2))
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(latents.slerp(a, b, jnp.zeros((4, 1))), unit(a), atol=1e-6)
    np.testing.assert_allclose(latents.slerp(a, b, jnp.ones((4, 1))), unit(b), atol=1e-5)
    t = jnp.full((4, 1), 0.3)
    s0, s1 = latents.slerp(a, b, t), latents.slerp(a, b, t + 0.01)
    omega = np.arccos(np.sum(unit(a) * unit(b), -1))
    np.testing.assert_allclose(np.arccos(np.clip(np.sum(s0 * s1, -1), -1, 1)), 0.01 * omega,
                               rtol=1e-2)
    np.testing.assert_allclose(np.linalg.norm(s1, axis=-1), 1, rtol=1e-6)
    np.testing.assert_allclose(latents.lerp(a, b, t + 1e-4) - latents.lerp(a, b, t),
                               1e-4 * (b - a), atol=1e-6)
    # numpy vectors: the quarter circle's midpoint, exact start, parallel ends give no NaN
    e0, e1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(latents.slerp(e0, e1, 0.5), np.sqrt([0.5, 0.5]))
    np.testing.assert_array_equal(latents.slerp(e0, e1, 0.0), e0)
    np.testing.assert_allclose(latents.slerp(e0, 3 * e0, 0.5), e0)


@pytest.mark.parametrize("space", ["z", "w"])
def test_pairs_are_eps_apart_from_the_start_in_end_sampling(tiny, space):
    g, variables = tiny
    key = jax.random.key(5)
    e0, e1 = ppl_lib.pair_dlatents(g, variables, key, 6, space, "end", 1e-4)
    z0, z1 = jax.random.normal(jax.random.split(key, 3)[0], (2, 6, 8))
    mapping = lambda z: g.apply(variables, z, method=sg.Generator.map)  # noqa: E731
    if space == "w":
        np.testing.assert_allclose(e0, mapping(z0), rtol=1e-6)
        np.testing.assert_allclose((e1 - e0) / 1e-4, mapping(z1) - mapping(z0), rtol=2e-3,
                                   atol=2e-3)
    else:
        zs = latents.slerp(z0, z1, jnp.full((6, 1), 1e-4))
        np.testing.assert_allclose(e0, mapping(z0), rtol=1e-5)  # pixel norm: |z| irrelevant
        np.testing.assert_allclose(e1, mapping(zs), rtol=1e-5)


@pytest.mark.parametrize("size,crop", [(1024, True), (512, False), (256, True)])
def test_crop_and_box_downsample(size, crop):
    x = np.random.default_rng(size).standard_normal((1, size, size, 3)).astype(np.float32)
    expected = x[:, 3 * size // 8:7 * size // 8, 2 * size // 8:6 * size // 8] if crop else x
    h = expected.shape[1]
    if h > 256:
        f = h // 256
        expected = expected.reshape(1, 256, f, 256, f, 3).mean((2, 4))
    out = ppl_lib.crop_and_downsample(jnp.asarray(x), crop)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)


def test_filtered_mean_matches_sorted_percentiles():
    d = np.random.default_rng(0).lognormal(size=1001)
    d[:5] = 1e9  # outliers
    s = np.sort(d)
    lo, hi = s[int(np.floor(0.01 * 1000))], s[int(np.ceil(0.99 * 1000))]
    expected = d[(d >= lo) & (d <= hi)].mean()
    assert ppl_lib.filtered_mean(d) == pytest.approx(expected, rel=1e-12)


def sq_distance(params, x, y):
    return jnp.mean(jnp.square(x - y), axis=(1, 2, 3)) * params


def test_shared_noise_within_pairs(tiny):
    g, variables = tiny
    # t + 1e-10 == t in float32 (t > 1e-3): both ends get the same w; only noise could differ.
    d = ppl_lib.ppl_distances(g, variables, jnp.float32(1), num_samples=16, batch_size=8,
                              epsilon=1e-10, distance=sq_distance, mesh=parallel.make_mesh(1))
    np.testing.assert_array_equal(d, np.zeros(16))


def test_lpips_ppl_invariant_to_device_count(tiny):
    g, variables = tiny
    params = lpips.LPIPS().init(jax.random.key(1), jnp.zeros((1, 16, 16, 3)),
                                jnp.zeros((1, 16, 16, 3)))["params"]
    # epsilon 1e-2: at 1e-4 the float32 finite difference itself carries ~1e-3 relative
    # rounding noise, which differs with the batch layout.
    runs = [ppl_lib.ppl_distances(g, variables, params, space="z", sampling="full",
                                  num_samples=20, batch_size=8, seed=2, epsilon=1e-2,
                                  mesh=parallel.make_mesh(n)) for n in (1, 8)]
    assert runs[0].shape == (20,) and np.all(runs[0] > 0)
    np.testing.assert_allclose(runs[0], runs[1], rtol=5e-4)
    assert ppl_lib.filtered_mean(runs[0]) == pytest.approx(ppl_lib.filtered_mean(runs[1]),
                                                           rel=5e-4)
