"""The compiled training iteration: EMA, w_avg, skipped non-finite updates, device invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import parallel, training
from stylegan_jax.models import build_networks
from stylegan_jax.networks import Generator


@pytest.fixture
def config16(tiny_config):
    """The tiny test config at 16x16 (the step tests feed their own batches)."""
    tiny_config.resolution = 16
    return tiny_config


def setup(config, mesh):
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    state = training.create_train_state(config, G, D, optimizer, mesh)
    iteration = training.make_train_iteration(config, G, D, optimizer, mesh)
    return G, D, optimizer, state, iteration


def batch(mesh, n=8, resolution=16, seed=0):
    rng = np.random.default_rng(seed)
    sharding = parallel.data_sharding(mesh)
    return {"image": jax.device_put(rng.integers(0, 256, (n, resolution, resolution, 3),
                                                 np.uint8), sharding),
            "label": jax.device_put(np.zeros(n, np.int32), sharding)}


def host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


@pytest.fixture(scope="module")
def mesh8():
    assert jax.device_count() == 8, "tests/conftest.py simulates 8 CPU devices"
    return parallel.make_mesh()


def test_iteration_updates_ema_and_w_avg_as_official(mesh8, config16):
    config = config16
    G, _, _, state, iteration = setup(config, mesh8)
    g0 = host(state.g_params)
    state = state.replace(g_ema_params=jax.tree.map(jnp.zeros_like, state.g_ema_params))
    data = batch(mesh8)
    new, metrics = iteration(state, data, 3, 0.0, 1e-3, 1e-3, 0.9, resolution=16)
    # Gs <- lerp(G, Gs, beta) with G as it was before this iteration's G step
    jax.tree.map(lambda e, g: np.testing.assert_allclose(e, 0.1 * g, rtol=1e-5, atol=1e-7),
                 host(new.g_ema_params), g0)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # w_avg is updated by the D pass and the G pass: 0.995 twice from zero, toward batch means
    # of the pre-mixing w of each pass's latents
    key = jax.random.fold_in(jax.random.key(config.seed), 3)
    k_fake_d, _, k_fake_g = jax.random.split(key, 3)
    means = []
    for k in (k_fake_d, k_fake_g):
        z = jax.random.normal(jax.random.split(k, 3)[0], (8, 8))
        w = G.apply({"params": g0, "stats": {"w_avg": jnp.zeros(8)}}, z, method=Generator.map)
        means.append(np.asarray(w).mean(0))
    expected = 0.995 * (0.005 * means[0]) + 0.005 * means[1]
    np.testing.assert_allclose(new.w_avg, expected, rtol=1e-4, atol=1e-7)


def test_nonfinite_gradients_skip_the_update_and_count(mesh8, config16):
    config = config16
    _, _, _, state, iteration = setup(config, mesh8)
    d_params = jax.tree_util.tree_map_with_path(
        lambda p, x: x.at[0].set(jnp.nan) if "4x4_Dense1" in jax.tree_util.keystr(p)
        and x.ndim == 1 else x, state.d_params)
    state = state.replace(d_params=d_params)
    before = host(state)
    new, _ = iteration(state, batch(mesh8), 0, 0.0, 1e-3, 1e-3, 0.9, resolution=16)
    after = host(new)
    for name in ("g_params", "d_params", "g_opt", "d_opt"):
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), getattr(after, name),
                     getattr(before, name))
    assert {k: int(v) for k, v in after.counters.items()} == {
        "d_nonfinite_streak": 1, "g_nonfinite_streak": 1, "worst_nonfinite_streak": 1,
        "nonfinite_total": 2}


def test_one_device_and_eight_devices_give_the_same_step(mesh8, config16):
    """Same global batch and step numbers: the result must not depend on the device count.

    Adam with eps 1e-8 and beta1 0 turns gradients that are zero up to float rounding (e.g. a
    bias followed by instance norm) into +-lr steps, so the comparison uses eps 1 where the
    update is proportional to the gradient. Tolerance: losses 1e-6 relative, parameters 2e-5
    absolute after two iterations (all-reduce order differs between 1 and 8 devices).
    """
    config = config16
    config.opt.epsilon = 1.0
    results = []
    for mesh in (parallel.make_mesh(1), mesh8):
        _, _, _, state, iteration = setup(config, mesh)
        metrics = []
        for step in range(2):
            state, m = iteration(state, batch(mesh, seed=step), step, 0.3, 0.05, 0.05, 0.9,
                                 resolution=8)
            metrics.append(host(m))
        results.append((host(state), metrics))
    (one, m_one), (eight, m_eight) = results
    # losses are means over the batch: float32 rounding of 1- vs 8-way sums is ~1e-6 relative
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), m_one, m_eight)
    for name in ("g_params", "d_params", "g_ema_params", "w_avg"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=2e-5),
                     getattr(one, name), getattr(eight, name))
    initial = host(setup(config, mesh8)[3].d_params)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                         one.d_params, initial))
    assert max(moved) > 1e-3  # the steps really changed the parameters


def test_optimizer_reset_restarts_adam(mesh8, config16):
    config = config16
    _, _, optimizer, state, iteration = setup(config, mesh8)
    state, _ = iteration(state, batch(mesh8), 0, 0.0, 1e-3, 1e-3, 0.9, resolution=16)
    assert int(state.d_opt.count) == 1
    reset = training.reset_optimizers(state, optimizer, mesh8)
    assert int(reset.d_opt.count) == 0 and int(reset.g_opt.count) == 0
    assert all(not np.any(x) for x in jax.tree.leaves(host(reset.d_opt.mu)))
    jax.tree.map(np.testing.assert_array_equal, host(reset.d_params), host(state.d_params))


def test_bfloat16_compute_keeps_float32_state(mesh8, config16):
    config = config16
    config.compute_dtype = "bfloat16"
    _, _, _, state, iteration = setup(config, mesh8)
    state, metrics = iteration(state, batch(mesh8), 0, 0.5, 1e-3, 1e-3, 0.9, resolution=16)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((state.g_params, state.d_params,
                                                                state.g_opt, state.d_opt))
               if jnp.issubdtype(x.dtype, jnp.floating))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    config.compute_dtype = "float16"
    with pytest.raises(ValueError, match="compute_dtype"):
        build_networks(config)


def test_grey_reals_for_one_channel_training(mesh8, config16):
    """num_channels=1 trains on the grey level of RGB-stored data: the 2x2 box mean of the
    channel mean (official rint per level), in [-1, 1], and the step runs on it."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (8, 16, 16), np.uint8)
    images = np.repeat(grey[..., None], 3, axis=-1)
    x = np.asarray(training.prepare_reals(jnp.asarray(images), 8, 0.0, 1))
    ref = np.rint(grey.astype(np.float64).reshape(8, 8, 2, 8, 2).mean(axis=(2, 4)))
    np.testing.assert_allclose(x[..., 0], ref * 2 / 255 - 1, atol=1e-6)
    assert x.shape == (8, 8, 8, 1)
    with pytest.raises(ValueError, match="num_channels=2"):
        training.prepare_reals(jnp.asarray(images), 8, 0.0, 2)
    config = config16
    config.num_channels = 1
    _, _, _, state, iteration = setup(config, mesh8)
    b = batch(mesh8)
    b["image"] = jax.device_put(images, parallel.data_sharding(mesh8))
    _, metrics = iteration(state, b, 0, 0.0, 1e-3, 1e-3, 0.9, resolution=16)
    assert np.isfinite(host(metrics)["loss/D"])


def test_flip_flags_mirror_inside_the_iteration(mesh8, config16):
    """A batch with ``flip`` flags steps exactly like the same batch mirrored beforehand
    (reference: numpy's reversed width axis on the flagged images)."""
    _, _, _, state, iteration = setup(config16, mesh8)
    data = batch(mesh8)
    flips = np.array([True, False, False, True, True, False, True, False])
    mirrored = host(data["image"]).copy()
    mirrored[flips] = mirrored[flips][:, :, ::-1]
    sharding = parallel.data_sharding(mesh8)
    pre = {"image": jax.device_put(mirrored, sharding), "label": data["label"]}
    flagged = {**data, "flip": jax.device_put(flips, sharding)}
    copy = jax.tree.map(jnp.copy, state)  # the iteration donates its state
    a, metrics_a = iteration(state, pre, 1, 0.5, 1e-3, 1e-3, 0.9, resolution=16)
    b, metrics_b = iteration(copy, flagged, 1, 0.5, 1e-3, 1e-3, 0.9, resolution=16)
    jax.tree.map(np.testing.assert_array_equal, host((a, metrics_a)), host((b, metrics_b)))
