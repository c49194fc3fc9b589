"""Projection into W and W+: the recipe's schedule and regulariser against closed forms, and
self-consistency, batch and device invariance on a tiny random generator with the LPIPS
heads the ``lpips`` wheel ships on a random VGG16 trunk (no downloaded weights)."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
from random_lpips import random_lpips_params, write_lpips_npz

import stylegan_jax as sg
from stylegan_jax import cli, parallel, projection
from stylegan_jax.data.images import read_target
from stylegan_jax.generate import from_variables
from stylegan_jax.images import to_uint8
from stylegan_jax.networks import Generator
from stylegan_jax.projector import load_projected

TINY = dict(latent_size=16, dlatent_size=16, mapping_fmaps=16, mapping_layers=2, fmap_base=64,
            fmap_max=16)


@pytest.fixture(scope="module")
def lpips_params():
    return random_lpips_params()


def tiny_model(label_size=0):
    G = Generator(resolution=16, label_size=label_size, **TINY)
    labels = np.eye(label_size, dtype=np.float32)[:1] if label_size else None
    variables = G.init(jax.random.key(0), np.zeros((1, 16), np.float32), labels)
    return from_variables(ml_collections.ConfigDict(), G, variables)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_learning_rate_at_known_steps():
    """0.1 x linear ramp-up over 5% x half-cosine ramp-down over the last 25% of 1000 steps."""
    steps = np.array([0, 25, 50, 500, 750, 900, 1000]) / 1000
    np.testing.assert_allclose(projection.learning_rate(steps),
                               [0, 0.05, 0.1, 0.1, 0.1, 0.03454915, 0], atol=1e-7)


def test_w_noise_fades_quadratically_over_three_quarters():
    scale = projection.w_noise_scale(np.array([0, 0.375, 0.75, 0.9]), 2.0)
    np.testing.assert_allclose(scale, [0.1, 0.025, 0, 0], atol=1e-7)


def test_noise_regularizer_on_known_arrays():
    """A checkerboard correlates -1 with both shifts (1 + 1) and pools to zero; a constant
    correlates 1 at every pyramid level down to 8x8 (16: two levels; 32: three)."""
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    checker = ((-1.0) ** (i + j))[None, :, :, None]
    ones16, ones32, ones4 = (np.ones((1, s, s, 1)) for s in (16, 32, 4))
    stripes = ((-1.0) ** j)[None, :, :, None]  # -1 along W, +1 along H
    reg = projection.noise_regularizer
    np.testing.assert_allclose(reg([checker]), [2.0], atol=1e-6)
    np.testing.assert_allclose(reg([ones16]), [4.0], atol=1e-6)
    np.testing.assert_allclose(reg([ones32]), [6.0], atol=1e-6)
    np.testing.assert_allclose(reg([ones4]), [2.0], atol=1e-6)
    np.testing.assert_allclose(reg([stripes]), [2.0], atol=1e-6)
    np.testing.assert_allclose(reg([checker, ones16]), [6.0], atol=1e-6)
    both = np.concatenate([checker, ones16])  # per target
    np.testing.assert_allclose(reg([both]), [2.0, 4.0], atol=1e-6)
    white = np.random.default_rng(0).standard_normal((1, 256, 256, 1))
    assert float(reg([white])[0]) < 1e-3


def test_normalize_noise_per_target():
    rng = np.random.default_rng(0)
    n = rng.normal(3.0, 5.0, (2, 8, 8, 1)) * np.array([1.0, 0.1])[:, None, None, None]
    out = np.asarray(projection.normalize_noise([jnp.asarray(n, jnp.float32)])[0])
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose((out**2).mean(axis=(1, 2, 3)), 1, atol=1e-5)
    expect = (n - n.mean(axis=(1, 2, 3), keepdims=True)) / n.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, expect, atol=1e-5)


def test_w_statistics_are_the_mean_and_spread_of_mapped_z(model):
    w_avg, w_std = projection.w_statistics(model, num_samples=500, seed=123)
    z = np.random.RandomState(123).randn(500, 16)
    w = model.map(z).astype(np.float64)
    np.testing.assert_allclose(w_avg[0], w.mean(0), rtol=1e-5, atol=1e-6)
    # sqrt(sum |w - w_avg|^2 / N): the per-dimension variances summed, not averaged
    np.testing.assert_allclose(w_std[0], np.sqrt(w.var(0).sum()), rtol=1e-5)


@pytest.fixture(scope="module")
def known(model):
    """Images the model makes from known w (with their noise): projection must find them."""
    w = model.map(seeds=[1, 2, 3])
    return w, model.generate(w=w, noise=model.noise(5))


@pytest.mark.parametrize("space, steps, max_lpips, min_psnr, gain", [
    ("w", 150, 1e-3, 28.0, 100),
    ("w+", 150, 0.03, 15.0, 5),  # W+ has 8x the unknowns: slower to converge
])
def test_projects_the_models_own_images_back(model, known, lpips_params, space, steps,
                                             max_lpips, min_psnr, gain):
    _, targets = known
    result = projection.project(model, targets, lpips_params, space=space, steps=steps,
                                w_avg_samples=1000, mesh=parallel.make_mesh(1))
    shape = (3, 16) if space == "w" else (3, model.num_layers, 16)
    assert result.w.shape == shape and result.space == space and result.steps == steps
    assert result.lpips.max() < max_lpips, result.lpips
    assert result.psnr.min() > min_psnr, result.psnr
    assert (result.lpips < result.start_lpips / gain).all(), (result.lpips, result.start_lpips)
    again = to_uint8(model.generate(w=result.w, noise=result.noise))
    np.testing.assert_array_equal(again, result.images)


def test_a_target_batched_on_8_devices_equals_it_alone_on_one(model, known, lpips_params):
    """7 targets (padded to 8) over 8 simulated devices vs each one alone on one device
    (batches of 1): the same random numbers, the same result to float32 rounding. Four steps:
    the sharded and the one-device programs differ in the last bit (XLA fuses them apart), and
    Adam's sign-like steps amplify that where a gradient is near zero (jax 0.10.2 on the CPU:
    1e-7 after 2 steps, 1e-6 after 4, 1e-2 after 12). A wrong random stream, or a target mixed
    with its neighbours, is off by far more from the first step. (Batches of several targets on
    one device are yet another program, whose rounding Adam amplifies the same way.)"""
    _, targets = known
    batch = np.concatenate([targets, model.generate(seeds=[7, 8, 9, 10], noise=2)])
    kw = dict(steps=4, w_avg_samples=200, seed=3)
    together = projection.project(model, batch, lpips_params, mesh=parallel.make_mesh(8), **kw)
    alone = projection.project(model, batch, lpips_params, batch_size=1,
                               mesh=parallel.make_mesh(1), **kw)
    assert together.w.shape == (7, 16) and len(together.lpips) == 7
    np.testing.assert_allclose(together.w, alone.w, rtol=1e-5, atol=1e-5)
    for a, b in zip(together.noise, alone.noise, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(together.lpips, alone.lpips, rtol=1e-4, atol=1e-7)
    assert np.abs(together.w[0] - together.w[3]).max() > 1e-3  # targets differ


def test_frozen_noise_mse_and_progress(model, known, lpips_params):
    _, targets = known
    seen = []
    result = projection.project(model, targets[:2], lpips_params, steps=10, w_avg_samples=200,
                                optimize_noise=False, mse_weight=1.0, callback=seen.append,
                                callback_every=4, mesh=parallel.make_mesh(1))
    assert [(p.step, p.steps, p.batch) for p in seen] == [(4, 10, slice(0, 2)),
                                                         (8, 10, slice(0, 2)),
                                                         (10, 10, slice(0, 2))]
    assert seen[-1].loss.shape == (2,) and seen[-1].w.shape == (2, 16)
    # frozen: the initial draw, unnormalised (layer 3 is 8x8), the same for both targets
    init = jax.random.split(jax.random.split(jax.random.key(0))[0], model.num_layers)
    for target in range(2):
        np.testing.assert_allclose(result.noise[3][target],
                                   jax.random.normal(init[3], (8, 8, 1)), rtol=1e-6)


def test_conditional_targets_start_from_their_class_mean(lpips_params):
    model = tiny_model(label_size=3)
    targets = model.generate(seeds=[0, 1], class_index=[2, 0])
    w_avg, _ = projection.w_statistics(model, [2, 0, None], num_samples=300)
    z = np.random.RandomState(123).randn(300, 16)
    np.testing.assert_allclose(w_avg[0], model.map(z, class_index=2).mean(0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(w_avg[2], model.map(z, seeds=range(300)).mean(0), rtol=1e-5,
                               atol=1e-6)
    result = projection.project(model, targets, lpips_params, classes=[2, 0], steps=1,
                                w_avg_samples=300, learning_rate=0.0,
                                mesh=parallel.make_mesh(1))
    np.testing.assert_allclose(result.w, w_avg[:2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(targets=np.zeros((1, 32, 32, 3))), r"\[N, 16, 16, 3\] images for this 16x16 model"),
    (dict(targets=np.zeros((1, 16, 16, 1))), r"with 3 channels, got \[1, 16, 16, 1\]"),
    (dict(targets=np.zeros((0, 16, 16, 3))), "no targets"),
    (dict(space="z"), "space must be one of"),
    (dict(classes=[1]), "unconditional"),
    (dict(classes=[None, None]), "2 classes for 1 targets"),
])
def test_bad_arguments(model, lpips_params, kwargs, message):
    kwargs = {"targets": np.zeros((1, 16, 16, 3), np.uint8), **kwargs}
    with pytest.raises(ValueError, match=message):
        projection.project(model, kwargs.pop("targets"), lpips_params, steps=1, **kwargs)


# ---- the project command -----------------------------------------------------------------

@pytest.fixture(scope="module")
def pkl(tmp_path_factory):
    """An official-format pickle (a 3-class 32x32 network, random weights)."""
    from test_official import our_networks, write_pickle

    return write_pickle(tmp_path_factory.mktemp("pkl") / "cond.pkl", *our_networks(32, 3, seed=5))


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory, lpips_params):
    return write_lpips_npz(tmp_path_factory.mktemp("lpips") / "vgg16.npz", lpips_params)


def test_project_command_on_an_official_pickle(pkl, lpips_file, tmp_path, capsys):
    model = sg.load(pkl)
    images = to_uint8(model.generate(seeds=[0, 1], class_index=1))
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(images[0]).save(tmp_path / "in" / "a.png")
    Image.fromarray(images[1]).resize((40, 48)).save(tmp_path / "in" / "sub" / "b.jpg")
    Image.fromarray(images[1]).save(tmp_path / "in" / "sub" / "a.png")  # a second "a"
    out = tmp_path / "out"
    cli.main(["project", "--network", str(pkl), "--target", str(tmp_path / "in"), "--outdir",
              str(out), "--steps", "20", "--class_index", "1", "--lpips_weights",
              str(lpips_file), "--gif_every", "10", "--batch", "2"])
    assert "Projected 3 images into W (20 steps" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "projections.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == ["a", "a-2", "b"]
    assert [r["target"] for r in rows] == [str(tmp_path / "in" / p)
                                           for p in ("a.png", "sub/a.png", "sub/b.jpg")]
    for row in rows:
        assert row["steps"] == 20 and row["space"] == "w" and row["class"] == 1
        assert row["lpips"] < row["start_lpips"] and row["psnr"] > 0
        where = out / row["name"]
        w, noise = load_projected(where / "projected_w.npz")
        assert w.shape == (1, model.G.dlatent_size)
        proj = np.asarray(Image.open(where / "proj.png"))
        np.testing.assert_array_equal(to_uint8(model.generate(w=w, noise=noise))[0], proj)
        target = read_target(row["target"], 32, 3)
        np.testing.assert_array_equal(np.asarray(Image.open(where / "target.png")), target)
        assert Image.open(where / "proj.gif").n_frames == 2
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a" / "target.png")), images[0])


def test_project_command_errors(pkl, lpips_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STYLEGAN_JAX_LPIPS", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "notarun").mkdir()
    base = ["project", "--network", str(pkl), "--outdir", str(tmp_path / "out"),
            "--lpips_weights", str(lpips_file), "--steps", "1"]
    cases = [
        (["--target", str(tmp_path / "empty")], f"{tmp_path / 'empty'}: no "),
        (["--target", str(tmp_path / "*.gif")], "*.gif: no "),
        (["--target", str(tmp_path / "bad.png")], f"{tmp_path / 'bad.png'}: not an image"),
        (["--target", str(tmp_path / "grey.png")],
         f"{tmp_path / 'grey.png'}: a greyscale image, but the model makes RGB"),
        (["--target", str(tmp_path / "ok.png"), "--class_index", "7"],
         "class index 7 is outside [0, 3)"),
        (["--target", str(tmp_path / "ok.png"), "--network", str(tmp_path / "notarun")],
         str(tmp_path / "notarun")),
    ]
    for extra, words in cases:
        with pytest.raises(SystemExit) as e:
            cli.main(base + extra)
        err = capsys.readouterr().err.strip()
        assert e.value.code in (2, 3) and len(err.splitlines()) == 1, err
        assert words in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        cli.main(["project", "--network", str(pkl), "--outdir", str(tmp_path / "out"),
                  "--target", str(tmp_path / "ok.png")])
    assert "LPIPS VGG16 weights: no file given" in capsys.readouterr().err
    assert not (tmp_path / "out" / "projections.jsonl").exists()


def test_project_progress_counts_finished_steps_only(model, lpips_params, tmp_path,
                                                     monkeypatch):
    """With a slow step (the chunk's loss arrives late), the bar never counts steps that have
    not finished, and it shows the current mean loss."""
    import time

    from stylegan_jax import projector

    finished = [0]
    seen = []

    class SlowLoss:
        def __init__(self, value, done):
            self.value, self.done = value, done

        def __array__(self, dtype=None, copy=None):
            time.sleep(0.05)
            finished[0] = self.done
            return np.asarray(self.value, dtype)

    real = projection.programs

    def slow_programs(model, recipe, mesh):
        start, run, evaluate = real(model, recipe, mesh)

        def slow_run(*args, length):
            params, opt_state, loss = run(*args, length=length)
            return params, opt_state, SlowLoss(loss, args[9] + length)  # args[9]: first step

        return start, slow_run, evaluate

    class Bar:
        def __init__(self, total, desc):
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n
            seen.append((self.n, 2 * finished[0]))  # two targets

        def set_postfix(self, **values):
            seen.append(values)

    monkeypatch.setattr(projection, "programs", slow_programs)
    monkeypatch.setattr(projector.progress, "bar", Bar)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"t{i}.png")
        Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(paths[-1])
    projector.project_files(model, paths, lpips_params, tmp_path / "out", steps=20,
                            w_avg_samples=100, batch_size=2)
    counts = [s for s in seen if isinstance(s, tuple)]
    assert counts and counts[-1][0] == 40
    assert all(counted <= done for counted, done in counts)
    assert all(float(s["loss"]) >= 0 for s in seen if isinstance(s, dict))
