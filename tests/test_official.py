"""Reading NVIDIA's original StyleGAN pickles: official-format files are built here from random
weights in our own networks (``official_pickles``, written from the official graph code
independently of the loader), and loading must give back exactly those weights."""

import pickle
import pickletools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from official_pickles import dumps, network, official_discriminator, official_generator

import stylegan_jax as sg
from stylegan_jax import official, parallel, runs
from stylegan_jax.models import build_networks
from stylegan_jax.networks import Discriminator, Generator
from stylegan_jax.safe_pickle import UnsafePickleError

TINY_G = dict(latent_size=8, dlatent_size=8, mapping_layers=2, mapping_fmaps=8, fmap_base=256,
              fmap_max=8)
TINY_D = dict(fmap_base=256, fmap_max=8)


def load_all(path):
    """A run or pickle's generator on every device, as ``stylegan-jax metrics`` loads it."""
    return sg.load(path, mesh=parallel.make_mesh())


def random_like(tree, seed):
    """Every leaf random (biases, noise strengths and w_avg included), so that no swapped or
    dropped variable can go unnoticed."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), tree)


def our_networks(resolution, label_size, g_extra=None, seed=0, d_extra=None):
    """Random variables of our G, Gs (a second draw) and D with the given official kwargs."""
    g_kwargs = {**dict(resolution=resolution, num_channels=3, label_size=label_size),
                **TINY_G, **(g_extra or {})}
    d_kwargs = {**dict(resolution=resolution, num_channels=3, label_size=label_size),
                **TINY_D, **(d_extra or {})}
    G = our_generator(g_kwargs)
    D = Discriminator(**d_kwargs)
    labels = jnp.zeros((1, label_size)) if label_size else None
    g_vars = jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, 8)), labels)
    d_vars = jax.eval_shape(D.init, jax.random.key(0), jnp.zeros((1, resolution, resolution, 3)),
                            labels)
    rng = np.random.default_rng(seed + 3)
    noise = [rng.standard_normal(s).astype(np.float32) for s in _noise_shapes(resolution)]
    return (g_kwargs, d_kwargs, random_like(g_vars, seed), random_like(g_vars, seed + 1),
            random_like(d_vars, seed + 2), noise)


def our_generator(g_kwargs):
    """Our Generator for official G_style kwargs that name our attributes (and blur_filter)."""
    ours = {k: v for k, v in g_kwargs.items() if k != "blur_filter"}
    if "blur_filter" in g_kwargs:
        ours["use_blur"] = bool(g_kwargs["blur_filter"])
    return Generator(**ours)


def _noise_shapes(resolution):
    n = 2 * int(np.log2(resolution)) - 2
    return [(1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2), 1) for i in range(n)]


def write_pickle(path, g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise, *, protocol=4,
                 numpy_style="new", version=3, lod=0.0):
    G = official_generator(g_kwargs, g_vars, noise, name="G", version=version, lod=lod)
    Gs = official_generator(g_kwargs, gs_vars, noise, name="Gs", version=version, lod=lod)
    D = official_discriminator(d_kwargs, d_vars, version=version)
    path.write_bytes(dumps((G, D, Gs), protocol=protocol, numpy_style=numpy_style))
    return path


def assert_tree_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(np.testing.assert_array_equal, actual, expected)


@pytest.mark.parametrize("resolution,label_size,numpy_style,protocol,version", [
    (32, 0, "old", 2, 3),
    (32, 3, "new", 4, 3),
    (128, 0, "new", 5, 3),
    (128, 5, "old", 4, 3),
])
def test_loading_gives_back_exactly_the_weights(tmp_path, resolution, label_size, numpy_style,
                                                protocol, version):
    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = our_networks(resolution, label_size)
    path = write_pickle(tmp_path / "net.pkl", g_kwargs, d_kwargs, g_vars, gs_vars, d_vars,
                        noise, protocol=protocol, numpy_style=numpy_style, version=version)
    globals_used = {arg for op, arg, _ in pickletools.genops(path.read_bytes())
                    if op.name == "GLOBAL"}
    if protocol == 2:  # protocol 2 names globals inline: check the numpy naming style
        core = "numpy.core" if numpy_style == "old" else "numpy._core"
        assert f"{core}.multiarray _reconstruct" in globals_used
        assert "dnnlib.tflib.network Network" in globals_used
    if numpy_style == "old":
        assert b"numpy.core.multiarray" in path.read_bytes()
        assert b"numpy._core" not in path.read_bytes()
    if protocol == 5:  # numpy 2 writes protocol-5 arrays through numeric._frombuffer
        assert b"numpy._core.numeric" in path.read_bytes() and b"_frombuffer" in path.read_bytes()

    net = official.load_pickle(path)
    assert_tree_equal(net.G, g_vars)
    assert_tree_equal(net.Gs, gs_vars)
    assert_tree_equal(net.D, d_vars)
    assert len(net.noise) == 2 * int(np.log2(resolution)) - 2
    for got, want in zip(net.noise, noise, strict=True):
        np.testing.assert_array_equal(got, want)
    assert net.lod == 0.0
    c = net.config
    assert (c.resolution, c.num_channels, c.label_size) == (resolution, 3, label_size)
    for key, value in TINY_G.items():
        assert c.G[key] == value, key
    assert (c.D.fmap_base, c.D.fmap_max, c.D.mbstd_group_size) == (256, 8, 4)
    # The loaded config builds networks whose variables have exactly these shapes.
    G, D = build_networks(c)
    labels = jnp.zeros((1, label_size)) if label_size else None
    shapes = jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, 8)), labels)
    assert jax.tree.map(np.shape, shapes) == jax.tree.map(np.shape, net.Gs)


def test_official_names_for_a_few_variables():
    """The loader's names, against names read off the official source by hand."""
    cases = {
        ("mapping", "Dense0", "kernel"): "G_mapping/Dense0/weight",
        ("mapping", "Dense7", "bias", "bias"): "G_mapping/Dense7/bias",
        ("mapping", "LabelConcat"): "G_mapping/LabelConcat/weight",
        ("synthesis", "4x4_Const", "const"): "G_synthesis/4x4/Const/const",
        ("synthesis", "4x4_Const", "Noise", "strength"): "G_synthesis/4x4/Const/Noise/weight",
        ("synthesis", "4x4_Dense", "Dense", "kernel"): "G_synthesis/4x4/Dense/weight",
        ("synthesis", "64x64_Conv0_up", "StyleMod", "affine", "kernel"):
            "G_synthesis/64x64/Conv0_up/StyleMod/weight",
        ("synthesis", "64x64_Conv1", "StyleMod", "affine", "bias", "bias"):
            "G_synthesis/64x64/Conv1/StyleMod/bias",
        ("synthesis", "ToRGB_1024x1024", "Conv", "kernel"): "G_synthesis/ToRGB_lod0/weight",
        ("synthesis", "ToRGB_4x4", "Bias", "bias"): "G_synthesis/ToRGB_lod8/bias",
        ("FromRGB_256x256", "Conv", "kernel"): "FromRGB_lod2/weight",
        ("8x8_Conv1_down", "Conv", "kernel"): "8x8/Conv1_down/weight",
        ("4x4_Conv", "Bias", "bias"): "4x4/Conv/bias",
        ("4x4_Dense1", "kernel"): "4x4/Dense1/weight",
    }
    for ours, name in cases.items():
        assert official.official_name(ours, 10) == name


def test_ablation_switches_map_to_module_attributes(tmp_path):
    """Table 1 row B-like switches: no styles, no noise, a dense input layer, pixel norm, no
    instance norm, no blur, no fused resampling, and G_style's own kwargs."""
    extra = dict(use_styles=False, use_noise=False, const_input_layer=False,
                 use_pixel_norm=True, use_instance_norm=False, blur_filter=None,
                 fused_scale=False, mapping_layers=3, mapping_lrmul=0.1,
                 normalize_latents=False, style_mixing_prob=None, truncation_psi=0.5,
                 truncation_cutoff=4, dlatent_avg_beta=None)
    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = our_networks(32, 0, {
        k: v for k, v in extra.items() if k not in ("style_mixing_prob", "truncation_psi",
                                                    "truncation_cutoff", "dlatent_avg_beta")})
    g_kwargs.update(extra)
    path = write_pickle(tmp_path / "b.pkl", g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise)
    net = official.load_pickle(path)
    assert net.noise is None
    assert_tree_equal(net.Gs, gs_vars)
    g = net.config.G
    assert (g.use_styles, g.use_noise, g.const_input_layer, g.use_pixel_norm,
            g.use_instance_norm, g.use_blur, g.fused_scale) == (False, False, False, True,
                                                                False, False, "false")
    assert (g.mapping_layers, g.mapping_lrmul, g.normalize_latents) == (3, 0.1, False)
    assert (g.style_mixing_prob, g.truncation_cutoff, g.dlatent_avg_beta) == (0.0, 4, 1.0)
    assert "truncation_psi" not in g  # a sampling argument of ours, not a config field


def one_line(excinfo, path, *words):
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, (word, message)


@pytest.fixture
def tiny_parts():
    return our_networks(32, 0)


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path, tiny_parts):
    import os

    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = tiny_parts
    G = official_generator(g_kwargs, g_vars, noise)
    G.state["static_kwargs"]["fmap_base"] = Evil()
    D = official_discriminator(d_kwargs, d_vars)
    path = tmp_path / "evil.pkl"
    path.write_bytes(dumps((G, D, G)))
    with pytest.raises(UnsafePickleError) as e:
        official.load_pickle(path)
    one_line(e, path, "system")
    assert not marker.exists()


def test_build_module_src_is_never_executed(tmp_path, tiny_parts):
    # official_pickles writes a build_module_src that would exit the interpreter if run.
    path = write_pickle(tmp_path / "net.pkl", *tiny_parts)
    assert official.load_pickle(path).Gs


def refusal(tmp_path, tiny_parts, change):
    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = tiny_parts
    G = official_generator(g_kwargs, g_vars, noise)
    Gs = official_generator(g_kwargs, gs_vars, noise, name="Gs")
    D = official_discriminator(d_kwargs, d_vars)
    obj = change(G, D, Gs)
    path = tmp_path / "bad.pkl"
    path.write_bytes(dumps(obj))
    with pytest.raises(ValueError) as e:
        official.load_pickle(path)
    return e, path


def _set(state, **changes):
    state.update(changes)


def _drop_var(net, name):
    net.state["variables"] = [(n, v) for n, v in net.state["variables"] if n != name]


@pytest.mark.parametrize("change,words", [
    (lambda G, D, Gs: (_set(G.state, build_func_name="G_main"), (G, D, Gs))[1],
     ["G_main", "StyleGAN2"]),
    (lambda G, D, Gs: (_set(D.state, build_func_name="D_stylegan2"), (G, D, Gs))[1],
     ["D_stylegan2"]),
    (lambda G, D, Gs: (_set(Gs.state["static_kwargs"], architecture="skip"), (G, D, Gs))[1],
     ["architecture", "Gs"]),
    (lambda G, D, Gs: (_set(D.state["static_kwargs"], nonlinearity="relu"), (G, D, Gs))[1],
     ["nonlinearity='relu'", "D"]),
    (lambda G, D, Gs: (_drop_var(Gs.state["components"]["synthesis"], "4x4/Conv/bias"),
                       (G, D, Gs))[1], ["G_synthesis/4x4/Conv/bias", "lacks"]),
    (lambda G, D, Gs: (D.state["variables"].append(("Extra/weight", np.zeros(2, np.float32))),
                       (G, D, Gs))[1], ["Extra/weight", "unexpected"]),
    (lambda G, D, Gs: (_set(G.state["components"]["mapping"].state, variables=[
        (n, v[:-1] if n == "Dense1/weight" else v)
        for n, v in G.state["components"]["mapping"].state["variables"]]), (G, D, Gs))[1],
     ["G_mapping/Dense1/weight", "shape"]),
    (lambda G, D, Gs: (_set(D.state["static_kwargs"], resolution=64), (G, D, Gs))[1],
     ["resolution"]),
    (lambda G, D, Gs: D, ["one network", "D_basic"]),
    (lambda G, D, Gs: (G, D), ["tuple"]),
    (lambda G, D, Gs: (_set(G.state, version=4), (G, D, Gs))[1], ["network G has state version 4"]),
    (lambda G, D, Gs: (_set(D.state, components=[1]), (G, D, Gs))[1], ["components"]),
    (lambda G, D, Gs: (_set(D.state, variables=[("lod", 0.0, 1)]), (G, D, Gs))[1],
     ["bad variables"]),
])
def test_refusals_are_one_line_naming_file_and_problem(tmp_path, tiny_parts, change, words):
    e, path = refusal(tmp_path, tiny_parts, change)
    one_line(e, path, *words)


def test_truncated_and_non_pickle_files_are_refused(tmp_path, tiny_parts):
    good = write_pickle(tmp_path / "net.pkl", *tiny_parts).read_bytes()
    for name, data in [("truncated.pkl", good[:len(good) // 2]), ("text.pkl", b"hello\n"),
                       ("empty.pkl", b""), ("list.pkl", pickle.dumps([1, 2]))]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as e:
            official.load_pickle(path)
        one_line(e, path)
    with pytest.raises(FileNotFoundError) as e:
        official.load_pickle(tmp_path / "missing.pkl")
    one_line(e, tmp_path / "missing.pkl")


def test_a_single_network_state_round_trips(tmp_path):
    """The stand-in reads a version-2 state without components as a bare Network."""
    net = network("D", "D_basic", {"resolution": 8}, [("lod", np.float32(0))], version=2)
    path = tmp_path / "one.pkl"
    path.write_bytes(dumps(net, protocol=2, numpy_style="old"))
    got = official.read_pickle(path)
    assert (got.name, got.build_func_name, got.static_kwargs) == ("D", "D_basic",
                                                                 {"resolution": 8})
    assert got.components == {} and float(got.variables["lod"]) == 0.0


# ---- sampling an official network ------------------------------------------------------------

@pytest.fixture(scope="module")
def conditional_pkl(tmp_path_factory):
    parts = our_networks(32, 3, seed=5)
    return write_pickle(tmp_path_factory.mktemp("pkl") / "cond.pkl", *parts), parts


@pytest.mark.parametrize("psi", [None, 0.7])
def test_sampling_a_pickle_with_stored_noise_equals_our_generator(conditional_pkl, psi):
    path, (g_kwargs, _, _, gs_vars, _, noise) = conditional_pkl
    model = sg.load(path)
    z = model.z([0, 1, 2])
    got = model.generate(z, noise="stored", psi=psi, class_index=1)
    G = our_generator(g_kwargs)
    labels = np.eye(3, dtype=np.float32)[[1, 1, 1]]
    run = jax.jit(lambda v, z, y, n: G.apply(v, z, y, truncation_psi=psi, noise=n))
    np.testing.assert_allclose(got, run(gs_vars, z, labels, noise), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, model.generate(z, noise=0, psi=psi, class_index=1), atol=1e-3)


@pytest.mark.parametrize("lod, phase", [(1.0, (16, 0.0)), (1.5, (16, 0.5)), (0.21, (32, 0.21))])
def test_a_network_saved_while_growing_samples_at_its_phase(tmp_path, tiny_parts, lod, phase):
    """An official snapshot at lod > 0 renders as the project's own mid-growth checkpoints do:
    at its resolution and fade, nearest-upsampled to the full 32x32 (issue 31)."""
    from stylegan_jax.sampling import at_phase, lod_phase

    g_kwargs, _, _, gs_vars, _, noise = tiny_parts
    path = write_pickle(tmp_path / "growing.pkl", *tiny_parts, lod=lod)
    assert official.load_pickle(path).lod == pytest.approx(lod)
    assert lod_phase(32, lod) == pytest.approx(phase)
    model = sg.load(path)
    z = model.z([0, 1, 2])
    got = model.generate(z, noise="stored")
    G = at_phase(our_generator(g_kwargs), *lod_phase(32, lod))
    expected = jax.jit(lambda v, z, n: G.apply(v, z, noise=n))(gs_vars, z, noise)
    assert got.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    full = jax.jit(lambda v, z, n: our_generator(g_kwargs).apply(v, z, noise=n))(gs_vars, z,
                                                                                 noise)
    assert not np.allclose(got, full, atol=1e-3)  # not the full-resolution rendering


def test_generate_command_writes_the_stored_noise_images(conditional_pkl, tmp_path, capsys):
    from PIL import Image

    from stylegan_jax import cli
    from stylegan_jax.images import to_uint8

    path, _ = conditional_pkl
    cli.main(["generate", "--network", str(path), "--seeds", "3-4", "--psi", "0.7",
              "--class_index", "2", "--stored_noise", "--outdir", str(tmp_path)])
    assert str(path) in capsys.readouterr().out
    model = sg.load(path)
    expected = to_uint8(model.generate(model.z([3, 4]), psi=0.7, noise="stored",
                                       class_index=2))
    for seed, image in zip([3, 4], expected, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"seed{seed:04d}.png")),
                                      image)


def test_figure_command_runs_on_a_pickle(conditional_pkl, tmp_path):
    from stylegan_jax import cli

    path, _ = conditional_pkl
    cli.main(["figure", "--network", str(path), "--kind", "noise", "--seeds", "0",
              "--samples", "4", "--stored_noise", "--class_index", "0",
              "--outdir", str(tmp_path)])
    assert (tmp_path / "noise-components.png").is_file()


def test_generate_refuses_a_single_network_or_missing_stored_noise(tmp_path, tiny_parts):
    from stylegan_jax import cli

    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = tiny_parts
    d_only = tmp_path / "d.pkl"
    d_only.write_bytes(dumps(official_discriminator(d_kwargs, d_vars)))
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--network", str(d_only), "--seeds", "0", "--outdir",
                  str(tmp_path / "out")])
    one_line(e, d_only, "one network")

    g_kwargs, d_kwargs, g_vars, gs_vars, d_vars, noise = our_networks(32, 0, {"use_noise": False})
    g_kwargs["use_noise"] = False
    path = write_pickle(tmp_path / "nonoise.pkl", g_kwargs, d_kwargs, g_vars, gs_vars, d_vars,
                        noise)
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--network", str(path), "--seeds", "0", "--stored_noise",
                  "--outdir", str(tmp_path / "out")])
    assert "no stored noise" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_linear_separability_metric_runs_on_a_pickle(tmp_path, tiny_parts):
    from stylegan_jax.metrics import run as run_lib
    from stylegan_jax.metrics import separability as ls

    path = write_pickle(tmp_path / "net.pkl", *tiny_parts)

    def brightness(images):
        return jax.nn.sigmoid(10 * jnp.mean(images, axis=(1, 2)))

    got = run_lib.run_metrics(load_all(path), ["ls"], classifier=brightness, num_samples=64,
                              batch_size=16)
    G = our_generator(tiny_parts[0])
    expected = ls.linear_separability(G, tiny_parts[3], brightness, num_samples=64,
                                      num_keep=32, batch_size=16)
    assert got == pytest.approx(expected, rel=1e-6)
    assert not list(tmp_path.glob("*.jsonl"))


def test_fid_and_ppl_run_on_a_pickle_as_on_our_generator(tmp_path, tiny_parts, digits_dir,
                                                         pixel_features):
    """``metrics --network FILE.pkl``: FID (against prepared digits) and PPL of the pickle's Gs
    equal those of our Generator with the converted weights (stand-in features and distance)."""
    from stylegan_jax.metrics import registry
    from stylegan_jax.metrics import run as run_lib

    def sq_distance(params, x, y):
        return jnp.mean(jnp.square(x - y), axis=(1, 2, 3)) / 255.0**2

    path = write_pickle(tmp_path / "net.pkl", *tiny_parts)
    options = dict(batch_size=16, seed=5, cache_dir=None)

    def networks():
        return registry.Networks(extractor=pixel_features, distance=(sq_distance, None))

    got = run_lib.run_metrics(load_all(path), ["fid64", "ppl_wend32"], networks=networks(),
                              dataset_name="digits/32", data_dir=digits_dir, **options)
    config = official.load_pickle(path).config  # the reals' shuffle and mirror, as for a run
    reals = registry.RealData(str(digits_dir), "digits/32", config.dataset.mirror_augment,
                              config.seed)
    expected = registry.evaluate(["fid64", "ppl_wend32"], our_generator(tiny_parts[0]),
                                 tiny_parts[3], reals, networks=networks(), **options)
    assert set(got) == {"fid64", "ppl_wend32"} and np.isfinite(got["fid64"])
    assert got == pytest.approx(expected, rel=1e-5)
    assert not list(tmp_path.glob("*.jsonl"))


# ---- fine-tuning: import, then train ---------------------------------------------------------

DIGITS_G = dict(latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2,
                fmap_base=32, fmap_max=8)  # tiny_digits_config's networks


def digits_pickle(path, same_g_and_gs=False):
    parts = list(our_networks(32, 0, DIGITS_G, seed=9, d_extra=dict(fmap_base=32, fmap_max=8)))
    if same_g_and_gs:
        parts[3] = parts[2]
    return write_pickle(path, *parts), parts


def test_import_writes_a_checkpoint_of_g_d_and_gs_with_fresh_adam(tmp_path):
    from stylegan_jax import parallel, training
    from stylegan_jax.checkpoint import Checkpointer, LoopPosition
    from stylegan_jax.runs import checkpoint_items, state_from_items

    path, (_, _, g_vars, gs_vars, d_vars, _) = digits_pickle(tmp_path / "net.pkl")
    nimg, config = runs.import_run(path, tmp_path / "run")
    # The pickle's config has the paper's schedule: from 8x8, two 600+600-kimg phases reach
    # the full-resolution stable phase of a 32x32 network at 2400 kimg.
    assert nimg == 2_400_000 and config.resolution == 32
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    abstract = training.abstract_train_state(config, G, D, optimizer, parallel.make_mesh())
    ckpt = Checkpointer(tmp_path / "run", read_only=True, async_save=False)
    restored, meta = ckpt.restore(nimg, checkpoint_items(abstract))
    ckpt.close()
    state, position = state_from_items(restored), LoopPosition.from_meta(meta)
    assert (position.nimg, position.step, position.tick) == (nimg, 0, 0)
    assert (position.resolution, position.fade, position.phase_key) == (32, 0.0, (0, 0))
    assert_tree_equal(jax.device_get(state.g_params), g_vars["params"])
    assert_tree_equal(jax.device_get(state.g_ema_params), gs_vars["params"])
    assert_tree_equal(jax.device_get(state.d_params), d_vars["params"])
    np.testing.assert_array_equal(state.w_avg, gs_vars["stats"]["w_avg"])
    fresh = optimizer.init(g_vars["params"])
    assert_tree_equal(jax.device_get(state.g_opt), jax.device_get(fresh))
    # Sampling the imported run reads Gs, as sampling the pickle does.
    assert_tree_equal(jax.device_get(sg.load(tmp_path / "run").variables),
                      jax.device_get(sg.load(path).variables))
    with pytest.raises(ValueError, match="already holds a run"):
        runs.import_run(path, tmp_path / "run", resume_kimg=0.5)


def test_import_refuses_a_config_of_other_networks(tmp_path):
    from stylegan_jax.config import paper_config

    path, _ = digits_pickle(tmp_path / "net.pkl")
    with pytest.raises(ValueError) as e:
        runs.import_run(path, tmp_path / "run", paper_config(32))
    one_line(e, path, "config.G.latent_size is 8 in the pickle but 512 now")
    assert not (tmp_path / "run" / "checkpoints").exists() or \
        not list((tmp_path / "run" / "checkpoints").iterdir())


def test_import_command_errors_are_one_line(tmp_path):
    from pathlib import Path

    from stylegan_jax import cli

    path, _ = digits_pickle(tmp_path / "net.pkl")
    other = Path(__file__).parents[1] / "experiments" / "ffhq_256.py"
    for argv, words in [
        (["--pkl", str(path), "--workdir", str(tmp_path / "run"), "--config", str(other)],
         [str(path), "config.resolution is 32 in the pickle but 256 now"]),
        (["--pkl", str(tmp_path / "missing.pkl"), "--workdir", str(tmp_path / "run")],
         ["missing.pkl", "no such network pickle"]),
        (["--pkl", str(path)], ["--workdir DIR are required"]),
    ]:
        with pytest.raises(SystemExit) as e:
            cli.main(["import", *argv])
        message = str(e.value)
        assert message.startswith("stylegan-jax import: error: ") and "\n" not in message, \
            message
        assert all(w in message for w in words), message
    assert not (tmp_path / "run").exists()


def test_network_and_workdir_flags_are_exclusive(tmp_path):
    from stylegan_jax import cli

    with pytest.raises(SystemExit,
                       match="generate: error: give --network or --workdir, not both"):
        cli.main(["generate", "--network", "a.pkl", "--workdir", "b", "--seeds", "0",
                  "--outdir", str(tmp_path)])


def test_import_then_train_starts_from_the_imported_weights(tmp_path, capsys):
    """With learning rates of 1e-30 (positive, as configs must have, but far below the float32
    resolution of the weights, so no weight moves) and G = Gs (so the EMA stands still), the
    first grid the resumed run writes is the imported Gs's output for the grid latents."""
    from PIL import Image
    from tiny_digits import tiny_digits_config

    from stylegan_jax import cli, parallel, training, training_loop
    from stylegan_jax.data.prepare import prepare_dataset
    from stylegan_jax.images import to_uint8
    from stylegan_jax.logs import image_grid

    prepare_dataset("digits", tmp_path / "data")
    config_file = tmp_path / "tiny.py"
    config_file.write_text(
        "from tiny_digits import tiny_digits_config\n\n\ndef get_config():\n"
        f"    config = tiny_digits_config({str(tmp_path / 'data')!r}, total_kimg=0.160)\n"
        "    config.sched.update(dict(G_lrate_base=1e-30, D_lrate_base=1e-30))\n"
        "    return config\n")
    config = tiny_digits_config(tmp_path / "data", total_kimg=0.160)
    config.sched.update(dict(G_lrate_base=1e-30, D_lrate_base=1e-30))
    path, (_, _, _, gs_vars, _, _) = digits_pickle(tmp_path / "net.pkl", same_g_and_gs=True)
    cli.main(["import", "--pkl", str(path), "--workdir", str(tmp_path / "run"),
              "--config", str(config_file)])
    assert "at 0.128 kimg" in capsys.readouterr().out  # 16x16 -> 32x32: one phase of 128 imgs
    training_loop.train(config, tmp_path / "run")

    grids = sorted((tmp_path / "run" / "grids").glob("fakes*.png"))
    assert grids[0].name == "fakes0000000160.png"  # resumed at 128 images, one 32-image tick
    G, _ = build_networks(config)
    grid_fn = training.make_grid_fn(G, parallel.make_mesh())
    z = jax.random.normal(jax.random.key(config.seed + 1), (config.grid_size**2, 8))
    images = grid_fn(gs_vars["params"], gs_vars["stats"]["w_avg"], z, None,
                     jax.random.key(config.seed + 2), 0.0, resolution=32)
    expected = image_grid(to_uint8(jax.device_get(images)), config.grid_size)
    np.testing.assert_array_equal(np.asarray(Image.open(grids[0])), expected)

    # ... and the run resumes like any other.
    config.total_kimg = 0.192
    training_loop.train(config, tmp_path / "run")
    assert (tmp_path / "run" / "grids" / "fakes0000000192.png").is_file()


# ---- linear separability with the official attribute classifiers ------------------------------

def write_classifiers(directory, resolution=16):
    """A D_basic classifier and a D_paper one (no blur, fused resampling everywhere), as the
    official single-network pickles; returns our modules and variables for reference."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for i, (func, ours) in enumerate([("D_basic", dict()),
                                      ("D_paper", dict(use_blur=False, fused_scale=True))]):
        kwargs = dict(resolution=resolution, num_channels=3, label_size=0, fmap_base=64,
                      fmap_max=8)
        D = Discriminator(**kwargs, **ours)
        shapes = jax.eval_shape(D.init, jax.random.key(0),
                                jnp.zeros((1, resolution, resolution, 3)))
        variables = random_like(shapes, 40 + i)
        net = official_discriminator(kwargs, variables, version=2, func=func, name="D")
        (directory / f"celebahq-classifier-0{i}-attr.pkl").write_bytes(
            dumps(net, protocol=2, numpy_style="old"))
        made.append((D, variables))
    return made


def test_official_classifiers_give_the_softmax_of_plus_minus_logit(tmp_path):
    made = write_classifiers(tmp_path / "cls")
    classify = official.attribute_classifier(tmp_path / "cls")
    images = np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 3)).astype(np.float32)
    got = np.asarray(classify(images))
    small = images.reshape(8, 16, 4, 16, 4, 3).mean(axis=(2, 4))  # the official box filter
    for a, (D, variables) in enumerate(made):
        # The official metric runs the classifier on each GPU's minibatch of 4 images, so the
        # minibatch-stddev groups are images 0-3 and 4-7.
        logit = np.concatenate([np.asarray(jax.jit(D.apply)(variables, small[i:i + 4]),
                                           np.float64) for i in (0, 4)])
        expected = np.exp(logit) / (np.exp(logit) + np.exp(-logit))  # softmax([l, -l])[0]
        np.testing.assert_allclose(got[:, a], expected, rtol=1e-5, atol=1e-6)


def test_ls_metric_with_a_classifier_directory_runs_end_to_end(tmp_path, tiny_parts, capsys):
    from stylegan_jax import cli

    write_classifiers(tmp_path / "cls")
    path = write_pickle(tmp_path / "net.pkl", *tiny_parts)
    cli.main(["metrics", "--network", str(path), "--metrics", "ls", "--ls_classifiers",
              str(tmp_path / "cls"), "--num_samples", "64", "--batch_size", "16"])
    out = capsys.readouterr().out
    values = dict(line.split(": ") for line in out.strip().splitlines())
    assert set(values) == {"ls_z", "ls_w"}
    assert all(1.0 <= float(v) <= 4.0 + 1e-6 for v in values.values())  # exp(2 ln 2) at most


@pytest.mark.parametrize("change,words", [
    (lambda net: _set(net.state["static_kwargs"], label_size=2), ["label_size=2"]),
    (lambda net: _set(net.state["static_kwargs"], fused_scale=False), ["fused_scale=False"]),
    (lambda net: _set(net.state, build_func_name="G_style"), ["G_style"]),
])
def test_classifier_refusals(tmp_path, change, words):
    from official_pickles import official_discriminator as export

    kwargs = dict(resolution=8, num_channels=3, label_size=0, fmap_base=64, fmap_max=8)
    D = Discriminator(**kwargs, use_blur=False, fused_scale=True)
    variables = random_like(jax.eval_shape(D.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3))),
                            0)
    net = export(kwargs, variables, func="D_paper")
    change(net)
    path = tmp_path / "celebahq-classifier-00-x.pkl"
    path.write_bytes(dumps(net))
    with pytest.raises(ValueError) as e:
        official.attribute_classifier(tmp_path)
    one_line(e, path, *words)
    with pytest.raises(FileNotFoundError, match="no celebahq-classifier"):
        official.attribute_classifier(tmp_path / "..")


def test_notebook_runs_on_an_official_pickle(tmp_path, tiny_parts, monkeypatch):
    """examples/demo.ipynb top to bottom with an official pickle as its network, including
    the cell that samples STYLEGAN_JAX_OFFICIAL_PKL with the stored noise."""
    import json
    from pathlib import Path

    path = write_pickle(tmp_path / "net.pkl", *tiny_parts)
    notebook = json.loads((Path(__file__).parents[1] / "examples" / "demo.ipynb").read_text())
    code = "\n\n".join("".join(cell["source"]) for cell in notebook["cells"]
                       if cell["cell_type"] == "code")
    monkeypatch.setenv("STYLEGAN_JAX_DEMO_WORKDIR", str(path))
    monkeypatch.setenv("STYLEGAN_JAX_OFFICIAL_PKL", str(path))
    shown = []
    namespace = {"display": shown.append}
    exec(compile(code, "demo.ipynb", "exec"), namespace)
    model = namespace["official"]
    expected = model.generate(model.z(range(4)), psi=0.7, noise="stored")
    assert np.asarray(shown[0]).shape == (32 * 3, 32 * 4 * 3, 3)  # one row of 4, enlarged
    assert np.array_equal(np.asarray(shown[0]),
                          np.asarray(namespace["show"](expected, scale=3)))


def test_python2_style_arrays_load_as_the_official_latin1_reader_does(tmp_path):
    """A protocol-2 array written the Python 2 way (raw bytes as a py2 ``str``, opcode
    SHORT_BINSTRING), which only a latin1 reader decodes, as official ``misc.load_pkl``."""
    import struct

    data = np.array([1.5, -2.0, 3.25], np.float32)  # 1.5 has the non-ASCII byte 0xc0
    raw = data.tobytes()

    def binstring(b):
        return b"U" + bytes([len(b)]) + b

    ops = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
           + binstring(b"b") + b"\x87R"
           + b"(K\x01K\x03\x85cnumpy\ndtype\n" + binstring(b"f4") + b"K\x00K\x01\x87R"
           + b"(K\x03" + binstring(b"<") + b"NNNJ" + struct.pack("<i", -1) + b"J"
           + struct.pack("<i", -1) + b"K\x00tb\x89" + binstring(raw) + b"tb.")
    assert any(op.name == "SHORT_BINSTRING" for op, _, _ in pickletools.genops(ops))
    path = tmp_path / "py2.pkl"
    path.write_bytes(ops)
    np.testing.assert_array_equal(official.read_pickle(path), data)
    with pytest.raises(UnsafePickleError):  # the default ASCII reader cannot
        from stylegan_jax import safe_pickle
        safe_pickle.loads(ops, source=path)
