"""The training loop (official ``training_loop.py``): schedule, steps, ticks, logs, checkpoints.

Kept apart from ``training.py`` (state and the compiled step) like NVlabs' ``training_loop``
and ``loss`` modules, so the step can be tested and benchmarked without the loop's I/O.

The loop is three named steps around a :class:`~stylegan_jax.checkpoint.LoopPosition`:
:func:`_restore_or_init` (the newest intact checkpoint, or a fresh state),
:func:`_minibatch_repeats` (``minibatch_repeats`` jitted iterations of one schedule phase) and
:func:`_end_tick` (statistics, log, grid, periodic metrics, checkpoint). The host touches device
values only at tick boundaries; in between it only enqueues batches and steps. A run resumes
from the newest intact checkpoint in its workdir, which it locks for its whole length;
SIGTERM/SIGINT save a checkpoint and stop cleanly. A tick with non-finite losses or skipped
updates saves no checkpoint, so the newest checkpoint is always the last finite one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from stylegan_jax import parallel, training
from stylegan_jax.checkpoint import (
    G_EMA,
    STATE,
    Checkpointer,
    LoopPosition,
    StopSignal,
    WorkdirLock,
    check_resumable,
)
from stylegan_jax.compile_cache import enable_compilation_cache
from stylegan_jax.data.pipeline import InputPipeline
from stylegan_jax.data.prepared import open_prepared
from stylegan_jax.errors import RunError
from stylegan_jax.images import to_uint8
from stylegan_jax.layers import upscale2d
from stylegan_jax.logs import RunWriter, image_grid
from stylegan_jax.metrics.periodic import PeriodicMetrics
from stylegan_jax.metrics.registry import Networks
from stylegan_jax.models import build_networks
from stylegan_jax.runs import checkpoint_items, state_from_items
from stylegan_jax.schedule import Phase, ema_beta, training_schedule

log = logging.getLogger(__name__)

GRID_LATENT_SEED_OFFSET = 1  # the snapshot grid's latents: jax.random.key(config.seed + 1)
GRID_NOISE_SEED_OFFSET = 2  # the snapshot grid's noise: jax.random.key(config.seed + 2)


class NonFiniteError(RunError):
    """Raised when too many consecutive updates had non-finite gradients (the message names
    the last finite checkpoint)."""


@dataclasses.dataclass
class _Loop:
    """What a run holds for its whole length (built once by :func:`_open`)."""

    config: ml_collections.ConfigDict
    workdir: Path
    mesh: jax.sharding.Mesh
    G: Any
    optimizer: Any
    ckpt: Checkpointer
    pipeline: InputPipeline
    iteration: Any
    grid_fn: Any
    periodic_metrics: PeriodicMetrics | None
    writer: RunWriter
    stop: StopSignal
    bar: tqdm
    total_nimg: int
    saved_at: int
    save_pending: bool = False  # a due save was skipped (non-finite tick): save at the next
    finite: bool = True  # the last tick had no non-finite loss and no skipped update

    def stopping(self, nimg: int) -> bool:
        """A local signal, or all processes agreed to stop."""
        return bool(self.stop) or self.ckpt.reached_preemption(nimg)


@dataclasses.dataclass
class _Tick:
    """The tick in progress: where it started and the per-iteration metrics (on device)."""

    start_nimg: int
    start_nonfinite: int
    start_time: float = dataclasses.field(default_factory=time.time)
    metrics: list = dataclasses.field(default_factory=list)


def train(config: ml_collections.ConfigDict, workdir: str | Path,
          mesh: jax.sharding.Mesh | None = None,
          metric_networks: Networks | None = None,
          allow_config_change: Sequence[str] = ()) -> training.TrainState:
    """Trains (or resumes) the run in ``workdir`` until ``config.total_kimg`` or a stop signal.
    ``allow_config_change`` names config fields (or prefixes, e.g. ``sched``) that may differ
    from the checkpoint's; ``metric_networks`` replaces the networks of the periodic metrics
    (tests use stand-ins). A dataset that is not prepared raises ``DatasetNotPreparedError``
    before anything is written."""
    open_prepared(config.dataset.data_dir, config.dataset.name)
    enable_compilation_cache(workdir)
    workdir, mesh = Path(workdir), mesh or parallel.make_mesh()
    with contextlib.ExitStack() as cleanup:
        if jax.process_index() == 0:
            cleanup.enter_context(WorkdirLock(workdir))
        loop, state, position = _open(config, workdir, mesh, metric_networks,
                                      allow_config_change, cleanup)
        return _run(loop, state, position)


def _open(config: ml_collections.ConfigDict, workdir: Path, mesh: jax.sharding.Mesh,
          metric_networks: Networks | None, allow: Sequence[str],
          cleanup: contextlib.ExitStack) -> tuple[_Loop, training.TrainState, LoopPosition]:
    """Restores or creates the state and builds everything the loop needs."""
    is_main = jax.process_index() == 0
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    ckpt = Checkpointer(workdir, keep=config.keep_checkpoints, snapshot_kimg=config.snapshot_kimg)
    cleanup.callback(ckpt.close)
    cleanup.callback(ckpt.wait)
    state, position = _restore_or_init(config, workdir, mesh, ckpt, (G, D, optimizer), allow)
    pipeline = cleanup.enter_context(InputPipeline(
        config.dataset.data_dir, config.dataset.name, mesh=mesh, seed=config.seed,
        mirror=config.dataset.mirror_augment, start_image=position.nimg,
        workers=config.dataset.workers, prefetch=config.dataset.prefetch))
    _check_dataset(config, pipeline)
    if is_main:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    total_nimg = int(config.total_kimg * 1000)
    _announce(config, pipeline, mesh, position, total_nimg)
    loop = _Loop(
        config=config, workdir=workdir, mesh=mesh, G=G, optimizer=optimizer, ckpt=ckpt,
        pipeline=pipeline,
        iteration=training.make_train_iteration(config, G, D, optimizer, mesh),
        grid_fn=training.make_grid_fn(G, mesh),
        periodic_metrics=(PeriodicMetrics(config, mesh, position.nimg, metric_networks)
                          if config.metrics_every_kimg > 0 and config.metrics else None),
        writer=cleanup.enter_context(contextlib.closing(RunWriter(
            workdir, enabled=is_main, resume_nimg=position.nimg))),
        stop=cleanup.enter_context(StopSignal()),
        bar=cleanup.enter_context(tqdm(
            total=total_nimg, initial=min(position.nimg, total_nimg), unit="img",
            unit_scale=True, disable=not is_main,
            mininterval=1.0 if sys.stderr.isatty() else 30.0)),
        total_nimg=total_nimg, saved_at=position.nimg)
    return loop, state, position


def _restore_or_init(config: ml_collections.ConfigDict, workdir: Path, mesh: jax.sharding.Mesh,
                     ckpt: Checkpointer, models: tuple, allow: Sequence[str]
                     ) -> tuple[training.TrainState, LoopPosition]:
    """The newest intact checkpoint (after checking it fits ``config``), or a fresh state."""
    G, D, optimizer = models
    if ckpt.latest_step() is None:
        return training.create_train_state(config, G, D, optimizer, mesh), LoopPosition()
    abstract = training.abstract_train_state(config, G, D, optimizer, mesh)

    def restore(step: int) -> tuple[training.TrainState, LoopPosition]:
        check_resumable(ckpt.restore_meta(step)["config"], config, str(workdir), allow)
        items = checkpoint_items(abstract) if G_EMA in ckpt.items(step) else {STATE: abstract}
        restored, meta = ckpt.restore(step, items)
        return state_from_items(restored), LoopPosition.from_meta(meta)

    step, (state, position) = ckpt.restore_newest_intact(restore)
    phase = ("" if position.resolution is None else
             f", {position.resolution}x{position.resolution} fade {position.fade:.2f}")
    log.info("resuming from checkpoint %s at %.3f kimg (tick %d%s)", ckpt.path(step),
             position.nimg / 1000, position.tick, phase)
    return state, position


def _check_dataset(config: ml_collections.ConfigDict, pipeline: InputPipeline) -> None:
    if pipeline.resolution != config.resolution:
        raise ValueError(f"dataset {config.dataset.name!r} in {config.dataset.data_dir} stores "
                         f"{pipeline.resolution}x{pipeline.resolution} images but "
                         f"config.resolution is {config.resolution}")
    if config.label_size and pipeline.num_classes != config.label_size:
        raise ValueError(f"config.label_size is {config.label_size} but dataset "
                         f"{config.dataset.name!r} has {pipeline.num_classes} classes")


def _announce(config: ml_collections.ConfigDict, pipeline: InputPipeline,
              mesh: jax.sharding.Mesh, position: LoopPosition, total_nimg: int) -> None:
    """Says what the run is about to do: data, devices, the phase it starts in, the goal."""
    phase = training_schedule(position.nimg, config.sched, config.resolution, mesh.size,
                              config.total_kimg)
    devices = mesh.devices.flat[0]
    log.info("training on %s in %s (%d images, %dx%d) with %d %s device(s) in %d process(es): "
             "%.3f -> %.3f kimg, starting at %dx%d fade %.2f with minibatch %d",
             config.dataset.name, config.dataset.data_dir, pipeline.num_examples,
             pipeline.resolution, pipeline.resolution, mesh.size, devices.platform,
             jax.process_count(), position.nimg / 1000, total_nimg / 1000, phase.resolution,
             phase.resolution, phase.fade, phase.minibatch)


def _run(loop: _Loop, state: training.TrainState, position: LoopPosition
         ) -> training.TrainState:
    """Phases of ``minibatch_repeats`` iterations, closing a tick whenever one is complete."""
    tick = _Tick(position.nimg, _nonfinite_total(state))
    while position.nimg < loop.total_nimg and not loop.stopping(position.nimg):
        phase = training_schedule(position.nimg, loop.config.sched, loop.config.resolution,
                                  loop.mesh.size, loop.config.total_kimg)
        state, position = _enter_phase(loop, state, position, phase)
        state, position = _minibatch_repeats(loop, state, position, phase, tick)
        done = position.nimg >= loop.total_nimg or loop.stopping(position.nimg)
        if done or position.nimg >= tick.start_nimg + phase.tick_kimg * 1000:
            position = _end_tick(loop, state, position, phase, tick, done)
            tick = _Tick(position.nimg, tick.start_nonfinite)
    if loop.stopping(position.nimg):
        if loop.saved_at != position.nimg and loop.finite:
            _save(loop, state, position)
        log.warning("stopped by signal %s at %.1f kimg; run the same command to resume",
                    loop.stop.received, position.nimg / 1000)
    return state


def _enter_phase(loop: _Loop, state: training.TrainState, position: LoopPosition,
                 phase: Phase) -> tuple[training.TrainState, LoopPosition]:
    """Resets Adam when the phase changes (official ``reset_opt_for_new_lod``)."""
    if (phase.key != position.phase_key and position.phase_key is not None
            and loop.config.opt.reset_opt_for_new_lod):
        state = training.reset_optimizers(state, loop.optimizer, loop.mesh)
    return state, dataclasses.replace(position, phase_key=phase.key,
                                      resolution=phase.resolution, fade=phase.fade)


def _minibatch_repeats(loop: _Loop, state: training.TrainState, position: LoopPosition,
                       phase: Phase, tick: _Tick) -> tuple[training.TrainState, LoopPosition]:
    """Up to ``config.minibatch_repeats`` iterations at ``phase`` (fewer at the end or on a
    stop signal), one dispatch each (the mirror runs inside the iteration); their metrics
    stay on device in ``tick``. Right after each dispatch the next batch (of the size the
    schedule will ask for) starts its transfer, so it is on the device before its step."""
    config = loop.config
    beta = ema_beta(phase.minibatch, config.G_smoothing_kimg)
    step, nimg = position.step, position.nimg
    for _ in range(config.minibatch_repeats):
        batch = loop.pipeline.next_batch(phase.minibatch, with_flips=True)
        state, metrics = loop.iteration(state, batch, step, phase.fade, phase.G_lrate,
                                        phase.D_lrate, beta, resolution=phase.resolution)
        step, nimg = step + 1, nimg + phase.minibatch
        tick.metrics.append(metrics)
        loop.bar.update(min(phase.minibatch, max(loop.total_nimg - loop.bar.n, 0)))
        if nimg >= loop.total_nimg or loop.stop:
            break
        loop.pipeline.prefetch_to_device(training_schedule(
            nimg, config.sched, config.resolution, loop.mesh.size, config.total_kimg).minibatch)
    return state, dataclasses.replace(position, step=step, nimg=nimg)


def _nonfinite_total(state: training.TrainState) -> int:
    return int(jax.device_get(state.counters["nonfinite_total"]))


def _end_tick(loop: _Loop, state: training.TrainState, position: LoopPosition, phase: Phase,
              tick: _Tick, done: bool) -> LoopPosition:
    """Closes a tick: statistics, log, non-finite guard, grid, periodic metrics, checkpoint.
    The only place the host waits for the device; a tick with a non-finite loss or a skipped
    update saves no checkpoint (it is saved at the next finite tick instead)."""
    position = dataclasses.replace(position, tick=position.tick + 1)
    values, counters = _tick_statistics(state, position, phase, tick)
    loop.finite = (counters["nonfinite_total"] == tick.start_nonfinite
               and all(math.isfinite(v) for k, v in values.items() if k.startswith("loss/")))
    tick.start_nonfinite = counters["nonfinite_total"]
    score = None
    periodic = loop.periodic_metrics
    if periodic is not None and periodic.due(position.nimg, done):
        results = periodic(loop.G, {"params": state.g_ema_params,
                                    "stats": {"w_avg": state.w_avg}},
                           phase.resolution, phase.fade, position.nimg)
        values.update({f"metrics/{k}": v for k, v in results.items()})
        score = periodic.score(results)
    loop.writer.scalars(position.nimg, values)
    loop.bar.set_postfix_str(
        f"{position.nimg / 1000:.1f} kimg, res {phase.resolution} fade {phase.fade:.2f} "
        f"G {values['loss/G']:.3f} D {values['loss/D']:.3f} "
        f"{values['speed/images_per_sec']:.0f} img/s", refresh=False)
    _check_nonfinite_streak(loop, counters, position)
    config = loop.config
    if position.tick % config.image_snapshot_ticks == 0 or done:
        _write_grid(loop, state, position, phase)
    if (position.tick % config.checkpoint_ticks == 0 or done or score is not None
            or loop.save_pending):
        if loop.finite:
            _save(loop, state, position, score)
        else:
            loop.save_pending = True
            log.warning("no checkpoint at %.3f kimg: this tick had non-finite losses or "
                        "skipped updates; %s", position.nimg / 1000, _last_finite(loop))
    loop.writer.flush()
    return position


def _tick_statistics(state: training.TrainState, position: LoopPosition, phase: Phase,
                     tick: _Tick) -> tuple[dict[str, float], dict[str, int]]:
    """The tick's mean losses, progress, learning rates and speed, and the step counters."""
    values = {k: float(np.mean(v)) for k, v in jax.tree.map(
        lambda *x: np.stack(x), *jax.device_get(tick.metrics)).items()}
    counters = {k: int(v) for k, v in jax.device_get(state.counters).items()}
    elapsed = time.time() - tick.start_time
    values.update({
        "progress/kimg": position.nimg / 1000, "progress/resolution": phase.resolution,
        "progress/lod": phase.lod, "progress/fade": phase.fade,
        "progress/minibatch": phase.minibatch, "lr/G": phase.G_lrate, "lr/D": phase.D_lrate,
        "speed/images_per_sec": (position.nimg - tick.start_nimg) / max(elapsed, 1e-9),
        "speed/sec_per_tick": elapsed, "nonfinite/total": counters["nonfinite_total"]})
    return values, counters


def _last_finite(loop: _Loop) -> str:
    """Where the last finite checkpoint is (after the save in flight has finished)."""
    loop.ckpt.wait()
    step = loop.ckpt.latest_step()
    if step is None:
        return "no finite checkpoint has been saved"
    return f"the last finite checkpoint is {step / 1000:.3f} kimg, {loop.ckpt.path(step)}"


def _check_nonfinite_streak(loop: _Loop, counters: dict[str, int],
                            position: LoopPosition) -> None:
    limit = loop.config.max_nonfinite_steps
    if counters["worst_nonfinite_streak"] >= limit:
        raise NonFiniteError(
            f"{counters['worst_nonfinite_streak']} consecutive updates had non-finite "
            f"gradients (config.max_nonfinite_steps={limit}) by {position.nimg / 1000:.3f} "
            f"kimg; {_last_finite(loop)}. Lower the learning rate or use "
            "compute_dtype='float32'.")


def _write_grid(loop: _Loop, state: training.TrainState, position: LoopPosition,
                phase: Phase) -> None:
    """The official snapshot grid: the EMA generator at the phase's resolution and fade,
    fixed latents and noise, nearest-upsampled to the full resolution."""
    config, G = loop.config, loop.G
    n = config.grid_size**2
    z = jax.random.normal(jax.random.key(config.seed + GRID_LATENT_SEED_OFFSET),
                          (n, G.latent_size))
    labels = jax.nn.one_hot(np.arange(n) % G.label_size, G.label_size) if G.label_size else None
    images = loop.grid_fn(state.g_ema_params, state.w_avg, z, labels,
                          jax.random.key(config.seed + GRID_NOISE_SEED_OFFSET), phase.fade,
                          resolution=phase.resolution)
    images = upscale2d(images, config.resolution // phase.resolution)
    grid = image_grid(to_uint8(jax.device_get(images)), config.grid_size)
    loop.writer.image(position.nimg, "fakes", grid,
                      loop.workdir / "grids" / f"fakes{position.nimg:010d}.png")


def _save(loop: _Loop, state: training.TrainState, position: LoopPosition,
          score: float | None = None) -> None:
    loop.ckpt.save(position.nimg, checkpoint_items(state),
                   {"position": position.to_meta(), "config": loop.config.to_dict()},
                   score=score)
    loop.saved_at, loop.save_pending = position.nimg, False
