"""One metrics design: the registry and the driver behind both ``stylegan-jax metrics`` and the
training loop; checkpoints evaluated in float32 at their own resolution and fade."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tiny_digits import tiny_digits_config

import stylegan_jax as sg
from stylegan_jax import cli, parallel, runs, training, training_loop
from stylegan_jax.checkpoint import Checkpointer, LoopPosition
from stylegan_jax.images import to_uint8
from stylegan_jax.layers import upscale2d
from stylegan_jax.metrics import registry
from stylegan_jax.metrics import run as run_lib
from stylegan_jax.models import build_networks
from stylegan_jax.networks import num_style_layers


def load_all(path):
    """A run or pickle's generator on every device, as ``stylegan-jax metrics`` loads it."""
    return sg.load(path, mesh=parallel.make_mesh())


def sq_distance(params, x, y):
    """A cheap stand-in for LPIPS: mean squared difference of [0, 255] images."""
    return jnp.mean(jnp.square(x - y), axis=(1, 2, 3)) / 255.0**2


def save_checkpoint(workdir, config, state, position):
    """A checkpoint of ``state`` as the training loop writes it, at loop ``position``."""
    ckpt = Checkpointer(workdir, async_save=False)
    try:
        ckpt.save(position.nimg, runs.checkpoint_items(state),
                  {"position": position.to_meta(), "config": config.to_dict()})
        ckpt.wait()
    finally:
        ckpt.close()


def fresh_state(config):
    G, D = build_networks(config)
    return training.create_train_state(config, G, D, training.make_optimizer(config),
                                       parallel.make_mesh())


def records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def probe(monkeypatch):
    """A metric registered for the test only: the mean of 16 generated images (it also keeps
    the images it saw)."""
    seen = []

    def fn(ctx, name, n):
        images = ctx.generator.apply(ctx.variables, jnp.ones((n, ctx.generator.latent_size)),
                                     rngs={"noise": jax.random.key(ctx.seed)})
        seen.append(np.asarray(images))
        return {name: float(jnp.mean(images))}, {}

    monkeypatch.setitem(registry.REGISTRY, "probe", registry.Metric("probe", fn, 4))
    return seen


# ---- the registry ------------------------------------------------------------------------

def test_registered_names_and_sample_count_variants():
    assert [m.num_samples for m in registry.check_names(
        ["fid50k", "fid10k", "ppl_zfull", "ppl_wend", "ls"])] == [50000, 10000, 100000,
                                                                  100000, 200000]
    variant = registry.get("ppl_wend20k")
    assert (variant.name, variant.num_samples, variant.needs) == ("ppl_wend20k", 20000,
                                                                   ("lpips",))
    assert registry.get("fid256").num_samples == 256
    assert registry.get("ls").key == "ls_w"
    for bad in ("is50k", "ppl_full", "fid0k", "fidk"):
        with pytest.raises(ValueError, match="unknown metric"):
            registry.get(bad)


def test_defaults_are_what_the_run_can_compute(monkeypatch):
    monkeypatch.delenv("STYLEGAN_JAX_INCEPTION", raising=False)
    monkeypatch.delenv("STYLEGAN_JAX_LPIPS", raising=False)
    ok, skipped = registry.computable(registry.DEFAULT_NAMES, registry.Networks())
    assert ok == [] and set(skipped) == set(registry.DEFAULT_NAMES)
    assert "Inception" in skipped["fid50k"] and "LPIPS" in skipped["ppl_wend"]
    ok, _ = registry.computable(registry.DEFAULT_NAMES, registry.Networks(
        lpips_weights="vgg16.ckpt", classifier=lambda x: x))
    assert ok == ["ppl_zfull", "ppl_wfull", "ppl_zend", "ppl_wend", "ls"]


def test_ppl_crop_choice():
    assert run_lib.ppl_crop("auto", "ffhq/256") and run_lib.ppl_crop("auto", "celebahq/1024")
    assert not run_lib.ppl_crop("auto", "digits/32") and run_lib.ppl_crop("on", "digits/32")
    assert not run_lib.ppl_crop("off", "ffhq/1024")
    with pytest.raises(ValueError, match="ppl_crop"):
        run_lib.ppl_crop("yes", "ffhq")


# ---- checkpoints: float32, their own phase ------------------------------------------------

@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    config = tiny_digits_config(tmp_path_factory.mktemp("nodata"))
    config.seed = 3
    return config


def test_ppl_is_the_same_for_bf16_and_float32_runs(tiny_config, tmp_path, monkeypatch):
    """The same parameters saved by a float32 and a bfloat16 run give the same PPL through the
    API and the CLI; run in bfloat16 they would not."""
    state = fresh_state(tiny_config)
    position = LoopPosition(step=4, nimg=64, tick=2, resolution=32, fade=0.0)
    workdirs = {}
    for dtype in ("float32", "bfloat16"):
        config = tiny_config.copy_and_resolve_references()
        config.compute_dtype = dtype
        workdirs[dtype] = tmp_path / dtype
        save_checkpoint(workdirs[dtype], config, state, position)
    networks = registry.Networks(distance=(sq_distance, None))
    api = {d: run_lib.run_metrics(load_all(w), ["ppl_wend64"], networks=networks, batch_size=16,
                                  cache_dir=None)["ppl_wend64"] for d, w in workdirs.items()}
    assert api["bfloat16"] == api["float32"] and np.isfinite(api["float32"])

    from stylegan_jax.metrics import lpips as lpips_lib  # the CLI loads LPIPS: a stand-in

    monkeypatch.setattr(lpips_lib, "load_lpips", lambda path=None: None)
    monkeypatch.setattr(lpips_lib, "distance_255", sq_distance)
    for workdir in workdirs.values():
        cli.main(["metrics", "--workdir", str(workdir), "--metrics", "ppl_wend64",
                  "--batch_size", "16"])
        assert records(workdir)[-1]["ppl_wend64"] == pytest.approx(api["float32"], rel=1e-6)
        assert records(workdir)[-1]["ppl_crop"] is False  # auto: digits are not faces
    cli.main(["metrics", "--workdir", str(workdir), "--metrics", "ppl_wend64", "--batch_size",
              "16", "--ppl_crop", "on"])
    assert records(workdir)[-1]["ppl_crop"] is True

    from stylegan_jax.metrics import path_length

    G16 = build_networks(tiny_config.copy_and_resolve_references().unlock())[0].clone(
        dtype=jnp.bfloat16)
    run = sg.load(workdirs["bfloat16"])
    in_bf16 = path_length.ppl(G16, run.variables, None, sampling="end", num_samples=64,
                              batch_size=16, distance=sq_distance)
    assert abs(in_bf16 - api["float32"]) > 0.01 * api["float32"]


def test_a_mid_fade_checkpoint_is_evaluated_at_its_phase(tiny_config, tmp_path, probe, caplog):
    """metrics, generate and sg.load give the training grid's images at 16x16 fade 0.5."""
    state = fresh_state(tiny_config)
    position = LoopPosition(step=6, nimg=96, tick=3, phase_key=(16, 1), resolution=16,
                            fade=0.5)
    workdir = tmp_path / "run"
    save_checkpoint(workdir, tiny_config, state, position)
    G = build_networks(tiny_config)[0]
    grid_fn = training.make_grid_fn(G, parallel.make_mesh())

    def grid(z, noise_key):
        images = grid_fn(state.g_ema_params, state.w_avg, z, None, noise_key, 0.5,
                         resolution=16)
        return np.asarray(upscale2d(images, 2))

    # metrics: the driver sees the generator at the checkpoint's phase
    run_lib.run_metrics(load_all(workdir), ["probe"], cache_dir=None, seed=7)
    np.testing.assert_allclose(probe[-1], grid(jnp.ones((4, 8)), jax.random.key(7)),
                               rtol=1e-5, atol=1e-5)
    assert records(workdir)[-1]["probe"] == pytest.approx(float(np.mean(probe[-1])))
    assert "saved at 16x16 fade 0.50" in caplog.text

    # sg.load and generate: the same image as the network at 16x16 fade 0.5, same noise
    model = sg.load(workdir)
    z = model.z([0, 1])
    noise = model.noise(5)
    variables = {"params": state.g_ema_params, "stats": {"w_avg": state.w_avg}}
    expected = upscale2d(G.apply(variables, z, current_resolution=16, fade=0.5,
                                 noise=noise[:num_style_layers(16)]), 2)
    np.testing.assert_allclose(model.generate(z, noise=5), expected, atol=1e-5)
    outdir = tmp_path / "png"
    outdir.mkdir()
    cli.main(["generate", "--workdir", str(workdir), "--seeds", "0-1", "--noise_seed", "5",
              "--outdir", str(outdir)])
    png = np.asarray(Image.open(outdir / "seed0001.png"))
    np.testing.assert_array_equal(png.reshape(to_uint8(np.asarray(expected))[1].shape),
                                  to_uint8(np.asarray(expected))[1])


def test_computed_results_survive_a_failing_later_metric(tiny_config, tmp_path, probe,
                                                         monkeypatch):
    def boom(ctx, name, n):
        raise RuntimeError("out of memory")

    monkeypatch.setitem(registry.REGISTRY, "boom", registry.Metric("boom", boom, 1))
    save_checkpoint(tmp_path, tiny_config, fresh_state(tiny_config),
                    LoopPosition(nimg=32, resolution=32, fade=0.0))
    with pytest.raises(RuntimeError, match="out of memory"):
        run_lib.run_metrics(load_all(tmp_path), ["probe", "boom"], cache_dir=None)
    [record] = records(tmp_path)
    assert record["metric"] == "probe" and record["nimg"] == 32 and record["num_samples"] == 4


# ---- one driver for the CLI and the training loop -----------------------------------------

@pytest.mark.slow  # a short training run: ~15 s with a warm compile cache, ~35 s cold
def test_cli_and_training_loop_share_the_driver_registry_and_real_statistics(
        tmp_path, probe, monkeypatch, digits_dir, pixel_features):
    from stylegan_jax.data import pipeline

    callers = []
    evaluate = registry.evaluate

    def spy(names, *args, **kwargs):
        callers.append(list(names))
        return evaluate(names, *args, **kwargs)

    monkeypatch.setattr(registry, "evaluate", spy)
    config = tiny_digits_config(digits_dir, total_kimg=0.064, lod_initial_resolution=32)
    config.update(dict(metrics=("fid32", "probe"), metrics_every_kimg=0.064,
                       metrics_best="fid32"))
    config.eval.update(dict(batch_size=16, cache_dir=str(tmp_path / "cache")))
    networks = registry.Networks(extractor=pixel_features)
    training_loop.train(config, tmp_path / "run", metric_networks=networks)
    assert callers == [["fid32", "probe"]]
    [trained] = [r for r in records(tmp_path / "run") if "metrics/fid32" in r]
    assert trained["metrics/fid32/num_samples"] == 32
    assert trained["metrics/probe"] == pytest.approx(float(np.mean(probe[-1])))
    cached = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1

    def no_recompute(*args, **kwargs):
        raise AssertionError("real statistics were recomputed instead of read from the cache")

    monkeypatch.setattr(pipeline, "InputPipeline", no_recompute)  # reals are not read again
    results = run_lib.run_metrics(load_all(tmp_path / "run"), ["fid32", "probe"],
                                  networks=registry.Networks(extractor=pixel_features),
                                  cache_dir=tmp_path / "cache", batch_size=16, seed=config.seed)
    assert callers[-1] == ["fid32", "probe"]
    assert results["fid32"] == pytest.approx(trained["metrics/fid32"], rel=1e-5)
    assert results["probe"] == pytest.approx(trained["metrics/probe"], rel=1e-6)
    assert sorted((tmp_path / "cache").glob("*.npz")) == cached
    cli.main(["metrics", "--workdir", str(tmp_path / "run"), "--metrics", "probe"])
    assert callers[-1] == ["probe"]


def test_runs_saved_before_mixing_groups_resume_with_one_group(tiny_config):
    """A checkpoint config without ``G.style_mixing_groups`` was trained with one group: it
    resumes with 1, and a change to 8 is a change of the run's meaning, not of its network."""
    from stylegan_jax.checkpoint import ConfigChangeError, check_resumable

    saved = tiny_config.to_dict()
    del saved["G"]["style_mixing_groups"]
    check_resumable(saved, tiny_config, "old run")  # tiny_config has 1 group
    eight = tiny_config.copy_and_resolve_references()
    eight.G.style_mixing_groups = 8
    with pytest.raises(ConfigChangeError, match="config.G.style_mixing_groups is 1 in the "
                       "checkpoint but 8 now"):
        check_resumable(saved, eight, "old run")
    check_resumable(saved, eight, "old run", allow=["G.style_mixing_groups"])


def test_official_lod_to_phase():
    from stylegan_jax.sampling import lod_phase
    from stylegan_jax.schedule import training_schedule

    config = tiny_digits_config("unused")
    for kimg in (0.0, 0.05, 0.1, 0.15, 0.2):  # stable 16x16, fade-in to 32x32, stable 32x32
        phase = training_schedule(kimg * 1000, config.sched, 32, 1)
        assert lod_phase(32, phase.lod) == (phase.resolution, pytest.approx(phase.fade))
    assert lod_phase(1024, 1.25) == (512, 0.25)
    with pytest.raises(ValueError, match="lod"):
        lod_phase(32, 4.0)


def test_generate_may_sample_in_bfloat16(tiny_config, tmp_path):
    save_checkpoint(tmp_path, tiny_config, fresh_state(tiny_config),
                    LoopPosition(nimg=32, resolution=32, fade=0.0))
    exact, fast = sg.load(tmp_path), sg.load(tmp_path, compute_dtype="bfloat16")
    assert (exact.G.dtype, fast.G.dtype) == (jnp.float32, jnp.bfloat16)
    z = exact.z([0, 1])
    a, b = exact.generate(z), fast.generate(z)
    assert a.dtype == b.dtype == np.float32 and not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=0.1 * np.abs(a).max())
    with pytest.raises(ValueError, match="compute_dtype"):
        sg.load(tmp_path, compute_dtype="float16")


def test_modes_runs_through_the_registry(tiny_config, tmp_path):
    """``modes`` with a count suffix from the CLI entry point: the digit classifier is the run's,
    the value is a mode count of 1,000, and more is better when ranking checkpoints."""
    save_checkpoint(tmp_path, tiny_config, fresh_state(tiny_config),
                    LoopPosition(nimg=32, resolution=32, fade=0.0))
    results = run_lib.run_metrics(load_all(tmp_path), ["modes64"], cache_dir=None, batch_size=16)
    assert set(results) == {"modes", "modes_kl"} and 1 <= results["modes"] <= 64
    assert records(tmp_path)[-1]["num_samples"] == 64
    assert not registry.get("modes").lower_is_better
