"""Checkpoints: a small wrapper around Orbax's ``CheckpointManager``, stop signals, the workdir
lock and the checks that a checkpoint fits the config it is resumed with.

A checkpoint holds named pytree items (the training loop saves the train state without the EMA
generator as ``state`` and the EMA generator, ``{'params', 'w_avg'}``, as ``g_ema``, so that
sampling restores only that) and a JSON item ``meta`` (the loop position, the run's config and
a CRC32 of every saved array, verified on restore: Orbax has no checksums of its own). Its
"step" is the number of real images shown, so names sort by training progress. Orbax writes
each checkpoint to a temporary directory and renames it when complete, so a killed run never
leaves a partial checkpoint behind. We keep the latest ``keep`` checkpoints plus, permanently,
the first one saved in each ``snapshot_kimg`` interval, and the checkpoint with the lowest FID
among those saved with one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import sys
import threading
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from stylegan_jax.config import RETIRED_FIELDS
from stylegan_jax.errors import RunError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Config fields that define the networks' variables: a checkpoint only fits a config that
# agrees on all of them.
NETWORK_FIELDS = ("resolution", "num_channels", "label_size", "G", "D")
# Config fields that change what a run means: resuming with another value is refused unless
# the change is explicitly allowed (total_kimg, logging and data paths may change freely).
MEANING_FIELDS = ("seed", "dataset.name", "dataset.mirror_augment", "loss", "sched", "opt",
                  "minibatch_repeats", "G_smoothing_kimg", "compute_dtype",
                  "G.style_mixing_groups")
# Generator settings that only act in training (not on the variables), and their value in
# checkpoints written before they existed.
TRAINING_ONLY_G = {"style_mixing_groups": 1}
# A checkpoint's items: the EMA generator ({'params', 'w_avg'}), the rest of the train state
# (all of it in checkpoints written before G_EMA existed) and the JSON metadata.
G_EMA, STATE, META = "g_ema", "state", "meta"
ITEMS = (STATE, G_EMA)
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # Orbax's temporary checkpoint directories


@dataclasses.dataclass
class LoopPosition:
    """Where a run stands; what a checkpoint's ``meta['position']`` holds.

    ``step``: minibatch iterations done (it seeds each iteration's random numbers); ``nimg``:
    real images shown (the checkpoint's name, and where the input pipeline resumes);
    ``tick``: ticks completed; ``phase_key``: the schedule phase (``Phase.key``) of the last
    iteration, which decides whether the next one resets Adam; ``resolution``, ``fade``: that
    phase's resolution and fade, for sampling the network as it was trained.
    """

    step: int = 0
    nimg: int = 0
    tick: int = 0
    phase_key: tuple[int, int] | None = None
    resolution: int | None = None
    fade: float | None = None

    def to_meta(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict) -> LoopPosition:
        """From a checkpoint's meta; older checkpoints stored the counters at the top level
        and no resolution or fade."""
        saved = meta.get("position", meta)
        key = saved.get("phase_key")
        return cls(step=int(saved["step"]), nimg=int(saved["nimg"]), tick=int(saved["tick"]),
                   phase_key=tuple(key) if key is not None else None,
                   resolution=saved.get("resolution"), fade=saved.get("fade"))


class CheckpointError(RunError):
    """A checkpoint that cannot be restored or written; the message names it and the cause."""


class ConfigChangeError(ValueError):
    """Resuming with a config whose run-defining ``fields`` differ from the checkpoint's."""

    def __init__(self, message: str, fields: Sequence[str]):
        super().__init__(message)
        self.fields = list(fields)


class WorkdirLockedError(RunError):
    """Another process holds the workdir's lock."""


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


class LowestScore:
    """Orbax preservation policy: keep the checkpoint with the lowest ``score`` metric (the
    chosen training metric, negated when higher is better; ``fid`` in older runs)."""

    def should_preserve(self, checkpoints: Sequence[Any], *, context: Any) -> Sequence[bool]:
        fids = [(c.metrics or {}).get("score", (c.metrics or {}).get("fid"))
                for c in checkpoints]
        scored = [i for i, f in enumerate(fids) if f is not None]
        best = min(scored, key=lambda i: fids[i]) if scored else None
        return [i == best for i in range(len(checkpoints))]


def tree_checksums(tree: Any) -> dict[str, str]:
    """CRC32 of every array leaf's bytes, keyed by its path (``jax.tree_util.keystr``).

    Replicated arrays are read from this process's first shard, so it also works for arrays
    that span several hosts."""
    def host(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.ascontiguousarray(np.asarray(x))

    return {jax.tree_util.keystr(path): f"{zlib.crc32(host(leaf).tobytes()):08x}"
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _describe(e: BaseException, limit: int = 400) -> str:
    """One line for an exception from Orbax: errors come wrapped several deep, sometimes as a
    formatted traceback (whose last line is the error), and TensorStore appends its whole
    JSON spec."""
    while (e.__cause__ or e.__context__) is not None and not str(e).strip():
        e = e.__cause__ or e.__context__
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = (lines[-1] if lines[0].startswith("Traceback") else lines[0]) if lines else ""
    text = text.split(" [tensorstore_spec")[0]
    if not re.match(r"[A-Z_]+: ", text):  # TensorStore's messages start with a status code
        text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_disk_full(e: BaseException | None) -> bool:
    while e is not None:
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _is_closed_loop_noise(exc_type: type, exc: BaseException, tb: Any) -> bool:
    """``RuntimeError('Event loop is closed')`` raised in asyncio by a TensorStore read that
    completes after Orbax gave up on a broken checkpoint and closed its event loop."""
    frames = traceback.extract_tb(tb)
    return (exc_type is RuntimeError and str(exc) == "Event loop is closed"
            and any(f.name == "call_soon_threadsafe" for f in frames))


def _ignore_late_read_callbacks() -> None:
    """Keeps the late callbacks of a failed restore (one traceback per read still in flight,
    printed through ``sys.excepthook`` or ``sys.unraisablehook``) off the terminal; any other
    error still prints."""
    if getattr(sys.excepthook, "_stylegan_jax", False):
        return
    previous_except, previous_unraisable = sys.excepthook, sys.unraisablehook

    def excepthook(exc_type: type, exc: BaseException, tb: Any) -> None:
        if not _is_closed_loop_noise(exc_type, exc, tb):
            previous_except(exc_type, exc, tb)

    def unraisablehook(unraisable: Any) -> None:
        if not _is_closed_loop_noise(unraisable.exc_type, unraisable.exc_value,
                                     unraisable.exc_traceback):
            previous_unraisable(unraisable)

    excepthook._stylegan_jax = True
    sys.excepthook, sys.unraisablehook = excepthook, unraisablehook


class _OrbaxOrphanedReads(logging.Filter):
    """Drops asyncio's "Task (or Future) exception was never retrieved" for Orbax's array
    reads: after one read of a broken checkpoint fails, the others fail too but nobody awaits
    them, and asyncio logs each one (with a traceback) when it is collected, often at process
    exit, long after the restore reported its one-line error. A Task's traceback runs through
    Orbax; a TensorStore future's error comes from C++, without Python frames, and starts with
    a status code (``OUT_OF_RANGE: ...``). Any other asyncio error still logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(("Task exception was never retrieved",
                                           "Future exception was never retrieved")):
            return True
        exc, tb = record.exc_info[1:] if record.exc_info else (None, None)
        frames = traceback.extract_tb(tb)
        from_orbax = any("orbax" in f.filename or "tensorstore" in f.filename for f in frames)
        from_tensorstore = not frames and re.match(r"[A-Z_]+: ", str(exc)) is not None
        return not (from_orbax or from_tensorstore)


def _ignore_orphaned_reads() -> None:
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OrbaxOrphanedReads) for f in asyncio_log.filters):
        asyncio_log.addFilter(_OrbaxOrphanedReads())


def _join_orbax_writers(timeout: float = 60.0) -> None:
    """Waits for Orbax's writer threads (``_SignalingThread``: sharding files, metadata),
    which ``CheckpointManager.close`` does not join after a failed save."""
    for thread in threading.enumerate():
        if type(thread).__name__ == "_SignalingThread" and thread is not threading.current_thread():
            thread.join(timeout)


@contextlib.contextmanager
def _quiet_orbax_errors():
    """Orbax and asyncio log every failed read of a broken checkpoint as long tracebacks; the
    error that ends the restore is reported once by the caller instead."""
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio", "orbax")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class Checkpointer:
    """Saves and restores checkpoints under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | Path, keep: int = 3, snapshot_kimg: float = 1000.0,
                 async_save: bool = True, read_only: bool = False):
        self.directory = Path(workdir).absolute() / "checkpoints"
        self._in_flight: int | None = None  # the step of the save not yet known complete
        self._closed = False
        handlers = None
        if read_only:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            # Options a read-only manager would otherwise reset with a warning each.
            options = ocp.CheckpointManagerOptions(read_only=True, save_interval_steps=0,
                                                   create=False)
            # Known handlers let item_metadata() read checkpoints of any layout.
            handlers = {name: ocp.StandardCheckpointHandler() for name in ITEMS}
            handlers[META] = ocp.JsonCheckpointHandler()
        else:
            policy = checkpoint_managers.AnyPreservationPolicy([
                checkpoint_managers.LatestN(keep),
                FirstInEachInterval(max(int(snapshot_kimg * 1000), 1)), LowestScore()])
            # cleanup_tmp_directories: a save cut short by a kill leaves its temporary
            # directory; the workdir lock guarantees no other writer's save is in progress.
            options = ocp.CheckpointManagerOptions(
                preservation_policy=policy, enable_async_checkpointing=async_save,
                cleanup_tmp_directories=True)
        with _quiet_orbax_errors():  # a read-only manager warns that it is read-only
            self.manager = ocp.CheckpointManager(self.directory, options=options,
                                                 item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def path(self, step: int) -> Path:
        """The directory of checkpoint ``step``."""
        return self.directory / str(step)

    def items(self, step: int) -> set[str]:
        """The names of the items stored in checkpoint ``step``."""
        return {p.name for p in self.path(step).iterdir() if p.is_dir()}

    def item_metadata(self, step: int, name: str) -> Any:
        """The saved tree of item ``name`` of checkpoint ``step`` with Orbax's array metadata
        (``.shape``, ``.dtype``) as leaves; :class:`CheckpointError` if unreadable."""
        try:
            with _quiet_orbax_errors():
                saved = self.manager.item_metadata(step)[name]
        except Exception as e:
            raise CheckpointError(f"checkpoint {self.path(step)} is unreadable: "
                                  f"{_describe(e)}") from None
        return getattr(saved, "tree", saved)  # orbax's TreeMetadata wraps the tree

    def save(self, nimg: int, items: dict[str, Any], meta: dict,
             score: float | None = None) -> None:
        """Starts an (async) save of the pytrees ``items`` and ``meta`` (plus the items'
        checksums) as checkpoint ``nimg``; ``score`` (lower is better) ranks it for keeping
        the best one."""
        meta = {**meta, "checksums": {name: tree_checksums(tree)
                                      for name, tree in items.items()}}
        args = {name: ocp.args.StandardSave(tree) for name, tree in items.items()}
        self._in_flight = nimg
        with self._save_errors(nimg):
            self.manager.save(nimg, args=ocp.args.Composite(**args, meta=ocp.args.JsonSave(meta)),
                              force=True, metrics=None if score is None else {"score": score})

    def wait(self) -> None:
        """Waits for the save in flight; a failed one raises :class:`CheckpointError`."""
        if self._closed:
            return
        with self._save_errors(self._in_flight):
            self.manager.wait_until_finished()
        self._in_flight = None

    @contextlib.contextmanager
    def _save_errors(self, step: int):
        """Turns a failed save into one :class:`CheckpointError` line and removes the partial
        temporary directories it left (finished checkpoints are never touched)."""
        try:
            with _quiet_orbax_errors():
                yield
        except Exception as e:
            # Writer threads still in flight would recreate the temporary directory: stop them
            # all (the run ends with this error; the manager is not used again).
            with contextlib.suppress(Exception), _quiet_orbax_errors():
                self.manager.close()
                _join_orbax_writers()
            self._closed = True
            removed = self._remove_partial_saves()
            what = "the disk is full" if _is_disk_full(e) else _describe(e)
            raise CheckpointError(
                f"saving checkpoint {step} in {self.directory} failed: {what}; removed the partial "
                f"save ({', '.join(removed) or 'none left'}); the earlier checkpoints "
                f"{self.all_steps()} are intact") from None

    def _remove_partial_saves(self) -> list[str]:
        if jax.process_index() != 0 or not self.directory.is_dir():
            return []
        partial = [p for p in self.directory.iterdir() if TMP_SUFFIX in p.name]
        for p in partial:
            shutil.rmtree(p, ignore_errors=True)
        return [p.name for p in partial]

    def restore_meta(self, step: int) -> dict:
        """The ``meta`` item of checkpoint ``step``; :class:`CheckpointError` if unreadable."""
        return self.restore(step, {})[1]

    def restore(self, step: int, items: dict[str, Any]) -> tuple[dict[str, Any], dict]:
        """Restores the named items (``{name: abstract pytree}``, ``jax.ShapeDtypeStruct``s
        with shardings, so a checkpoint written on any device count loads onto the current
        mesh) and ``meta`` of checkpoint ``step``, and verifies the items' checksums.

        Any failure (missing, truncated or garbled files, a checksum mismatch) raises one
        :class:`CheckpointError` that names the checkpoint directory and what is wrong."""
        where = self.path(step)
        args = {name: ocp.args.StandardRestore(tree) for name, tree in items.items()}
        _ignore_late_read_callbacks()
        _ignore_orphaned_reads()
        try:
            with _quiet_orbax_errors():
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    **args, meta=ocp.args.JsonRestore()))
        except Exception as e:
            raise CheckpointError(f"checkpoint {where} is unreadable: {_describe(e)}") from None
        meta = restored[META]
        if not isinstance(meta, dict) or "config" not in meta:
            raise CheckpointError(f"checkpoint {where} is unreadable: its meta item is not "
                                  "a dict with the run's config")
        out = {name: restored[name] for name in items}
        for name, tree in out.items():
            expected = meta.get("checksums", {}).get(name)
            if expected is None:  # written before checksums were stored
                continue
            bad = [k for k, v in tree_checksums(tree).items() if expected.get(k) != v]
            if bad:
                raise CheckpointError(f"checkpoint {where} is corrupt: the checksum of "
                                      f"{name}{bad[0]} (and {len(bad) - 1} more arrays) "
                                      "does not match what was saved")
        return out, meta

    def restore_newest_intact(self, restore: Callable[[int], T]) -> tuple[int, T]:
        """``(step, restore(step))`` for the newest checkpoint that ``restore`` reads without a
        :class:`CheckpointError`, saying which broken ones were passed over (they are kept
        for inspection). Raises one error listing them all if none is intact."""
        broken = []
        for step in reversed(self.all_steps()):
            try:
                result = restore(step)
            except CheckpointError as e:
                log.warning("%s; trying the next older checkpoint", e)
                broken.append(str(e))
                continue
            if broken:
                log.warning("resuming from the older checkpoint %s; the newer broken ones "
                            "are left in place", self.path(step))
            return step, result
        raise CheckpointError("no intact checkpoint to resume from: " + "; ".join(broken))

    def reached_preemption(self, step: int) -> bool:
        """True when a multi-process run (``jax.distributed``) agreed to stop at ``step``."""
        return jax.process_count() > 1 and self.manager.reached_preemption(step)

    def close(self) -> None:
        if not self._closed:
            self.manager.close()
            self._closed = True

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


def _differences(saved: Any, current: Any, path: str) -> Iterable[tuple[str, Any, Any]]:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            yield from _differences(saved.get(key, "<missing>"), current.get(key, "<missing>"),
                                    f"{path}.{key}")
    elif saved != current:
        yield path, saved, current


def _field(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part, "<missing>") if isinstance(tree, dict) else "<missing>"
    return tree


def config_differences(saved: dict, config: ml_collections.ConfigDict, fields: Sequence[str]
                       ) -> list[tuple[str, Any, Any]]:
    """``(dotted field, saved value, current value)`` for every leaf of ``fields`` that differs
    between a saved config (dict) and ``config``."""
    current = config.to_dict()
    return [diff for field in fields
            for diff in _differences(_field(saved, field), _field(current, field), field)
            if diff[0] not in RETIRED_FIELDS]


def network_mismatches(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
    """Human-readable differences between a saved config (dict) and ``config`` in the fields
    that define the networks' variables."""
    return [f"config.{path} is {a!r} in the checkpoint but {b!r} now"
            for path, a, b in config_differences(saved, config, NETWORK_FIELDS)
            if path.removeprefix("G.") not in TRAINING_ONLY_G]


def check_resumable(saved: dict, config: ml_collections.ConfigDict, where: str,
                    allow: Sequence[str] = ()) -> None:
    """Refuses to resume checkpoint ``where`` (its config ``saved``) with ``config`` if the
    networks differ (``ValueError``), or if a field that changes the run's meaning
    (:data:`MEANING_FIELDS`) differs and is not covered by ``allow`` (dotted field names or
    prefixes, e.g. ``seed``, ``sched``; :class:`ConfigChangeError`)."""
    if isinstance(saved.get("G"), dict):
        saved = {**saved, "G": {**TRAINING_ONLY_G, **saved["G"]}}
    problems = network_mismatches(saved, config)
    if problems:
        raise ValueError(f"{where} holds a checkpoint of a different network:\n  "
                         + "\n  ".join(problems)
                         + "\nUse another workdir, or the config the run was started with.")
    changed = [(path, a, b) for path, a, b in config_differences(saved, config, MEANING_FIELDS)
               if not any(path == f or path.startswith(f + ".") for f in allow)]
    if changed:
        raise ConfigChangeError(
            f"{where} was trained with another config: "
            + "; ".join(f"config.{p} is {a!r} in the checkpoint but {b!r} now"
                        for p, a, b in changed)
            + ". Resume with the run's config, or allow the change of "
            + ",".join(p for p, _, _ in changed), [p for p, _, _ in changed])


class WorkdirLock:
    """An exclusive ``fcntl.flock`` on ``WORKDIR/lock`` for the whole run, so two ``train``
    processes never write one workdir. The kernel drops the lock when its process dies, so a
    killed run never leaves a stale lock; the file keeps the holder's pid for the message."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / "lock"
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkdirLockedError(
                f"{self.path.parent} is in use by another training process (pid {holder}); "
                "wait for it to finish or stop it, or use another workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
