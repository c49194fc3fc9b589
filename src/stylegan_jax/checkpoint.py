"""Checkpoints: a small wrapper around Orbax's ``CheckpointManager``, and stop signals.

A checkpoint holds the whole train state (G, D, G EMA, both Adam states, ``w_avg``, counters)
as one ``StandardSave`` item and the loop's position (iteration, images seen, input pipeline
position, schedule phase) plus the run's config as a JSON item. Its "step" is the number of
real images shown, so names sort by training progress. Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a killed run never leaves a partial
checkpoint behind. We keep the latest ``keep`` checkpoints plus, permanently, the first one
saved in each ``snapshot_kimg`` interval, and the checkpoint with the lowest FID among those
saved with one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from stylegan_jax.config import RETIRED_FIELDS

# Config fields that define the networks' variables: a checkpoint only fits a config that
# agrees on all of them.
NETWORK_FIELDS = ("resolution", "num_channels", "label_size", "G", "D")


class FirstInEachInterval:
    """Orbax preservation policy: keep the first checkpoint at or after every multiple of
    ``interval`` steps (here: images), i.e. one permanent snapshot per interval."""

    def __init__(self, interval: int):
        if interval <= 0:
            raise ValueError(f"snapshot interval must be positive, got {interval}")
        self.interval = interval

    def should_preserve(self, checkpoints: Sequence[Any], *, context: Any) -> Sequence[bool]:
        seen, keep = set(), []
        for ckpt in checkpoints:  # sorted by step
            bucket = ckpt.step // self.interval
            keep.append(bucket not in seen)
            seen.add(bucket)
        return keep


class Checkpointer:
    """Saves and restores train states under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | Path, keep: int = 3, snapshot_kimg: float = 1000.0,
                 async_save: bool = True, read_only: bool = False):
        self.directory = Path(workdir).absolute() / "checkpoints"
        if read_only and not self.directory.is_dir():
            raise FileNotFoundError(f"no checkpoint in {self.directory}: train first with "
                                    f"`stylegan-jax train --workdir {Path(workdir)} ...`")
        policy = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(keep),
            FirstInEachInterval(max(int(snapshot_kimg * 1000), 1)),
            checkpoint_managers.BestN(get_metric_fn=lambda m: m["fid"], reverse=True, n=1,
                                      keep_checkpoints_without_metrics=False),
        ])
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy, enable_async_checkpointing=async_save,
                create=not read_only, read_only=read_only),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, nimg: int, state: Any, meta: dict, fid: float | None = None) -> None:
        """Starts an (async) save of ``state`` and ``meta`` as checkpoint ``nimg``; ``fid``
        ranks it for keeping the best one."""
        self.manager.save(nimg, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True,
            metrics=None if fid is None else {"fid": fid})

    def restore_meta(self, step: int | None = None) -> dict:
        step = self.checked_step(step)
        return self.manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore())).meta

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores onto the shardings of ``abstract_state`` (``jax.ShapeDtypeStruct``s), so a
        checkpoint written on any device count loads onto the current mesh."""
        step = self.checked_step(step)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored.state, restored.meta

    def reached_preemption(self, step: int) -> bool:
        """True when a multi-process run (``jax.distributed``) agreed to stop at ``step``."""
        return jax.process_count() > 1 and self.manager.reached_preemption(step)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def checked_step(self, step: int | None) -> int:
        """``step`` if a checkpoint exists there, the latest one if ``step`` is None."""
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step is None:
            return max(steps)
        if step not in steps:
            raise FileNotFoundError(f"no checkpoint {step} in {self.directory}; have {steps}")
        return step


def network_mismatches(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
    """Human-readable differences between a saved config (dict) and ``config`` in the fields
    that define the networks' variables."""
    current = config.to_dict()
    problems = []

    def compare(path: str, a: Any, b: Any) -> None:
        if path in RETIRED_FIELDS:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                compare(f"{path}.{key}", a.get(key, "<missing>"), b.get(key, "<missing>"))
        elif a != b:
            problems.append(f"config.{path} is {a!r} in the checkpoint but {b!r} now")

    for field in NETWORK_FIELDS:
        compare(field, saved.get(field, "<missing>"), current.get(field, "<missing>"))
    return problems


class StopSignal:
    """Turns SIGTERM/SIGINT into a flag the training loop polls, so it can save and exit.

    Orbax's own preemption hook only works under ``jax.distributed``; this covers single-
    process runs. A second signal while stopping restores the default behaviour.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)):
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.received is not None


def resolve_step(workdir: str | Path, step: int | None = None) -> int:
    """The checkpoint ``step`` (images seen) of a run, or its latest; a clear error when the
    workdir, its checkpoints or that step do not exist."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        if not ckpt.all_steps():
            raise FileNotFoundError(f"no checkpoint in {ckpt.directory}: train first with "
                                    f"`stylegan-jax train --workdir {workdir} ...`")
        return ckpt.checked_step(step)
    finally:
        ckpt.close()


def load_generator(workdir: str | Path, step: int | None = None,
                   mesh: jax.sharding.Mesh | None = None
                   ) -> tuple[ml_collections.ConfigDict, Any, dict]:
    """The EMA generator of a run: ``(config, Generator module, variables)`` where
    ``variables = {'params': EMA params, 'stats': {'w_avg': ...}}``, replicated on ``mesh``
    (default: all devices). ``step`` is a checkpoint's image count (default: the latest, see
    :func:`resolve_step`). Works for checkpoints written on any device count."""
    from stylegan_jax import parallel, training
    from stylegan_jax.models import build_networks

    step = resolve_step(workdir, step)
    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        meta = ckpt.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        G, D = build_networks(config)
        abstract = training.abstract_train_state(config, G, D, training.make_optimizer(config),
                                                 mesh or parallel.make_mesh())
        state, _ = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    return config, G, {"params": state.g_ema_params, "stats": {"w_avg": state.w_avg}}
