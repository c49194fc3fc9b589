"""The training loop end to end on the bundled digits: logs, grids, checkpoints, resume after a
clean stop, SIGKILL and SIGTERM, mismatched configs, non-finite runs, other device counts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import parallel, training, training_loop
from stylegan_jax.checkpoint import Checkpointer
from stylegan_jax.models import build_networks

pytestmark = pytest.mark.slow  # real training runs / subprocesses

TOTAL_KIMG = 0.256  # 16 iterations of 16 images: 16x16 stable, fade to 32x32, 32x32 stable

CONFIG_FILE = """
import sys

sys.path.insert(0, {tests_dir!r})
from tiny_digits import tiny_digits_config


def get_config():
    return tiny_digits_config({data_dir!r}, total_kimg={total})
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, digits_dir):
    path = tmp_path_factory.mktemp("loop") / "tiny_digits.py"
    path.write_text(CONFIG_FILE.format(tests_dir=str(Path(__file__).parent),
                                       data_dir=str(digits_dir), total=TOTAL_KIMG))
    return path


def load_config(config_file, **overrides):
    namespace = {}
    exec(compile(config_file.read_text(), str(config_file), "exec"), namespace)
    config = namespace["get_config"]()
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def final_state(workdir, config, mesh=None):
    mesh = mesh or parallel.make_mesh()
    G, D = build_networks(config)
    abstract = training.abstract_train_state(config, G, D, training.make_optimizer(config), mesh)
    ckpt = Checkpointer(workdir)
    try:
        state, meta = ckpt.restore(abstract)
    finally:
        ckpt.close()
    return jax.tree.map(np.asarray, jax.device_get(state)), meta


def assert_same_state(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def straight_run(config_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    config = load_config(config_file)
    training_loop.train(config, workdir)
    return workdir, config, final_state(workdir, config)


def run_cli(config_file, workdir, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "stylegan_jax.cli", "train", "--config", str(config_file),
         "--workdir", str(workdir), *extra], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(workdir, proc, timeout=240):
    deadline = time.time() + timeout
    ckpt_dir = Path(workdir) / "checkpoints"
    while time.time() < deadline:
        if ckpt_dir.exists() and any(p.name.isdigit() for p in ckpt_dir.iterdir()):
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early:\n{proc.stdout.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def test_run_writes_logs_grids_and_checkpoints(straight_run):
    workdir, config, (state, meta) = straight_run
    assert meta["nimg"] == 256 and meta["step"] == 16
    assert meta["pipeline_position"] == 256
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["nimg"] for r in records] == list(range(32, 257, 32))  # a tick per 32 images
    assert {r["progress/resolution"] for r in records} == {16, 32}
    assert all(np.isfinite(r["loss/D"]) and np.isfinite(r["loss/G"]) for r in records)
    assert records[-1]["nonfinite/total"] == 0
    grid = np.asarray(Image.open(workdir / "grids" / "fakes0000000256.png"))
    assert grid.shape == (64, 64, 3) and grid.std() > 0  # 2x2 grid of 32x32 samples
    assert len(list((workdir / "grids").glob("*.png"))) == len(records)
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["total_kimg"] == TOTAL_KIMG and saved["G"]["fmap_base"] == 32
    # latest 3 checkpoints, plus the first of every 128-image interval
    assert Checkpointer(workdir).all_steps() == [32, 128, 192, 224, 256]
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))


def test_clean_stop_then_resume_matches_a_straight_run(config_file, straight_run, tmp_path):
    _, _, (expected, _) = straight_run
    first = load_config(config_file, total_kimg=0.096)  # stops inside the 16 -> 32 fade
    training_loop.train(first, tmp_path)
    assert Checkpointer(tmp_path).latest_step() == 96
    training_loop.train(load_config(config_file), tmp_path)
    state, meta = final_state(tmp_path, load_config(config_file))
    assert meta["nimg"] == 256
    assert_same_state(state, expected)


def test_sigkill_then_resume_matches_a_straight_run(config_file, straight_run, tmp_path):
    _, config, (expected, _) = straight_run
    proc = run_cli(config_file, tmp_path)
    wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = Checkpointer(tmp_path).latest_step()
    assert killed_at is not None
    resumed = run_cli(config_file, tmp_path)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    state, meta = final_state(tmp_path, config)
    assert meta["nimg"] == 256
    assert_same_state(state, expected)


def test_sigterm_saves_a_resumable_checkpoint(config_file, straight_run, tmp_path):
    _, config, (expected, _) = straight_run
    proc = run_cli(config_file, tmp_path, "--config.total_kimg=100")  # would run for long
    wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "stopped by signal" in out
    stopped_at = Checkpointer(tmp_path).latest_step()
    assert stopped_at is not None and stopped_at % 16 == 0
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(records[-1])["nimg"] == stopped_at  # the stop closed a tick and saved
    if stopped_at <= 256:  # the stop came before the straight run's end: finish and compare
        training_loop.train(config, tmp_path)
        assert_same_state(final_state(tmp_path, config)[0], expected)


def test_mismatched_config_fails_clearly_and_keeps_the_checkpoint(config_file, straight_run):
    workdir, _, _ = straight_run
    before = {p.name: p.stat().st_mtime for p in (workdir / "checkpoints").iterdir()}
    config_json = (workdir / "config.json").read_text()
    other = load_config(config_file)
    other.G.fmap_base = 64
    other.resolution = 64
    with pytest.raises(ValueError, match=r"config\.G\.fmap_base is 32 in the checkpoint but 64"):
        training_loop.train(other, workdir)
    with pytest.raises(ValueError, match=r"config\.resolution is 32 in the checkpoint but 64"):
        training_loop.train(other, workdir)
    assert {p.name: p.stat().st_mtime for p in (workdir / "checkpoints").iterdir()} == before
    assert (workdir / "config.json").read_text() == config_json


def test_restore_onto_a_single_device(straight_run):
    workdir, config, (expected, _) = straight_run
    one = parallel.make_mesh(1)
    state, _ = final_state(workdir, config, mesh=one)
    assert_same_state(state, expected)


def test_nonfinite_run_stops_with_a_clear_error(config_file, tmp_path):
    config = load_config(config_file, total_kimg=0.128, max_nonfinite_steps=2)
    config.loss.r1_gamma = float("nan")
    with pytest.raises(training_loop.NonFiniteError, match="consecutive updates"):
        training_loop.train(config, tmp_path)


def test_dataset_resolution_must_match(config_file, tmp_path):
    config = load_config(config_file)
    config.resolution = 64
    with pytest.raises(ValueError, match=r"stores 32x32 images but config.resolution is 64"):
        training_loop.train(config, tmp_path)


def test_periodic_fid_is_logged_and_the_best_checkpoint_kept(config_file, tmp_path,
                                                           pixel_features):
    config = load_config(config_file)
    config.fid.update(dict(every_kimg=0.064, num_images=32, batch_size=16))
    training_loop.train(config, tmp_path, fid_extractor=pixel_features)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    fids = {r["nimg"]: r["metrics/fid"] for r in records if "metrics/fid" in r}
    assert sorted(fids) == [64, 128, 192, 256]
    assert all(np.isfinite(v) and v > 0 for v in fids.values())
    best = min(fids, key=fids.get)
    steps = Checkpointer(tmp_path).all_steps()
    assert best in steps
    dropped = [s for s in fids if s not in steps]
    assert all(fids[s] > fids[best] for s in dropped)
    assert list((tmp_path / "fid_cache").glob("*.npz"))  # real statistics cached


def test_periodic_fid_needs_inception_weights(config_file, tmp_path, monkeypatch):
    from stylegan_jax.metrics.weights import WeightsError

    monkeypatch.delenv("STYLEGAN_JAX_INCEPTION", raising=False)
    config = load_config(config_file)
    config.fid.every_kimg = 0.064
    with pytest.raises(WeightsError, match="Inception"):
        training_loop.train(config, tmp_path)
    assert not (tmp_path / "checkpoints").exists() or not any(
        (tmp_path / "checkpoints").iterdir())
