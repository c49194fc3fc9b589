"""The training loop end to end on the bundled digits: logs, grids, checkpoints, resume after a
clean stop, SIGKILL and SIGTERM, mismatched configs, non-finite runs, other device counts."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import parallel, runs, training, training_loop
from stylegan_jax.checkpoint import (
    Checkpointer,
    CheckpointError,
    ConfigChangeError,
    WorkdirLock,
    WorkdirLockedError,
)
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


def final_state(workdir, config, mesh=None, step=None):
    mesh = mesh or parallel.make_mesh()
    G, D = build_networks(config)
    abstract = training.abstract_train_state(config, G, D, training.make_optimizer(config), mesh)
    ckpt = Checkpointer(workdir)
    try:
        items, meta = ckpt.restore(step or ckpt.latest_step(),
                                   runs.checkpoint_items(abstract))
    finally:
        ckpt.close()
    state = runs.state_from_items(items)
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
    assert meta["position"] == {"step": 16, "nimg": 256, "tick": 8, "phase_key": [0, 0],
                                "resolution": 32, "fade": 0.0}
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
    assert meta["position"]["nimg"] == 256
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
    assert meta["position"]["nimg"] == 256
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
    with pytest.raises(training_loop.NonFiniteError, match="consecutive updates had non-finite "
                       "gradients .* no finite checkpoint has been saved"):
        training_loop.train(config, tmp_path)
    assert Checkpointer(tmp_path).all_steps() == []  # every tick was non-finite


def test_dataset_resolution_must_match(config_file, tmp_path):
    config = load_config(config_file)
    config.resolution = 64
    with pytest.raises(ValueError, match=r"stores 32x32 images but config.resolution is 64"):
        training_loop.train(config, tmp_path)


def test_periodic_fid_is_logged_and_the_best_checkpoint_kept(config_file, tmp_path,
                                                           pixel_features):
    from stylegan_jax.metrics.registry import Networks

    config = load_config(config_file)
    config.update(dict(metrics=("fid32",), metrics_every_kimg=0.064))
    config.eval.update(dict(batch_size=16, cache_dir=str(tmp_path / "fid_cache")))
    training_loop.train(config, tmp_path / "run",
                        metric_networks=Networks(extractor=pixel_features))
    records = [json.loads(line)
               for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    fids = {r["nimg"]: r["metrics/fid32"] for r in records if "metrics/fid32" in r}
    assert sorted(fids) == [64, 128, 192, 256]
    assert all(np.isfinite(v) and v > 0 for v in fids.values())
    best = min(fids, key=fids.get)
    steps = Checkpointer(tmp_path / "run").all_steps()
    assert best in steps
    dropped = [s for s in fids if s not in steps]
    assert all(fids[s] > fids[best] for s in dropped)
    assert list((tmp_path / "fid_cache").glob("*.npz"))  # real statistics cached


def test_periodic_fid_needs_inception_weights(config_file, tmp_path, monkeypatch):
    from stylegan_jax.metrics.weights import WeightsError

    monkeypatch.delenv("STYLEGAN_JAX_INCEPTION", raising=False)
    config = load_config(config_file)
    config.update(dict(metrics=("fid50k",), metrics_every_kimg=0.064))
    with pytest.raises(WeightsError, match="Inception"):
        training_loop.train(config, tmp_path)
    assert not (tmp_path / "checkpoints").exists() or not any(
        (tmp_path / "checkpoints").iterdir())


# ---- checkpoints that must survive: non-finite runs, corruption, a second process ----------

def copy_run(src, dst, keep_up_to, keep_from=0):
    """A copy of a run's workdir with only the checkpoints from ``keep_from`` to
    ``keep_up_to`` images."""
    shutil.copytree(src, dst)
    for p in (dst / "checkpoints").iterdir():
        if not keep_from <= int(p.name) <= keep_up_to:
            shutil.rmtree(p)
    return dst


def test_nonfinite_ticks_never_push_out_the_last_finite_checkpoint(config_file, straight_run,
                                                                  tmp_path, caplog):
    workdir = copy_run(straight_run[0], tmp_path / "run", 256, keep_from=224)
    # Resumed with an exploding learning rate and a retention that keeps the latest checkpoint
    # (and 224, the first of its snapshot interval): every tick from 256 images on is
    # non-finite, none may replace the finite one at 256.
    config = load_config(config_file, total_kimg=0.384, keep_checkpoints=1, snapshot_kimg=1000.0,
                         max_nonfinite_steps=4)
    config.sched.G_lrate_base = config.sched.D_lrate_base = 1e30
    with pytest.raises(training_loop.NonFiniteError) as error:
        training_loop.train(config, workdir, allow_config_change=["sched.G_lrate_base",
                                                                  "sched.D_lrate_base"])
    assert Checkpointer(workdir).all_steps() == [224, 256]
    assert f"the last finite checkpoint is 0.256 kimg, {workdir.absolute()}/checkpoints/256" \
        in str(error.value)
    assert "no checkpoint at 0.288 kimg: this tick had non-finite losses" in caplog.text


def test_a_fresh_run_that_diverges_keeps_and_names_its_last_finite_checkpoint(config_file,
                                                                              tmp_path):
    # The learning rate ramps up from 0 to an exploding 1e30: the first tick (at lr 0) is
    # finite and saved, every later one is not.
    config = load_config(config_file, keep_checkpoints=1, max_nonfinite_steps=4)
    config.sched.update(dict(G_lrate_base=1e30, D_lrate_base=1e30, lrate_rampup_kimg=0.064))
    with pytest.raises(training_loop.NonFiniteError) as error:
        training_loop.train(config, tmp_path)
    assert Checkpointer(tmp_path).all_steps() == [32]
    assert f"the last finite checkpoint is 0.032 kimg, {tmp_path.absolute()}/checkpoints/32" \
        in str(error.value)


def corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_garble(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 64] = np.random.default_rng(0).bytes(64)
    path.write_bytes(bytes(data))


def corrupt_bitflip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def array_data_files(checkpoint):
    """The files that hold the train state's arrays (compressed OCDBT chunks and b-tree
    nodes, some of which are superseded ones no read touches: each one is damaged)."""
    return sorted(p for p in (checkpoint / "state").glob("**/d/*") if p.is_file())


def metadata_file(checkpoint):
    return [checkpoint / "meta" / "metadata"]


@pytest.mark.parametrize("damage, targets", [
    (corrupt_truncate, array_data_files), (corrupt_garble, array_data_files),
    (corrupt_bitflip, array_data_files), (corrupt_truncate, metadata_file),
])
def test_a_corrupt_newest_checkpoint_resumes_from_the_previous_one(
        config_file, straight_run, tmp_path, caplog, capfd, damage, targets):
    workdir = copy_run(straight_run[0], tmp_path / "run", 256)
    bad = workdir.absolute() / "checkpoints" / "256"
    for path in targets(bad):
        damage(path)
    expected, _ = final_state(straight_run[0], straight_run[1], step=224)
    state = training_loop.train(load_config(config_file, total_kimg=0.224), workdir)
    assert_same_state(jax.tree.map(np.asarray, jax.device_get(state)), expected)
    assert f"checkpoint {bad} is " in caplog.text
    assert f"resuming from the older checkpoint {bad.parent / '224'}" in caplog.text
    assert bad.exists()  # kept for inspection
    assert "Traceback" not in capfd.readouterr().err


def test_no_intact_checkpoint_is_one_clear_error(config_file, straight_run, tmp_path):
    workdir = copy_run(straight_run[0], tmp_path / "run", 32)
    for path in array_data_files(workdir / "checkpoints" / "32"):
        corrupt_garble(path)
    with pytest.raises(CheckpointError, match=r"no intact checkpoint to resume from: checkpoint "
                       r".*/checkpoints/32 is (unreadable|corrupt)"):
        training_loop.train(load_config(config_file), workdir)


def every_array_file(checkpoint):
    return sorted(p for p in checkpoint.glob("*/**/d/*") if p.is_file())


def one_line_exit(capsys, argv):
    """``cli.main(argv)`` must end with one error line (after the log's warnings) and the
    run-error status, 3; returns that line."""
    from stylegan_jax import cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == cli.EXIT_RUN, err
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_a_broken_checkpoint_is_one_line_under_every_command(config_file, straight_run,
                                                              tmp_path, capsys):
    workdir = copy_run(straight_run[0], tmp_path / "run", 32)
    bad = workdir.absolute() / "checkpoints" / "32"
    for path in every_array_file(bad):
        corrupt_garble(path)
    out = str(tmp_path / "out")
    for argv in (["train", "--config", str(config_file), "--workdir", str(workdir)],
                 ["generate", "--network", str(workdir), "--seeds", "0", "--outdir", out],
                 ["figure", "--network", str(workdir), "--kind", "noise", "--outdir", out],
                 ["metrics", "--network", str(workdir), "--metrics", "fid64"]):
        err = one_line_exit(capsys, argv)
        assert err.startswith(f"stylegan-jax {argv[0]}: error: ")
        assert f"checkpoint {bad} is " in err


@pytest.mark.parametrize("checksums", [False, True])
def test_every_checkpoint_corrupt_in_the_old_layout_is_one_line(config_file, straight_run,
                                                                tmp_path, checksums):
    """Checkpoints written before the EMA generator had its own item hold one ``state`` item
    (and, older still, no checksums): truncated array files in every one are one line too."""
    config = load_config(config_file)
    first, second = Checkpointer(straight_run[0]).all_steps()[-2:]
    ckpt = Checkpointer(tmp_path / "run", async_save=False)
    for step in (first, second):
        state, meta = final_state(straight_run[0], config, step=step)
        ckpt.save(step, {"state": state}, {k: v for k, v in meta.items() if k != "checksums"})
        ckpt.wait()
    ckpt.close()
    checkpoints = (tmp_path / "run" / "checkpoints").absolute()
    for bad in (checkpoints / str(first), checkpoints / str(second)):
        if not checksums:
            meta_file = bad / "meta" / "metadata"
            stored = json.loads(meta_file.read_text())
            stored.pop("checksums")
            meta_file.write_text(json.dumps(stored))
        for path in every_array_file(bad):
            corrupt_truncate(path)
    proc = run_cli(config_file, tmp_path / "run")  # a process: asyncio logs at its exit
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out  # cli.EXIT_RUN
    noise = re.search(r"(?s).{0,300}(Traceback|never retrieved).{0,1500}", out)
    assert noise is None, noise[0]  # only the excerpt: CI shows the start of long messages
    err = out.strip().splitlines()[-1]
    assert err.startswith("stylegan-jax train: error: no intact checkpoint to resume from: "
                          f"checkpoint {checkpoints / str(second)} is ")
    assert f"checkpoint {checkpoints / str(first)} is " in err


def test_orbax_reads_nobody_awaited_are_not_logged_at_exit(caplog):
    """The subprocess test above only sees asyncio's "never retrieved" log when the garbage
    collector happens to run at exit; this checks the filter itself, with positive controls:
    a Task failing in Orbax and a TensorStore future's frameless error are dropped, the same
    from the user's code, or a frameless error that is not TensorStore's, still log."""
    from stylegan_jax.checkpoint import _ignore_orphaned_reads

    def error_from(filename):
        try:
            exec(compile("raise ValueError('OUT_OF_RANGE: Error reading')", filename, "exec"))
        except ValueError as e:
            return e

    _ignore_orphaned_reads()
    asyncio_log = logging.getLogger("asyncio")
    for filename in ("/site-packages/orbax/checkpoint/serialization.py", "/home/user/mine.py"):
        e = error_from(filename)
        asyncio_log.error("Task exception was never retrieved\nfuture: <Task finished>",
                          exc_info=(type(e), e, e.__traceback__))
    for message in ("OUT_OF_RANGE: Error reading local file", "my own error"):
        e = ValueError(message)  # raised in C++: no traceback
        asyncio_log.error("Future exception was never retrieved\nfuture: <Future finished>",
                          exc_info=(type(e), e, None))
    logged = [r for r in caplog.records if r.name == "asyncio"]
    assert [r.exc_info[2].tb_next.tb_frame.f_code.co_filename if r.exc_info[2] else
            str(r.exc_info[1]) for r in logged] == ["/home/user/mine.py", "my own error"]


def test_resume_refuses_a_changed_seed_unless_allowed(config_file, straight_run, tmp_path):
    workdir = copy_run(straight_run[0], tmp_path / "run", 256)
    changed = load_config(config_file, seed=7, total_kimg=0.256)
    with pytest.raises(ConfigChangeError, match=r"config\.seed is 1000 in the checkpoint but 7 "
                       r"now\. Resume with the run's config, or allow the change of seed"):
        training_loop.train(changed, workdir)
    killed_save = workdir / "checkpoints" / "288.orbax-checkpoint-tmp-1"  # cut short by a kill
    killed_save.mkdir()
    training_loop.train(changed, workdir, allow_config_change=["seed"])  # nothing left to do
    assert not killed_save.exists()


def test_a_locked_workdir_is_refused_naming_the_holder(config_file, tmp_path):
    refused = pytest.raises(WorkdirLockedError, match=rf"{tmp_path} is in use by another "
                            rf"training process \(pid {os.getpid()}\)")
    with WorkdirLock(tmp_path), refused:
        training_loop.train(load_config(config_file), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_a_second_train_process_exits_at_once_and_the_first_finishes(config_file,
                                                                     straight_run, tmp_path):
    first = run_cli(config_file, tmp_path)
    wait_for_checkpoint(tmp_path, first)
    second = run_cli(config_file, tmp_path)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 3, out  # cli.EXIT_RUN
    assert f"is in use by another training process (pid {first.pid})" in out
    assert "Traceback" not in out
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    records = [json.loads(line)["nimg"]
               for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == list(range(32, 257, 32))
    assert_same_state(final_state(tmp_path, straight_run[1])[0], straight_run[2][0])


def test_resume_says_where_and_drops_log_records_past_the_checkpoint(config_file, straight_run,
                                                                     tmp_path):
    """The CLI on a workdir whose newest checkpoint (256) is truncated: one line about it (no
    asyncio tracebacks), where it resumes, what it will do, and no log records past 224."""
    workdir = copy_run(straight_run[0], tmp_path / "run", 256)
    bad = workdir.absolute() / "checkpoints" / "256"
    for path in array_data_files(bad):
        corrupt_truncate(path)
    proc = run_cli(config_file, workdir, "--config.total_kimg=0.224")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "Event loop is closed" not in out
    assert out.count(f"checkpoint {bad} is unreadable") == 1
    assert f"resuming from checkpoint {workdir.absolute()}/checkpoints/224 at 0.224 kimg " \
           "(tick 7, 32x32 fade 0.00)" in out
    assert "training on digits/32" in out and "0.224 -> 0.224 kimg" in out
    records = [json.loads(line)["nimg"]
               for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert records == list(range(32, 225, 32))


def test_disk_full_during_a_save_is_one_line_and_leaves_no_partial_checkpoint(
        config_file, straight_run, tmp_path, monkeypatch):
    import errno

    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    workdir = copy_run(straight_run[0], tmp_path / "run", 224)

    async def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full)
    with pytest.raises(CheckpointError) as error:
        training_loop.train(load_config(config_file), workdir)
    message = str(error.value)
    assert "\n" not in message
    assert f"saving checkpoint 256 in {workdir.absolute()}/checkpoints failed: the disk is full"\
        in message and "are intact" in message
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == \
        ["128", "192", "224", "32"]


def test_old_checkpoints_without_a_g_ema_item_still_load(straight_run, tmp_path):
    """A checkpoint in the layout written before the EMA generator was its own item: the whole
    train state as ``state`` and the loop counters at the top level of ``meta``."""
    import orbax.checkpoint as ocp

    from stylegan_jax.runs import load_run

    workdir, config, (state, meta) = straight_run
    old = ocp.CheckpointManager(tmp_path / "checkpoints")
    old.save(256, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave({"step": 16, "nimg": 256, "tick": 8, "phase_key": [0, 0],
                                "pipeline_position": 256, "config": config.to_dict()})))
    old.wait_until_finished()
    old.close()
    run = load_run(tmp_path)
    assert run.step == 256 and run.position.tick == 8 and run.position.resolution is None
    np.testing.assert_array_equal(run.variables["stats"]["w_avg"], state.w_avg)
    jax.tree.map(np.testing.assert_array_equal, run.variables["params"], state.g_ema_params)
    new = load_run(workdir)
    jax.tree.map(np.testing.assert_array_equal, new.variables, run.variables)
