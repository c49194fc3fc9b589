"""Generator and Discriminator: official parameter counts, truncation, mixing, growing, grads."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stylegan_jax as sg
from stylegan_jax import layers
from stylegan_jax.config import paper_config
from stylegan_jax.models import build_networks
from stylegan_jax.summary import network_summary

TINY = dict(fmap_base=64, fmap_max=16)
TINY_G = dict(TINY, latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2)
KEY = jax.random.key(0)
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def abstract_params(module, *args):
    return jax.eval_shape(lambda: module.init(KEY, *args))


@pytest.mark.parametrize("resolution,mapping,synthesis,d_total", [
    (1024, 2_101_248, 24_118_379, 23_087_249),
    (256, 2_101_248, 23_984_981, 23_052_353),
    (512, 2_101_248, 24_078_520, 23_080_225),
])
def test_official_parameter_counts(resolution, mapping, synthesis, d_total):
    g_vars = abstract_params(sg.Generator(resolution=resolution), jnp.zeros((1, 512)))
    d_vars = abstract_params(sg.Discriminator(resolution=resolution),
                             jnp.zeros((4, resolution, resolution, 3)))
    assert count(g_vars["params"]["mapping"]) == mapping
    assert count(g_vars["params"]["synthesis"]) == synthesis
    assert count(g_vars["params"]) == mapping + synthesis
    assert count(d_vars["params"]) == d_total
    # w_avg is tracked outside the trainable parameters, as official dlatent_avg
    assert set(g_vars) == {"params", "stats"} and count(g_vars["stats"]) == 512
    assert set(d_vars) == {"params"}


def test_parameter_categories_at_1024():
    synth = abstract_params(sg.Generator(), jnp.zeros((1, 512)))["params"]["synthesis"]
    flat = jax.tree_util.tree_flatten_with_path(synth)[0]

    def total(pred):
        return sum(int(np.prod(v.shape)) for p, v in flat if pred(jax.tree_util.keystr(p)))

    assert total(lambda p: "'Noise'" in p) == 5_088
    assert total(lambda p: "ToRGB" in p) == 7_659
    assert total(lambda p: "'StyleMod'" in p) == 5_210_112 + 10_176
    assert total(lambda p: "'const'" in p) == 8_192


def test_traditional_generator_count_matches_paper():
    """Config B (no mapping, styles or noise; dense input) has the paper's 23.1M parameters."""
    g = sg.Generator(use_styles=False, use_pixel_norm=True, use_instance_norm=False,
                     mapping_layers=0, const_input_layer=False, use_noise=False,
                     style_mixing_prob=0.0)
    assert count(abstract_params(g, jnp.zeros((1, 512)))["params"]) == 23_079_115


def test_label_conditioning_parameters():
    g = sg.Generator(resolution=8, label_size=10, **TINY_G)
    d = sg.Discriminator(resolution=8, label_size=10, **TINY)
    plain_g = sg.Generator(resolution=8, **TINY_G)
    plain_d = sg.Discriminator(resolution=8, **TINY)
    labels = jax.nn.one_hot(jnp.arange(4) % 10, 10)
    z = jnp.zeros((4, 8))
    extra_g = count(abstract_params(g, z, labels)["params"]) - count(
        abstract_params(plain_g, z)["params"])
    # LabelConcat [10, latent], then the first dense layer sees 2x the input dims
    assert extra_g == 10 * 8 + 8 * 8
    imgs = jnp.zeros((4, 8, 8, 3))
    extra_d = count(abstract_params(d, imgs, labels)["params"]) - count(
        abstract_params(plain_d, imgs)["params"])
    assert extra_d == (16 * 10 + 10) - (16 + 1)  # Dense1 gets label_size outputs


def test_conditional_discriminator_projects_onto_the_label():
    d = sg.Discriminator(resolution=8, label_size=3, **TINY)
    imgs = jax.random.normal(KEY, (4, 8, 8, 3))
    labels = jax.nn.one_hot(jnp.array([0, 1, 2, 1]), 3)
    variables = d.init(KEY, imgs, labels)
    scores = d.apply(variables, imgs, labels)
    per_class = np.stack([d.apply(variables, imgs, jnp.tile(jnp.eye(3)[c], (4, 1)))
                          for c in range(3)])
    np.testing.assert_allclose(scores, per_class[[0, 1, 2, 1], np.arange(4)], rtol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    g = sg.Generator(resolution=32, **TINY_G)
    d = sg.Discriminator(resolution=32, **TINY)
    z = jax.random.normal(KEY, (4, 8))
    g_vars = g.init(jax.random.key(1), z)
    # give the noise strengths and biases non-zero values so every path is exercised
    leaves, treedef = jax.tree.flatten(g_vars["params"])
    keys = jax.random.split(jax.random.key(2), len(leaves))
    g_params = jax.tree.unflatten(treedef, [
        p + 0.3 * jax.random.normal(k, p.shape) if p.ndim == 1 else p
        for p, k in zip(leaves, keys, strict=True)])
    g_vars = {"params": g_params, "stats": {"w_avg": jax.random.normal(jax.random.key(3), (8,))}}
    d_vars = d.init(jax.random.key(4), jnp.zeros((4, 32, 32, 3)))
    return g, d, z, g_vars, d_vars


def fixed_noise(g, resolution, batch=4, seed=7):
    shapes = sg.noise_shapes(resolution)
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return [jax.random.normal(k, (batch, *s[1:])) for k, s in zip(keys, shapes, strict=True)]


def test_noise_is_random_by_default_and_deterministic_when_given(tiny):
    g, _, z, g_vars, _ = tiny
    a = g.apply(g_vars, z, rngs={"noise": jax.random.key(1)})
    b = g.apply(g_vars, z, rngs={"noise": jax.random.key(2)})
    assert a.shape == (4, 32, 32, 3) and not np.allclose(a, b)
    noise = fixed_noise(g, 32)
    np.testing.assert_array_equal(g.apply(g_vars, z, noise=noise), g.apply(g_vars, z, noise=noise))
    with pytest.raises(ValueError, match="rngs"):
        g.apply(g_vars, z)
    with pytest.raises(ValueError, match="noise must list 8"):
        g.apply(g_vars, z, noise=noise[:3])
    plain = sg.Generator(resolution=32, use_noise=False, **TINY_G)
    plain_vars = plain.init(KEY, z)
    np.testing.assert_array_equal(plain.apply(plain_vars, z), plain.apply(plain_vars, z))


def test_truncation_semantics(tiny):
    g, _, z, g_vars, _ = tiny
    w = g.apply(g_vars, z, method=sg.Generator.map)
    w_layers = jnp.broadcast_to(w[:, None], (4, g.num_layers, 8))
    avg = g_vars["stats"]["w_avg"]
    for psi, cutoff in [(0.7, 8), (0.5, 3), (0.0, 8), (-1.0, 5)]:
        got = g.apply(g_vars, w_layers, psi, cutoff, method=sg.Generator.truncate)
        for layer in range(g.num_layers):
            expected = avg + psi * (w - avg) if layer < cutoff else w
            np.testing.assert_allclose(got[:, layer], expected, rtol=1e-5, atol=1e-6)
    noise = fixed_noise(g, 32)
    # psi = 1 is no truncation; psi = 0 on every layer gives the average image for every z
    np.testing.assert_allclose(g.apply(g_vars, z, truncation_psi=1.0, noise=noise),
                               g.apply(g_vars, z, noise=noise), atol=1e-4)
    mean_images = g.apply(g_vars, z, truncation_psi=0.0, truncation_cutoff=g.num_layers,
                          noise=[n[:1] for n in noise])
    np.testing.assert_allclose(mean_images, jnp.broadcast_to(mean_images[:1], mean_images.shape),
                               atol=1e-5)
    avg_image = g.apply(g_vars, w=avg[None], noise=[n[:1] for n in noise])
    # batch 4 vs batch 1 are two differently fused programs: float32 rounding of outputs up to
    # ~15 accumulates over the layers to a few 1e-5 (as the conditional-generate test allows)
    np.testing.assert_allclose(mean_images[0], avg_image[0], rtol=1e-5, atol=5e-5)
    # the module default cutoff is the official 8 (layers 0-7: 4x4 ... 32x32)
    assert sg.Generator().truncation_cutoff == 8


def test_w_plus_input_drives_each_layer(tiny):
    g, _, z, g_vars, _ = tiny
    noise = fixed_noise(g, 32)
    w = g.apply(g_vars, z, method=sg.Generator.map)
    np.testing.assert_allclose(g.apply(g_vars, w=w, noise=noise), g.apply(g_vars, z, noise=noise),
                               atol=1e-6)
    w_plus = jnp.broadcast_to(w[:, None], (4, g.num_layers, 8))
    w_plus_swapped = w_plus.at[:, 5:].set(w[::-1, None])  # fine styles from other samples
    out = g.apply(g_vars, w=w_plus_swapped, noise=noise)
    assert not np.allclose(out, g.apply(g_vars, w=w_plus, noise=noise))
    with pytest.raises(ValueError, match="w must be"):
        g.apply(g_vars, w=w_plus[:, :3], noise=noise)


def test_style_mixing_semantics(tiny):
    g, _, z, g_vars, _ = tiny
    w1 = g.apply(g_vars, z, method=sg.Generator.map)
    w_layers = jnp.broadcast_to(w1[:, None], (4, g.num_layers, 8))

    def mix(key, resolution):
        return g.apply(g_vars, w_layers, z, None, resolution, rngs={"mixing": key},
                       method=sg.Generator._mix_styles)

    for resolution in (32, 16):
        cur_layers = sg.num_style_layers(resolution)
        cutoffs = []
        for i in range(300):
            mixed = np.asarray(mix(jax.random.key(i), resolution))
            same = np.all(np.isclose(mixed, np.asarray(w_layers)), axis=(0, 2))
            # one crossover for the whole minibatch: a prefix of layers keeps w1, the rest w2
            cutoff = int(np.argmin(same)) if not same.all() else g.num_layers
            assert same[:cutoff].all() and not same[cutoff:].any()
            w2 = mixed[:, cutoff:]
            assert np.allclose(w2, w2[:, :1])  # one second latent per sample, broadcast
            cutoffs.append(min(cutoff, cur_layers))
        cutoffs = np.array(cutoffs)
        # crossover ~ U{1, ..., cur_layers - 1} with prob 0.9, else no mixing in active layers
        assert set(cutoffs[cutoffs < cur_layers]) == set(range(1, cur_layers))
        assert 0.05 < np.mean(cutoffs == cur_layers) < 0.16


def test_style_mixing_draws_one_crossover_per_group(tiny):
    """style_mixing_groups=2 on 4 samples: samples (0, 1) and (2, 3) each share a crossover
    (the official per-GPU draw), and the two groups' draws are independent."""
    g, _, z, g_vars, _ = tiny
    g2 = g.clone(style_mixing_groups=2)
    w1 = g2.apply(g_vars, z, method=sg.Generator.map)
    w_layers = jnp.broadcast_to(w1[:, None], (4, g2.num_layers, 8))
    cutoffs = []
    for i in range(200):
        mixed = np.asarray(g2.apply(g_vars, w_layers, z, None, 32, rngs={"mixing":
                                    jax.random.key(i)}, method=sg.Generator._mix_styles))
        same = np.all(np.isclose(mixed, np.asarray(w_layers)), axis=2)  # [sample, layer]
        per_sample = [int(np.argmin(row)) if not row.all() else g2.num_layers for row in same]
        assert per_sample[0] == per_sample[1] and per_sample[2] == per_sample[3]
        cutoffs.append((per_sample[0], per_sample[2]))
    cutoffs = np.array(cutoffs)
    assert np.mean(cutoffs[:, 0] != cutoffs[:, 1]) > 0.5  # independent draws per group
    with pytest.raises(ValueError, match="style_mixing_groups=3"):
        g.clone(style_mixing_groups=3).apply(g_vars, w_layers, z, None, 32,
                                             rngs={"mixing": KEY},
                                             method=sg.Generator._mix_styles)


def test_train_mode_updates_w_avg_from_premixing_w(tiny):
    g, _, z, g_vars, _ = tiny
    rngs = {"noise": jax.random.key(1), "mixing": jax.random.key(2)}
    _, state = g.apply(g_vars, z, train=True, mutable=["stats"], rngs=rngs)
    w = g.apply(g_vars, z, method=sg.Generator.map)
    expected = 0.995 * g_vars["stats"]["w_avg"] + 0.005 * w.mean(axis=0)
    np.testing.assert_allclose(state["stats"]["w_avg"], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="mutable"):
        g.apply(g_vars, z, train=True, rngs=rngs)


def test_fade_blend_at_lod_0_half_and_1(tiny):
    g, d, z, g_vars, d_vars = tiny
    noise = fixed_noise(g, 16)

    def gen(fade, resolution=16, n=noise):
        return g.apply(g_vars, z, current_resolution=resolution, fade=fade, noise=n)

    new, half, old = gen(0.0), gen(0.5), gen(1.0)
    assert new.shape == (4, 16, 16, 3)
    previous = gen(0.0, resolution=8, n=noise[:4])  # the 8x8 phase's image, same noise
    np.testing.assert_allclose(old, layers.upscale2d(previous), atol=1e-5)
    np.testing.assert_allclose(half, 0.5 * (new + old), atol=1e-5)
    np.testing.assert_allclose(gen(1.7), old, atol=1e-6)  # clipped like lerp_clip

    images = jax.random.normal(KEY, (4, 16, 16, 3))
    np.testing.assert_allclose(d.apply(d_vars, images, fade=1.0),
                               d.apply(d_vars, layers.downscale2d(images), fade=0.0), rtol=1e-4,
                               atol=1e-5)
    # at fade 0 the previous resolution's FromRGB is unused
    bumped = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 1.0 if "FromRGB_8x8" in jax.tree_util.keystr(p) else x, d_vars)
    np.testing.assert_allclose(d.apply(bumped, images, fade=0.0), d.apply(d_vars, images),
                               rtol=1e-6)
    assert not np.allclose(d.apply(bumped, images, fade=0.5), d.apply(d_vars, images, fade=0.5))


def test_progressive_growing_compiles_once_per_resolution(tiny):
    g, d, z, g_vars, d_vars = tiny
    traces = {}

    def step(g_vars, d_vars, fade, key, resolution):
        traces[resolution] = traces.get(resolution, 0) + 1
        images = g.apply(g_vars, z, current_resolution=resolution, fade=fade,
                         rngs={"noise": key})
        return images, d.apply(d_vars, images, fade=fade)

    jitted = jax.jit(step, static_argnames="resolution")
    for resolution in (4, 8, 16, 32):
        for i, fade in enumerate((1.0, 0.6, 0.0)):
            images, logits = jitted(g_vars, d_vars, fade, jax.random.key(i), resolution)
            assert images.shape == (4, resolution, resolution, 3)
            assert logits.shape == (4,) and np.isfinite(logits).all()
    assert traces == {4: 1, 8: 1, 16: 1, 32: 1}


def test_gradients_of_d_of_g_are_finite_for_both_networks(tiny):
    g, d, z, g_vars, d_vars = tiny

    @jax.jit
    def grads(g_params, d_params):
        def loss(g_params, d_params):
            images, _ = g.apply({"params": g_params, "stats": g_vars["stats"]}, z, train=True,
                                mutable=["stats"],
                                rngs={"noise": jax.random.key(1), "mixing": jax.random.key(2)})
            return jax.nn.softplus(-d.apply({"params": d_params}, images)).mean()
        return jax.grad(loss, argnums=(0, 1))(g_params, d_params)

    g_grads, d_grads = grads(g_vars["params"], d_vars["params"])
    for tree in (g_grads, d_grads):
        leaves = jax.tree.leaves(tree)
        assert all(np.isfinite(x).all() for x in leaves)
        assert sum(float(jnp.abs(x).sum()) for x in leaves) > 0


def test_bfloat16_compute_stays_close_to_float32(tiny):
    g, d, z, g_vars, d_vars = tiny
    g16 = sg.Generator(resolution=32, dtype=jnp.bfloat16, **TINY_G)
    d16 = sg.Discriminator(resolution=32, dtype=jnp.bfloat16, **TINY)
    noise = fixed_noise(g, 32)
    images = g.apply(g_vars, z, noise=noise)
    images16 = g16.apply(g_vars, z, noise=noise)
    assert images16.dtype == jnp.float32
    assert float(jnp.abs(images16 - images).max()) < 0.1 * float(jnp.abs(images).max())
    np.testing.assert_allclose(d16.apply(d_vars, images), d.apply(d_vars, images), rtol=0.1,
                               atol=0.05)


def test_bad_inputs_give_clear_errors(tiny):
    g, d, z, g_vars, d_vars = tiny
    with pytest.raises(ValueError, match=r"z must have shape \[N, 8\]"):
        g.apply(g_vars, jnp.zeros((4, 9)), noise=fixed_noise(g, 32))
    with pytest.raises(ValueError, match="exactly one of z and w"):
        g.apply(g_vars)
    with pytest.raises(ValueError, match="outside"):
        g.apply(g_vars, z, current_resolution=64, rngs={"noise": KEY})
    with pytest.raises(ValueError, match="power of two"):
        g.apply(g_vars, z, current_resolution=12, rngs={"noise": KEY})
    with pytest.raises(ValueError, match="exceed"):
        d.apply(d_vars, jnp.zeros((4, 64, 64, 3)))
    with pytest.raises(ValueError, match="images must be"):
        d.apply(d_vars, jnp.zeros((4, 32, 32, 1)))


def test_config_builds_config_f_and_summary_prints_totals():
    g, d = build_networks(paper_config(256))
    assert (g.resolution, g.mapping_layers, g.style_mixing_prob, g.fused_scale) == \
        (256, 8, 0.9, "auto")
    assert (d.mbstd_group_size, d.fmap_max) == (4, 512)
    config = paper_config(1024)
    text = network_summary(config)
    assert "26,219,627" in text and "23,087,249" in text
    assert "mapping 2,101,248, synthesis 24,118,379" in text
    assert "synthesis/1024x1024_Conv1" in text and "4x4_Dense0" in text
    config.G.fused_scale = "sometimes"
    with pytest.raises(ValueError, match=r"config.G.fused_scale"):
        build_networks(config)


def test_summary_command_runs_from_the_config_file(capsys):
    from stylegan_jax import cli

    cli.main(["summary", "--config", str(EXPERIMENTS / "ffhq_256.py"),
              "--config.G.mapping_layers=4"])
    out = capsys.readouterr().out
    assert f"{26_086_229 - 4 * 262_656:,}" in out and "23,052,353" in out
    with pytest.raises(SystemExit, match="--config"):
        cli.main(["summary"])


def test_layout_and_remat_switches_leave_the_function_unchanged():
    """``layout_resolution`` (a memory layout) and ``remat_resolution`` (recompute instead of
    store) change what XLA stores, not what G, D and the R1 double backward compute: same
    parameter tree, same values and gradients as the default networks (to float32 rounding
    of recomputation)."""
    z = jax.random.normal(KEY, (4, 8))
    reals = jax.random.normal(jax.random.key(2), (4, 16, 16, 3))

    def grads(**switches):
        G = sg.Generator(resolution=16, **TINY_G, **switches)
        D = sg.Discriminator(resolution=16, **TINY, **switches)
        g_vars, d_vars = G.init(KEY, z), D.init(jax.random.key(1), reals)

        def loss(g_params, d_params):
            def d(x):
                return D.apply({"params": d_params}, x).sum()

            fakes = G.apply({**g_vars, "params": g_params}, z,
                            rngs={"noise": jax.random.key(3)})
            return d(fakes) + jnp.sum(jax.grad(d)(reals) ** 2)

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(g_vars["params"],
                                                                 d_vars["params"])

    reference = grads()
    # (not at 4x4: at init the constant input has zero variance, so instance norm amplifies
    # rounding 1e4-fold there and any change of evaluation order shows in its gradients)
    for switches in (dict(layout_resolution=8), dict(remat_resolution=8),
                     dict(layout_resolution=8, remat_resolution=16)):
        other = grads(**switches)
        assert jax.tree.structure(other) == jax.tree.structure(reference)
        for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(other), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(jnp.abs(a).max()))
