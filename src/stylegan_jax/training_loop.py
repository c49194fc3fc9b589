"""The training loop (official ``training_loop.py``): schedule, steps, ticks, logs, checkpoints.

Kept apart from ``training.py`` (state and the compiled step) like NVlabs' ``training_loop``
and ``loss`` modules, so the step can be tested and benchmarked without the loop's I/O.

The host touches device values only at tick boundaries (logging, grids, checkpoints); in
between it only enqueues batches and steps. A run resumes from the latest checkpoint in its
workdir; SIGTERM/SIGINT save a checkpoint and stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from stylegan_jax import parallel, training
from stylegan_jax.checkpoint import Checkpointer, StopSignal, network_mismatches
from stylegan_jax.compile_cache import enable_compilation_cache
from stylegan_jax.data.pipeline import InputPipeline
from stylegan_jax.data.prepared import open_prepared
from stylegan_jax.layers import upscale2d
from stylegan_jax.logs import RunWriter, image_grid, to_uint8
from stylegan_jax.metrics.frechet import FeatureExtractor
from stylegan_jax.metrics.periodic import PeriodicFID
from stylegan_jax.schedule import ema_beta, training_schedule

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Raised when too many consecutive updates had non-finite gradients."""


def _saved_meta(config, workdir: Path, ckpt: Checkpointer) -> dict:
    """The loop position of the latest checkpoint (a fresh one if none), after checking that
    the checkpoint's networks fit ``config``."""
    step = ckpt.latest_step()
    if step is None:
        return {"step": 0, "nimg": 0, "tick": 0, "phase_key": None}
    meta = ckpt.restore_meta(step)
    problems = network_mismatches(meta["config"], config)
    if problems:
        raise ValueError(
            f"{workdir} holds a checkpoint (at {step} images) of a different network:\n  "
            + "\n  ".join(problems)
            + "\nUse another --workdir, or the config the run was started with.")
    return meta


def _check_dataset(config, pipeline: InputPipeline) -> None:
    if pipeline.resolution != config.resolution:
        raise ValueError(f"dataset {config.dataset.name!r} in {config.dataset.data_dir} stores "
                         f"{pipeline.resolution}x{pipeline.resolution} images but "
                         f"config.resolution is {config.resolution}")
    if config.label_size and pipeline.num_classes != config.label_size:
        raise ValueError(f"config.label_size is {config.label_size} but dataset "
                         f"{config.dataset.name!r} has {pipeline.num_classes} classes")


def train(config: ml_collections.ConfigDict, workdir: str | Path,
          mesh: jax.sharding.Mesh | None = None,
          fid_extractor: FeatureExtractor | None = None) -> training.TrainState:
    """Trains (or resumes) the run in ``workdir`` until ``config.total_kimg`` or a stop signal.
    ``fid_extractor`` replaces the Inception network of periodic FID (tests). A dataset that
    is not prepared raises ``DatasetNotPreparedError`` before anything is written."""
    open_prepared(config.dataset.data_dir, config.dataset.name)
    enable_compilation_cache(workdir)
    with contextlib.ExitStack() as cleanup:
        return _train(config, Path(workdir), mesh or parallel.make_mesh(), fid_extractor,
                      cleanup)


def _train(config: ml_collections.ConfigDict, workdir: Path, mesh: jax.sharding.Mesh,
           fid_extractor: FeatureExtractor | None, cleanup: contextlib.ExitStack
           ) -> training.TrainState:
    is_main = jax.process_index() == 0
    G, D = training.build_models(config)
    optimizer = training.make_optimizer(config)
    ckpt = Checkpointer(workdir, keep=config.keep_checkpoints, snapshot_kimg=config.snapshot_kimg)
    cleanup.callback(ckpt.close)
    cleanup.callback(ckpt.wait)
    meta = _saved_meta(config, workdir, ckpt)
    pipeline = cleanup.enter_context(InputPipeline(
        config.dataset.data_dir, config.dataset.name, mesh=mesh, seed=config.seed,
        mirror=config.dataset.mirror_augment, start_image=meta["nimg"],
        workers=config.dataset.workers, prefetch=config.dataset.prefetch))
    _check_dataset(config, pipeline)
    if ckpt.latest_step() is not None:
        abstract = training.abstract_train_state(config, G, D, optimizer, mesh)
        state, meta = ckpt.restore(abstract, ckpt.latest_step())
        log.info("resumed from %s at %d images", ckpt.directory, meta["nimg"])
    else:
        state = training.create_train_state(config, G, D, optimizer, mesh)
    step, nimg, tick = meta["step"], meta["nimg"], meta["tick"]
    phase_key = tuple(meta["phase_key"]) if meta["phase_key"] is not None else None
    if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    iteration = training.make_train_iteration(config, G, D, optimizer, mesh)
    grid_fn = training.make_grid_fn(G, mesh)
    grid_n = config.grid_size**2
    grid_z = jax.random.normal(jax.random.key(config.seed + 1), (grid_n, G.latent_size))
    grid_labels = (jax.nn.one_hot(np.arange(grid_n) % G.label_size, G.label_size)
                   if G.label_size else None)
    periodic_fid = (PeriodicFID(config, mesh, nimg, workdir / "fid_cache", fid_extractor)
                    if config.fid.every_kimg > 0 else None)
    writer = RunWriter(workdir, enabled=is_main)
    cleanup.callback(writer.close)
    total_nimg = int(config.total_kimg * 1000)

    def save(fid: float | None = None) -> None:
        ckpt.save(nimg, state, {"step": step, "nimg": nimg, "tick": tick,
                                "phase_key": list(phase_key) if phase_key else None,
                                "pipeline_position": pipeline.position,
                                "config": config.to_dict()}, fid=fid)

    def stopping() -> bool:  # a local signal, or all processes agreed to stop
        return bool(stop) or ckpt.reached_preemption(nimg)

    tick_start_nimg, tick_start_time, tick_metrics = nimg, time.time(), []
    saved_at = nimg
    stop = cleanup.enter_context(StopSignal())
    bar = cleanup.enter_context(tqdm(
        total=total_nimg, initial=min(nimg, total_nimg), unit="img", unit_scale=True,
        disable=not is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0))
    while nimg < total_nimg and not stopping():
        phase = training_schedule(nimg, config.sched, config.resolution, mesh.size)
        if phase.key != phase_key:
            if phase_key is not None and config.opt.reset_opt_for_new_lod:
                state = training.reset_optimizers(state, optimizer, mesh)
            phase_key = phase.key
        beta = ema_beta(phase.minibatch, config.G_smoothing_kimg)
        for _ in range(config.minibatch_repeats):
            batch = pipeline.next_batch(phase.minibatch)
            state, metrics = iteration(state, batch, step, phase.fade, phase.G_lrate,
                                       phase.D_lrate, beta, resolution=phase.resolution)
            step, nimg = step + 1, nimg + phase.minibatch
            tick_metrics.append(metrics)
            bar.update(min(phase.minibatch, max(total_nimg - bar.n, 0)))
            if nimg >= total_nimg or stop:
                break
        done = nimg >= total_nimg or stopping()
        if not done and nimg < tick_start_nimg + phase.tick_kimg * 1000:
            continue
        # ---- tick: the only place the host waits for the device ----
        tick += 1
        values = {k: float(np.mean(v)) for k, v in jax.tree.map(
            lambda *x: np.stack(x), *jax.device_get(tick_metrics)).items()}
        counters = {k: int(v) for k, v in jax.device_get(state.counters).items()}
        elapsed = time.time() - tick_start_time
        values.update({
            "progress/kimg": nimg / 1000, "progress/resolution": phase.resolution,
            "progress/lod": phase.lod, "progress/fade": phase.fade,
            "progress/minibatch": phase.minibatch, "lr/G": phase.G_lrate, "lr/D": phase.D_lrate,
            "speed/images_per_sec": (nimg - tick_start_nimg) / max(elapsed, 1e-9),
            "speed/sec_per_tick": elapsed, "nonfinite/total": counters["nonfinite_total"]})
        fid = None
        if periodic_fid is not None and periodic_fid.due(nimg, done):
            fid = periodic_fid(G, {"params": state.g_ema_params, "stats": {"w_avg": state.w_avg}},
                               phase, nimg)
            values["metrics/fid"] = fid  # over config.fid.num_images images
        writer.scalars(nimg, values)
        bar.set_postfix_str(
            f"{nimg / 1000:.1f} kimg, res {phase.resolution} fade {phase.fade:.2f} "
            f"G {values['loss/G']:.3f} D {values['loss/D']:.3f} "
            f"{values['speed/images_per_sec']:.0f} img/s", refresh=False)
        if counters["worst_nonfinite_streak"] >= config.max_nonfinite_steps:
            raise NonFiniteError(
                f"{counters['worst_nonfinite_streak']} consecutive updates had non-finite "
                f"gradients (config.max_nonfinite_steps={config.max_nonfinite_steps}) by "
                f"{nimg / 1000:.1f} kimg; the last good checkpoint is in {ckpt.directory}. "
                "Lower the learning rate or use compute_dtype='float32'.")
        if tick % config.image_snapshot_ticks == 0 or done:
            images = grid_fn(state.g_ema_params, state.w_avg, grid_z, grid_labels,
                             jax.random.key(config.seed + 2), phase.fade,
                             resolution=phase.resolution)
            images = upscale2d(images, config.resolution // phase.resolution)
            grid = image_grid(to_uint8(jax.device_get(images)), config.grid_size)
            writer.image(nimg, "fakes", grid, workdir / "grids" / f"fakes{nimg:010d}.png")
        if tick % config.checkpoint_ticks == 0 or done or fid is not None:
            save(fid)
            saved_at = nimg
        writer.flush()
        tick_start_nimg, tick_start_time, tick_metrics = nimg, time.time(), []
    if stopping():
        if saved_at != nimg:
            save()
        log.warning("stopped by signal %s at %.1f kimg; run the same command to resume",
                    stop.received, nimg / 1000)
    return state
