"""Runs on disk: how a train state maps onto a run's checkpoint items
(:func:`checkpoint_items`), writing a run from an official pickle (:func:`import_run`), and
loading a trained run: a workdir (or one checkpoint directory ``WORKDIR/checkpoints/STEP``)
-> the sampling model (the EMA generator's module and variables), the run's config, the
checkpoint's step and its loop position (resolution and fade of the phase it was saved in).

Sampling and metrics read only the checkpoint's ``g_ema`` item (``{'params', 'w_avg'}``);
checkpoints written before that item existed hold the EMA generator inside the ``state`` item
and are read from there. The step is resolved once, through one read-only Orbax manager.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import official, parallel, training
from stylegan_jax.checkpoint import (
    G_EMA,
    STATE,
    Checkpointer,
    LoopPosition,
    WorkdirLock,
    network_mismatches,
)
from stylegan_jax.models import build_networks
from stylegan_jax.networks import Generator
from stylegan_jax.sampling import PhaseGenerator, at_phase, phase_note
from stylegan_jax.schedule import full_resolution_kimg, training_schedule

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class Run:
    """One checkpoint of a run, ready to sample: ``G`` is the EMA generator at the
    checkpoint's phase (resolution and fade, output at full size; see
    :mod:`stylegan_jax.sampling`), ``variables`` are
    ``{'params': EMA params, 'stats': {'w_avg': ...}}`` for ``G.apply``."""

    config: ml_collections.ConfigDict
    G: PhaseGenerator
    variables: dict
    step: int
    position: LoopPosition
    checkpoint: Path

    @property
    def workdir(self) -> Path:
        """The run directory the checkpoint belongs to."""
        return self.checkpoint.parent.parent


def split_path(path: str | Path, step: int | None) -> tuple[Path, int | None]:
    """``(workdir, step)`` for a workdir or a checkpoint directory ``WORKDIR/checkpoints/N``
    (whose ``N`` must agree with ``step`` when both are given)."""
    path = Path(path)
    if path.parent.name == "checkpoints" and path.name.isdigit():
        if step is not None and step != int(path.name):
            raise ValueError(f"checkpoint {path} is step {path.name}, but step {step} was asked")
        return path.parent.parent, int(path.name)
    return path, step


def ema_abstract(G: Generator, sharding: jax.sharding.Sharding) -> dict:
    """Shapes, dtypes and ``sharding`` of the ``g_ema`` item of ``G``'s checkpoints."""
    z = jnp.zeros((1, G.latent_size))
    labels = jnp.zeros((1, G.label_size)) if G.label_size else None
    shapes = jax.eval_shape(G.init, jax.random.key(0), z, labels)
    item = {"params": shapes["params"], "w_avg": shapes["stats"]["w_avg"]}
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        item)


def _legacy_ema(ckpt: Checkpointer, step: int, sharding: jax.sharding.Sharding) -> dict:
    """The EMA generator of a checkpoint without a ``g_ema`` item, from its whole ``state``."""
    saved = ckpt.item_metadata(step, STATE)
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), saved,
        is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
    state = ckpt.restore(step, {STATE: abstract})[0][STATE]
    return {"params": state["g_ema_params"], "w_avg": state["w_avg"]}


def load_run(path: str | Path, step: int | None = None,
             mesh: jax.sharding.Mesh | None = None, dtype: Any = jnp.float32) -> Run:
    """Checkpoint ``step`` (images seen; default the latest) of the run at ``path`` (a workdir
    or one checkpoint directory), its EMA generator replicated on ``mesh`` (default: all
    devices), whatever device count wrote it. The generator computes in ``dtype`` (float32
    whatever the run trained in) at the checkpoint's resolution and fade; a checkpoint saved
    before the final resolution is logged as such."""
    workdir, step = split_path(path, step)
    if not workdir.is_dir():
        raise FileNotFoundError(f"run directory {workdir} does not exist")
    sharding = parallel.replicated_sharding(mesh or parallel.make_mesh())
    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        step = ckpt.checked_step(step)
        meta = ckpt.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        G = build_networks(config)[0]
        if G_EMA in ckpt.items(step):
            ema = ckpt.restore(step, {G_EMA: ema_abstract(G, sharding)})[0][G_EMA]
        else:
            ema = _legacy_ema(ckpt, step, sharding)
    finally:
        ckpt.close()
    variables = {"params": ema["params"], "stats": {"w_avg": ema["w_avg"]}}
    position = LoopPosition.from_meta(meta)
    G = at_phase(G, position.resolution, position.fade or 0.0, dtype=dtype)
    if note := phase_note(G):
        log.warning("%s: %s", ckpt.path(step), note)
    return Run(config, G, variables, step, position, ckpt.path(step))


# ---- writing runs ------------------------------------------------------------------------

def checkpoint_items(state: training.TrainState) -> dict[str, Any]:
    """The checkpoint items of a train state: the EMA generator on its own (sampling reads only
    that) and the rest."""
    rest = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
            if f.name not in ("g_ema_params", "w_avg")}
    return {STATE: rest, G_EMA: {"params": state.g_ema_params, "w_avg": state.w_avg}}


def state_from_items(items: dict[str, Any]) -> training.TrainState:
    """Inverse of :func:`checkpoint_items`; checkpoints without a ``g_ema`` item hold the
    whole state."""
    if G_EMA not in items:
        return items[STATE]
    ema = items[G_EMA]
    return training.TrainState(**items[STATE], g_ema_params=ema["params"], w_avg=ema["w_avg"])


def import_run(pkl: str | os.PathLike, workdir: str | os.PathLike,
               config: ml_collections.ConfigDict | None = None,
               resume_kimg: float | None = None) -> tuple[int, ml_collections.ConfigDict]:
    """Writes a run in ``workdir`` whose first checkpoint holds the pickle's G, D and Gs (as
    G EMA, with Gs's ``dlatent_avg`` as ``w_avg``) and fresh Adam states, positioned at
    ``resume_kimg`` (default: :func:`full_resolution_kimg`), so ``train`` continues from the
    official weights. ``config`` (default: the pickle's) must describe the same networks.
    Returns the checkpoint's image count and the run's config."""
    net = official.load_pickle(pkl)
    if config is None:
        config = net.config
    else:
        problems = network_mismatches(net.config.to_dict(), config)
        if problems:
            raise official.OfficialPickleError(
                f"{os.fspath(pkl)}: the config describes other networks than the pickle: "
                + "; ".join(p.replace("in the checkpoint", "in the pickle") for p in problems))
    workdir = Path(workdir)
    kimg = full_resolution_kimg(config) if resume_kimg is None else float(resume_kimg)
    if kimg < 0:
        raise ValueError(f"--resume_kimg must be >= 0, got {kimg:g}")
    nimg = int(round(kimg * 1000))
    mesh = parallel.make_mesh()
    phase = training_schedule(nimg, config.sched, config.resolution, mesh.size, config.total_kimg)
    optimizer = training.make_optimizer(config)
    state = training.TrainState(
        g_params=net.G["params"], d_params=net.D["params"], g_ema_params=net.Gs["params"],
        w_avg=net.Gs["stats"]["w_avg"], g_opt=optimizer.init(net.G["params"]),
        d_opt=optimizer.init(net.D["params"]),
        counters={k: np.zeros((), np.int32) for k in training.COUNTERS})
    state = jax.device_put(state, parallel.replicated_sharding(mesh))
    position = LoopPosition(step=0, nimg=nimg, tick=0, phase_key=phase.key,
                            resolution=phase.resolution, fade=phase.fade)
    with WorkdirLock(workdir):
        ckpt = Checkpointer(workdir, keep=config.keep_checkpoints,
                            snapshot_kimg=config.snapshot_kimg, async_save=False)
        try:
            if ckpt.latest_step() is not None:
                raise ValueError(f"{workdir} already holds a run (checkpoint at "
                                 f"{ckpt.latest_step()} images); import into a new --workdir")
            ckpt.save(nimg, checkpoint_items(state),
                      {"position": position.to_meta(), "config": config.to_dict()})
            ckpt.wait()
        finally:
            ckpt.close()
    return nimg, config
