"""Sampling from a trained run: ``load``, seeds, truncation, noise, and the ``generate`` CLI,
checked against direct ``Generator.apply`` calls on the checkpoint's variables."""

import jax
import ml_collections
import numpy as np
import pytest
from demo_notebook import run_notebook
from PIL import Image
from tiny_digits import tiny_digits_config

import stylegan_jax as sg
from stylegan_jax import cli, figures, training_loop
from stylegan_jax import generate as generate_module
from stylegan_jax.generate import Model, _compile, parse_seeds, seed_classes, style_layers
from stylegan_jax.images import to_uint8
from stylegan_jax.latents import slerp
from stylegan_jax.networks import noise_shapes
from stylegan_jax.runs import load_run

pytestmark = pytest.mark.slow  # real training runs / subprocesses


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, digits_dir):
    """A 4-iteration 32x32 digits run (8 synthesis layers), checkpoints at 32 and 64 images."""
    root = tmp_path_factory.mktemp("tiny_run")
    config = tiny_digits_config(digits_dir, total_kimg=0.064, lod_initial_resolution=32)
    training_loop.train(config, root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def model(tiny_run):
    return sg.load(tiny_run)


def reference(model, w_plus, noise):
    """Images straight from the Generator module (W+ input, explicit noise), jitted: eager
    ops round differently and the barely trained net's instance norms amplify that."""
    run = jax.jit(lambda v, w, n: model.G.apply(v, w=w, noise=n))
    return np.asarray(run(model.variables, np.asarray(w_plus, np.float32), noise))


def test_load_latest_or_one_checkpoint(tiny_run, model):
    assert model.step == 64 and model.num_layers == 8 and model.resolution == 32
    expected = load_run(tiny_run).variables
    jax.tree.map(np.testing.assert_array_equal, model.variables, expected)
    older = sg.load(tiny_run / "checkpoints" / "32")
    assert older.step == 32
    assert not np.array_equal(older.variables["stats"]["w_avg"],
                              model.variables["stats"]["w_avg"])


def test_seeds_give_the_official_latents_and_identical_images(model):
    assert parse_seeds("0-3,10, 7") == [0, 1, 2, 3, 10, 7]
    np.testing.assert_array_equal(model.z([5])[0],
                                  np.random.RandomState(5).randn(8).astype(np.float32))
    a = model.generate(model.z([3, 7]))
    np.testing.assert_array_equal(a, model.generate(model.z([3, 7])))
    assert a.shape == (2, 32, 32, 3) and not np.allclose(a[0], a[1])
    np.testing.assert_allclose(model.generate(model.z([7])), a[1:], atol=1e-5)
    w = np.asarray(model.G.apply(model.variables, model.z([3, 7]), method=sg.Generator.map))
    np.testing.assert_allclose(reference(model, np.repeat(w[:, None], 8, 1), model.noise(0)), a,
                               atol=1e-5)


def test_truncation(model):
    seeds = [0, 1, 2, 3]
    w = model.map(model.z(seeds))
    untruncated = model.generate(w=w)
    np.testing.assert_allclose(model.generate(w=w, psi=1.0), untruncated, atol=1e-5)
    w_avg = np.asarray(model.variables["stats"]["w_avg"])
    average = reference(model, np.broadcast_to(w_avg, (1, 8, 8)), model.noise(0))
    for image in model.generate(model.z(seeds), psi=0.0, cutoff=8):
        np.testing.assert_allclose(image, average[0], atol=1e-5)
    w_plus = np.repeat(w[:, None], 8, 1)
    w_plus[:, :4] = w_avg + 0.5 * (w_plus[:, :4] - w_avg)  # psi 0.5 on layers 0-3 only
    np.testing.assert_allclose(model.generate(w=w, psi=0.5, cutoff=4),
                               reference(model, w_plus, model.noise(0)), atol=1e-5)


def test_fixed_noise_is_deterministic_and_acts_only_through_noise_inputs(model):
    z = model.z([4])
    keys = jax.random.split(jax.random.key(9), 8)
    for i, (noise, key) in enumerate(zip(model.noise(9), keys, strict=True)):
        size = 2 ** (i // 2 + 2)  # layers 2r-4, 2r-3 run at 2**r
        np.testing.assert_array_equal(noise, jax.random.normal(key, (1, size, size, 1)))
    one = model.generate(z, noise=9)
    np.testing.assert_array_equal(one, model.generate(z, noise=model.noise(9)))
    assert not np.allclose(one, model.generate(z, noise=10), atol=1e-4)
    # with every noise strength set to zero the noise realisation no longer matters
    silent = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 0 if "strength" in jax.tree_util.keystr(path) else x,
        model.variables)
    quiet = [model.G.apply(silent, z, noise=model.noise(s)) for s in (9, 10)]
    np.testing.assert_array_equal(quiet[0], quiet[1])


def test_bad_inputs_give_clear_errors(model):
    for text, message in [("5-2", "end is before the start"), ("x", "bad seed list"),
                          ("1,,2", "bad seed list"), (f"{2**32}", "< 2\\*\\*32")]:
        with pytest.raises(ValueError, match=message):
            parse_seeds(text)
    with pytest.raises(ValueError, match=r"psi 3.0 is outside \[-2.0, 2.0\]"):
        model.generate(model.z([0]), psi=3.0)
    with pytest.raises(ValueError, match=r"cutoff 9 is outside \[0, 8\]"):
        model.generate(model.z([0]), psi=0.5, cutoff=9)
    with pytest.raises(ValueError, match="'fine' styles .* do not exist in this 32x32 model"):
        style_layers("fine", 8)
    with pytest.raises(ValueError, match="layer range '6-9' is outside the model's layers 0-7"):
        style_layers("6-9", 8)
    assert style_layers("coarse", 8) == range(0, 4) and style_layers("middle", 8) == range(4, 8)
    assert style_layers("fine", 18) == range(8, 18) and style_layers("2-5", 8) == range(2, 6)
    with pytest.raises(ValueError, match="unconditional: it takes no class index"):
        model.map(model.z([0]), class_index=1)
    with pytest.raises(ValueError, match="unconditional: it takes no labels"):
        model.map(model.z([0]), labels=np.ones((1, 10), np.float32))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sg.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        sg.load(tmp_path)


def test_generate_command(tiny_run, model, tmp_path):
    cli.main(["generate", "--workdir", str(tiny_run), "--seeds", "2-4", "--psi", "0.7",
              "--cutoff", "6", "--outdir", str(tmp_path), "--batch_size", "2"])
    expected = to_uint8(model.generate(model.z([2, 3, 4]), psi=0.7, cutoff=6))
    for seed, image in zip([2, 3, 4], expected, strict=True):
        written = np.asarray(Image.open(tmp_path / f"seed{seed:04d}.png"))
        assert np.abs(written.astype(int) - image).max() <= 1  # batching may round differently


@pytest.mark.parametrize("args, message", [
    (["--workdir", "{missing}", "--seeds", "0"], "does not exist"),
    (["--workdir", "{empty}", "--seeds", "0"], "no checkpoint"),
    (["--workdir", "{run}", "--seeds", "3-1"], "end is before the start"),
    (["--workdir", "{run}", "--seeds", "0", "--psi", "5"], "psi 5.0 is outside"),
    (["--workdir", "{run}", "--seeds", "0", "--psi", "0.5", "--cutoff", "20"], "cutoff 20"),
    (["--workdir", "{run}", "--seeds", "0", "--class_index", "1"], "unconditional"),
    (["--seeds", "0"], r"--network \(or --workdir\), --seeds and --outdir are required"),
])
def test_generate_command_errors(tiny_run, tmp_path, args, message):
    paths = dict(missing=tmp_path / "missing", empty=tmp_path, run=tiny_run)
    argv = ["generate", *[a.format(**paths) for a in args], "--outdir", str(tmp_path / "o")]
    if "--workdir" not in args:
        argv = argv[:-2]
    with pytest.raises(SystemExit, match=message):
        cli.main(argv)


def w_plus_of(model, seeds):
    w = jax.jit(lambda v, z: model.G.apply(v, z, method=sg.Generator.map))(
        model.variables, model.z(seeds))
    return np.repeat(np.asarray(w)[:, None], model.num_layers, axis=1)


def test_mixing_grid_cells_equal_their_per_layer_w(model):
    rows, cols = [0, 1], [2, 3, 4]
    a, b = w_plus_of(model, rows), w_plus_of(model, cols)
    for spec, layers in [("coarse", [0, 1, 2, 3]), ("2-5", [2, 3, 4, 5])]:
        cells = figures.mixing_figure(model, rows, cols, style_layers(spec, 8))
        assert cells.shape == (3, 4, 32, 32, 3)
        np.testing.assert_array_equal(cells[0, 0], -1.0)
        np.testing.assert_allclose(cells[1:, 0], reference(model, a, model.noise(0)), atol=1e-5)
        np.testing.assert_allclose(cells[0, 1:], reference(model, b, model.noise(0)), atol=1e-5)
        for i in range(2):
            for j in range(3):
                mixed = a[i].copy()
                mixed[layers] = b[j][layers]
                # two differently fused programs: float32 rounding of values up to ~5
                np.testing.assert_allclose(cells[1 + i, 1 + j],
                                           reference(model, mixed[None], model.noise(0))[0],
                                           rtol=1e-5, atol=5e-5)


def test_noise_figures_use_the_stated_noise(model):
    seeds = [0, 1]
    w = w_plus_of(model, seeds)
    full = [jax.random.normal(k, (1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2), 1))
            for i, k in enumerate(jax.random.split(jax.random.key(3), 8))]
    zero = [np.zeros_like(n) for n in full]
    coarse = full[:4] + zero[4:]  # noise_split(8) == 4: 4x4 and 8x8 are coarse here
    fine = zero[:4] + full[4:]
    cells = figures.noise_components_figure(model, seeds, noise=3)
    for column, noise in enumerate([full, zero, coarse, fine]):
        np.testing.assert_allclose(cells[:, column], reference(model, w, noise), rtol=1e-5,
                                   atol=1e-5)
    assert not np.allclose(cells[:, 0], cells[:, 1], atol=1e-4)

    detail = figures.noise_detail_figure(model, [5], samples=4, shown=2)
    samples = np.stack([reference(model, w_plus_of(model, [5]), model.noise(k))[0]
                        for k in range(4)])
    np.testing.assert_allclose(detail[0, :2], samples[:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(detail[0, 2], 4 * samples.std(axis=0) - 1, atol=1e-4)


def test_truncation_figure(model):
    cells = figures.truncation_figure(model, [0, 1, 2])
    assert cells.shape == (3, 6, 32, 32, 3)
    np.testing.assert_allclose(cells[:, 0], model.generate(model.z([0, 1, 2])), atol=1e-5)
    for image in cells[:, 3]:  # psi 0 on all 8 layers: the average image
        np.testing.assert_allclose(image, cells[0, 3], atol=1e-5)


@pytest.mark.parametrize("space", ["w", "z"])
def test_interpolation_passes_through_the_seeds(model, space):
    frames = figures.interpolation_frames(model, [0, 1, 2], steps=3, space=space)
    assert frames.shape == (7, 32, 32, 3)
    ends = reference(model, w_plus_of(model, [0, 1, 2]), model.noise(0))
    np.testing.assert_allclose(frames[[0, 3, 6]], ends, atol=1e-5)
    assert not np.allclose(frames[1], frames[0], atol=1e-4)


def test_figure_command_writes_every_kind(tiny_run, tmp_path):
    run = ["--workdir", str(tiny_run), "--outdir", str(tmp_path), "--seeds", "0-1"]
    cli.main(["figure", "--kind", "mixing", "--col_seeds", "2-4", *run])
    for name in ("coarse", "middle"):
        assert Image.open(tmp_path / f"mixing-{name}.png").size == (4 * 32, 3 * 32)
    cli.main(["figure", "--kind", "noise", "--samples", "4", *run])
    assert Image.open(tmp_path / "noise-detail.png").size == (5 * 32, 2 * 32)
    assert Image.open(tmp_path / "noise-components.png").size == (4 * 32, 2 * 32)
    cli.main(["figure", "--kind", "truncation", "--psis", "1,0", *run])
    assert Image.open(tmp_path / "truncation.png").size == (2 * 32, 2 * 32)
    cli.main(["figure", "--kind", "interpolation", "--steps", "4", "--space", "z", *run])
    assert Image.open(tmp_path / "interpolation-z.gif").n_frames == 5
    assert len(list((tmp_path / "interpolation-z").glob("frame*.png"))) == 5


@pytest.mark.parametrize("args, message", [
    (["--kind", "mixing", "--styles", "fine"], "'fine' styles .* do not exist in this 32x32"),
    (["--kind", "mixing", "--styles", "coarse,0-12"], "layer range '0-12' is outside"),
    (["--kind", "truncation", "--psis", "1,-3"], "psi -3.0 is outside"),
    (["--kind", "truncation", "--psis", "1,x"], "--psis must be numbers"),
    (["--kind", "interpolation", "--seeds", "4"], "at least 2 seeds"),
    (["--kind", "noise", "--seeds", "1-x"], "bad seed list"),
])
def test_figure_command_errors(tiny_run, tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["figure", "--workdir", str(tiny_run), "--outdir", str(tmp_path), *args])
    assert not list(tmp_path.iterdir())


def test_notebook_runs_on_an_unconditional_run(tiny_run, monkeypatch):
    monkeypatch.delenv("STYLEGAN_JAX_LPIPS", raising=False)  # the projection cell: test_demo
    namespace = run_notebook(tiny_run, monkeypatch)  # the demo run's case: test_demo.py
    assert namespace["model"].step == 64 and namespace["images"].shape == (8, 32, 32, 3)


@pytest.fixture(scope="module")
def conditional():
    """A randomly initialised 10-class generator (no training needed to check which label
    each image gets) with a non-zero w_avg, as a Model."""
    G = sg.Generator(resolution=16, label_size=10, latent_size=8, dlatent_size=8,
                     mapping_fmaps=8, mapping_layers=2, fmap_base=32, fmap_max=8)
    variables = G.init(jax.random.key(0), np.zeros((1, 8), np.float32),
                       np.eye(10, dtype=np.float32)[:1])
    variables = {**variables, "stats": {"w_avg": np.full((8,), 0.3, np.float32)}}
    return Model(ml_collections.ConfigDict(), G, variables, 0, *_compile(G))


def labelled_reference(model, seeds, classes, noise=0):
    """Images of ``seeds`` drawn as ``classes``, straight from the Generator module."""
    run = jax.jit(lambda v, z, y, n: model.G.apply(v, z, y, noise=n))
    return np.asarray(run(model.variables, model.z(seeds), np.eye(10, dtype=np.float32)[classes],
                          model.noise(noise)))


def test_conditional_model_without_a_class_draws_seed_mod_classes(conditional):
    model, seeds = conditional, [3, 12, 7, 40]
    assert model.num_classes == 10 and seed_classes(seeds, 10).tolist() == [3, 2, 7, 0]
    own = labelled_reference(model, seeds, [3, 2, 7, 0])
    np.testing.assert_allclose(model.generate(seeds=seeds), own, atol=1e-5)
    np.testing.assert_allclose(model.generate(model.z(seeds), seeds=seeds), own, atol=1e-5)
    # latents without their seeds count as seeds 0, 1, 2, ...: row i is class i % 10
    np.testing.assert_allclose(model.generate(model.z(seeds)),
                               labelled_reference(model, seeds, [0, 1, 2, 3]), atol=1e-5)
    np.testing.assert_allclose(model.generate(seeds=[13]), labelled_reference(model, [13], [3]),
                               atol=1e-5)
    w = jax.jit(lambda v, z, y: model.G.apply(v, z, y, method=sg.Generator.map))(
        model.variables, model.z(seeds), np.eye(10, dtype=np.float32)[[3, 2, 7, 0]])
    np.testing.assert_allclose(model.map(seeds=seeds), w, atol=1e-6)
    assert not np.allclose(own[0], labelled_reference(model, [3], [4])[0], atol=1e-4)


def test_conditional_model_takes_one_class_or_one_per_image(conditional):
    model, seeds = conditional, [3, 12, 7]
    # differently fused float32 programs of pixel values ~1: agreement to rounding, not bits
    np.testing.assert_allclose(model.generate(seeds=seeds, class_index=5),
                               labelled_reference(model, seeds, [5, 5, 5]), atol=5e-5)
    np.testing.assert_allclose(model.generate(model.z(seeds), class_index=[9, 0, 4], psi=1.0),
                               labelled_reference(model, seeds, [9, 0, 4]), atol=5e-5)
    # the config's cutoff (8) covers all 6 layers of this 16x16 model: psi 0 is w_avg throughout
    average = jax.jit(lambda v, w, n: model.G.apply(v, w=w, noise=n))(
        model.variables, np.full((1, 6, 8), 0.3, np.float32), model.noise(0))
    for image in model.generate(seeds=seeds, psi=0.0):
        np.testing.assert_allclose(image, np.asarray(average)[0], atol=5e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(class_index=10), r"class index 10 is outside \[0, 10\) of this conditional model"),
    (dict(class_index=-1), r"class index -1 is outside \[0, 10\)"),
    (dict(class_index=[1, 2]), r"one integer class or one per image \(3\)"),
    (dict(class_index=1.0), "one integer class"),
    (dict(seeds=[1, 2]), "got 2 seeds for 3 latents"),
    (dict(w=np.zeros((3, 8), np.float32), class_index=1), "w already carries its class"),
])
def test_conditional_model_refuses_bad_classes(conditional, kwargs, message):
    z = None if "w" in kwargs else conditional.z([0, 1, 2])
    with pytest.raises(ValueError, match=message):
        conditional.generate(z, **kwargs)
    with pytest.raises(ValueError, match="pass z \\(or seeds\\) or w, not both"):
        conditional.generate(seeds=[0], w=np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="labels replace class_index and seeds"):
        conditional.map(seeds=[0], labels=np.eye(10, dtype=np.float32)[:1])


def test_figures_draw_each_seeds_class(conditional):
    model = conditional
    cells = figures.mixing_figure(model, [0, 11], [2, 3], style_layers("coarse", 6))
    np.testing.assert_allclose(cells[1:, 0], labelled_reference(model, [0, 11], [0, 1]),
                               atol=1e-5)
    np.testing.assert_allclose(cells[0, 1:], labelled_reference(model, [2, 3], [2, 3]),
                               atol=1e-5)
    truncation = figures.truncation_figure(model, [4, 15], psis=[1.0], class_index=8)
    np.testing.assert_allclose(truncation[:, 0], labelled_reference(model, [4, 15], [8, 8]),
                               atol=1e-5)
    for space in ("w", "z"):  # the path passes through each seed's image in its own class
        frames = figures.interpolation_frames(model, [1, 12, 5], steps=2, space=space)
        np.testing.assert_allclose(frames[[0, 2, 4]],
                                   labelled_reference(model, [1, 12, 5], [1, 2, 5]), atol=1e-5)
    # in Z the labels are lerped with the latents: halfway between seeds 1 and 12 (z here is
    # float64, the figure's float32, hence atol 1e-4 on values of ~5)
    a, b = model.z([1, 12])
    z = (slerp(a, b, 0.5) * (np.linalg.norm(a) + np.linalg.norm(b)) / 2)[None]
    half = jax.jit(lambda v, z, y, n: model.G.apply(v, z, y, noise=n))(
        model.variables, z, np.eye(10, dtype=np.float32)[[1]] * 0.5
        + np.eye(10, dtype=np.float32)[[2]] * 0.5, model.noise(0))
    np.testing.assert_allclose(frames[1], np.asarray(half)[0], atol=1e-4)


def test_generate_and_figure_commands_on_a_conditional_model(conditional, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.setattr(generate_module, "load", lambda workdir, step=None, **kwargs: conditional)
    cli.main(["generate", "--workdir", "run", "--seeds", "9-11", "--outdir", str(tmp_path)])
    cli.main(["generate", "--workdir", "run", "--seeds", "9-11", "--class_index", "4",
              "--outdir", str(tmp_path / "four")])
    for outdir, classes in [(tmp_path, [9, 0, 1]), (tmp_path / "four", [4, 4, 4])]:
        expected = to_uint8(labelled_reference(conditional, [9, 10, 11], classes))
        for seed, image in zip([9, 10, 11], expected, strict=True):
            written = np.asarray(Image.open(outdir / f"seed{seed:04d}.png")).astype(int)
            assert np.abs(written - image).max() <= 1
    cli.main(["figure", "--workdir", "run", "--kind", "truncation", "--psis", "1", "--seeds",
              "0-1", "--outdir", str(tmp_path / "fig")])
    rule = "conditional model without --class_index: seed s is drawn as class s % 10"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"stylegan-jax generate: {rule}", f"stylegan-jax figure: {rule}"]
    bad = ["--workdir", "run", "--seeds", "0-1", "--class_index", "10", "--outdir",
           str(tmp_path / "bad")]
    for argv in (["generate", *bad], ["figure", "--kind", "noise", *bad]):
        with pytest.raises(SystemExit, match=r"class index 10 is outside \[0, 10\)"):
            cli.main(argv)
    assert not (tmp_path / "bad").exists()


def test_generate_prints_only_its_result(tiny_run, tmp_path, capfd):
    """No absl/Orbax warnings about the read-only checkpoint manager."""
    capfd.readouterr()
    cli.main(["generate", "--workdir", str(tiny_run), "--seeds", "0-1", "--outdir",
              str(tmp_path)])
    out, err = capfd.readouterr()
    assert out == f"Wrote 2 images of checkpoint 64 to {tmp_path}\n"
    assert err == ""


# ---- editing: mixing and moving given w (projections) ------------------------------------

def test_mixing_cells_take_each_rows_own_noise(model):
    rng = np.random.default_rng(0)
    a = figures.Sources(w_plus_of(model, [0, 1]),
                        [rng.standard_normal((2, *s[1:])).astype(np.float32)
                         for s in noise_shapes(32)])
    b = figures.seed_sources(model, [2, 3, 4], noise=1)
    cells = figures.mixing_cells(model, a, b, style_layers("coarse", 8))
    assert cells.shape == (3, 4, 32, 32, 3)
    for i in range(2):
        own = [n[i:i + 1] for n in a.noise]
        np.testing.assert_allclose(cells[1 + i, 0], reference(model, a.w[i:i + 1], own)[0],
                                   rtol=1e-5, atol=5e-5)
        mixed = a.w[i].copy()
        mixed[:4] = b.w[2][:4]
        np.testing.assert_allclose(cells[1 + i, 3], reference(model, mixed[None], own)[0],
                                   rtol=1e-5, atol=5e-5)
    np.testing.assert_allclose(cells[0, 1:], reference(model, b.w, model.noise(1)),
                               rtol=1e-5, atol=5e-5)


def test_edit_cells_move_w_along_the_direction(model):
    src = figures.seed_sources(model, [0, 1], noise=2)
    direction = np.random.default_rng(1).standard_normal(model.G.dlatent_size)
    cells = figures.edit_cells(model, src, direction, [-1.0, 0.0, 2.5], layers=range(2, 6))
    assert cells.shape == (2, 3, 32, 32, 3)
    np.testing.assert_allclose(cells[:, 1], reference(model, src.w, model.noise(2)),
                               rtol=1e-5, atol=5e-5)
    moved = src.w.copy()
    moved[:, 2:6] += 2.5 * direction
    np.testing.assert_allclose(cells[:, 2], reference(model, moved, model.noise(2)),
                               rtol=1e-5, atol=5e-5)
    with pytest.raises(ValueError, match="direction has shape"):
        figures.edit_cells(model, src, direction[:3], [1.0])


def test_directions_project_and_edit_commands(tiny_run, model, tmp_path, capsys):
    """The path of the README's editing section on a digits run: directions from the digit
    attributes, a projection, then mixing and edit figures from it."""
    from random_lpips import random_lpips_params, write_lpips_npz

    lpips_file = write_lpips_npz(tmp_path / "vgg16.npz", random_lpips_params())
    cli.main(["directions", "--workdir", str(tiny_run), "--num_samples", "64", "--outdir",
              str(tmp_path / "dirs")])
    assert "Wrote 10 directions (digit0, digit1" in capsys.readouterr().out
    d3 = np.load(tmp_path / "dirs" / "digit3.npy")
    assert d3.shape == (model.G.dlatent_size,) and d3.dtype == np.float32
    for seed in (5, 6):
        Image.fromarray(to_uint8(model.generate(seeds=[seed]))[0]).save(tmp_path / f"t{seed}.png")
    cli.main(["project", "--workdir", str(tiny_run), "--target", str(tmp_path / "t*.png"),
              "--steps", "4", "--lpips_weights", str(lpips_file), "--space", "w+",
              "--outdir", str(tmp_path / "proj")])
    run = ["figure", "--workdir", str(tiny_run), "--outdir", str(tmp_path / "figs")]
    cli.main([*run, "--kind", "edit", "--rows_from", str(tmp_path / "proj"), "--direction",
              str(tmp_path / "dirs" / "digit3.npy"), "--amounts", "-1,0,1"])
    assert Image.open(tmp_path / "figs" / "edit-digit3.png").size == (3 * 32, 2 * 32)
    cli.main([*run, "--kind", "mixing", "--rows_from", str(tmp_path / "proj"),
              "--cols_from", str(tmp_path / "proj"), "--styles", "coarse"])
    assert Image.open(tmp_path / "figs" / "mixing-coarse.png").size == (3 * 32, 3 * 32)
    with pytest.raises(SystemExit, match="a direction must be"):
        np.save(tmp_path / "bad.npy", np.zeros(3))
        cli.main([*run, "--kind", "edit", "--direction", str(tmp_path / "bad.npy")])
