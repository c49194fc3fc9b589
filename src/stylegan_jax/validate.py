"""Range checks of every numeric config field, run before a command writes anything.

A value outside its range must not silently mean something else (``total_kimg=-1`` used to
finish at once and rewrite ``config.json``; a zero learning rate trains nothing). The rules
are one table, :data:`RULES`, so a new field gets its range next to the others. Fields a
config does not have are skipped (experiment files may drop what they do not use).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from stylegan_jax.errors import ConfigError

Check = Callable[[Any], str | None]  # a value -> why it is wrong, or None
_MISSING = object()


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int, hi: int | None = None, *, optional: bool = False) -> Check:
    """An int in ``[lo, hi]`` (``None`` allowed if ``optional``)."""
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            return "must be an integer"
        if v < lo or (hi is not None and v > hi):
            return f"must be >= {lo}" if hi is None else f"must be in [{lo}, {hi}]"
        return None
    return check


def real(lo: float, hi: float | None = None, *, lo_open: bool = False,
         hi_open: bool = False, optional: bool = False) -> Check:
    """A finite number in the interval ``lo..hi`` (open ends where asked)."""
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if not _is_real(v):
            return "must be a finite number"
        if (v <= lo if lo_open else v < lo) or (
                hi is not None and (v >= hi if hi_open else v > hi)):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            if hi is None:
                return f"must be {'>' if lo_open else '>='} {lo:g}"
            return f"must be in {left}{lo:g}, {hi:g}{right}"
        return None
    return check


def power_of_two(lo: int = 4) -> Check:
    """A power of two ``>= lo`` (image resolutions)."""
    def check(v: Any) -> str | None:
        if (not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < lo
                or v & (v - 1)):
            return f"must be a power of two >= {lo}"
        return None
    return check


def one_of(*options: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}"
    return check


def metric_names(v: Any) -> str | None:
    """A list of metric names registered in :mod:`stylegan_jax.metrics.registry`."""
    from stylegan_jax.metrics import registry

    if isinstance(v, str) or not isinstance(v, (list, tuple)):
        return "must be a list of metric names, e.g. ('fid50k',)"
    try:
        registry.check_names(list(v))
    except ValueError as e:
        return f"holds an {e}"
    return None


def per_resolution(value_check: Check) -> Check:
    """A ``{resolution: value}`` dict (the schedule's ``*_dict`` fields, keys as strings)."""
    def check(v: Any) -> str | None:
        if not isinstance(v, (Mapping, ml_collections.ConfigDict)):
            return "must be a dict {resolution: value}"
        for key, value in v.items():
            if not str(key).isdigit() or power_of_two(4)(int(key)) is not None:
                return f"has key {key!r}, not a power-of-two resolution"
            why = value_check(value)
            if why is not None:
                return f"[{key!r}] {why} (got {value!r})"
        return None
    return check


POSITIVE, NONNEGATIVE = real(0, lo_open=True), real(0)
PROBABILITY = real(0, 1)
RULES: dict[str, Check] = {
    "resolution": power_of_two(4), "num_channels": integer(1), "label_size": integer(0),
    # Networks (official G_mapping / G_synthesis / D_basic kwargs).
    "G.latent_size": integer(1), "G.dlatent_size": integer(1), "G.mapping_layers": integer(0),
    "G.mapping_fmaps": integer(1), "G.mapping_lrmul": POSITIVE, "G.fmap_base": integer(1),
    "G.fmap_decay": NONNEGATIVE, "G.fmap_max": integer(1),
    "G.truncation_cutoff": integer(0, optional=True), "G.dlatent_avg_beta": PROBABILITY,
    "G.style_mixing_prob": PROBABILITY,
    "D.fmap_base": integer(1), "D.fmap_decay": NONNEGATIVE, "D.fmap_max": integer(1),
    "D.mbstd_group_size": integer(0), "D.mbstd_num_features": integer(1),
    # Data.
    "dataset.prefetch": integer(1), "dataset.workers": integer(1, optional=True),
    # Schedule (official training_schedule kwargs).
    "sched.lod_initial_resolution": power_of_two(4),
    "sched.lod_training_kimg": NONNEGATIVE, "sched.lod_transition_kimg": NONNEGATIVE,
    "sched.minibatch_base": integer(1), "sched.minibatch_dict": per_resolution(integer(1)),
    "sched.G_lrate_base": POSITIVE, "sched.G_lrate_dict": per_resolution(POSITIVE),
    "sched.D_lrate_base": POSITIVE, "sched.D_lrate_dict": per_resolution(POSITIVE),
    "sched.lrate_rampup_kimg": NONNEGATIVE, "sched.lrate_rampdown_kimg": NONNEGATIVE,
    "sched.tick_kimg_base": POSITIVE,
    "sched.tick_kimg_dict": per_resolution(POSITIVE),
    # Losses and optimiser.
    "loss.r1_gamma": NONNEGATIVE, "loss.wgan_lambda": NONNEGATIVE,
    "loss.wgan_epsilon": NONNEGATIVE, "loss.wgan_target": POSITIVE,
    "loss.r1_scaling": one_of("official", "native"),
    "opt.beta1": real(0, 1, hi_open=True), "opt.beta2": real(0, 1, hi_open=True),
    "opt.epsilon": POSITIVE,
    # Loop.
    "G_smoothing_kimg": NONNEGATIVE, "total_kimg": POSITIVE, "minibatch_repeats": integer(1),
    "max_nonfinite_steps": integer(1), "compute_dtype": one_of("float32", "bfloat16"),
    "resample_impl": one_of("fused", "reference"),
    "remat_resolution": integer(0), "layout_resolution": integer(0),
    "seed": integer(0, 2**32 - 1), "image_snapshot_ticks": integer(1),
    "checkpoint_ticks": integer(1), "keep_checkpoints": integer(1), "snapshot_kimg": POSITIVE,
    "grid_size": integer(1),
    "G.style_mixing_groups": integer(1),
    "metrics": metric_names, "metrics_every_kimg": NONNEGATIVE,
    "eval.batch_size": integer(1), "eval.inception_mode": one_of("nvidia", "pytorch_fid"),
    "eval.ppl_crop": one_of("auto", "on", "off"),
}


def _get(config: Any, path: str) -> Any:
    node = config
    for part in path.split("."):
        if not isinstance(node, (ml_collections.ConfigDict, Mapping)) or part not in node:
            return _MISSING
        node = node[part]
    return node


def problems(config: ml_collections.ConfigDict) -> list[str]:
    """Every field of ``config`` outside its range, as ``config.field must ... (got v)``."""
    found, bad = [], set()
    for path, check in RULES.items():
        value = _get(config, path)
        why = None if value is _MISSING else check(value)
        if why is not None:
            got = "" if isinstance(value, (Mapping, ml_collections.ConfigDict)) else \
                f" (got {value!r})"
            found.append(f"config.{path} {why}{got}")
            bad.add(path)
    resolution, initial = _get(config, "resolution"), _get(config, "sched.lod_initial_resolution")
    if (not bad & {"resolution", "sched.lod_initial_resolution"}
            and _MISSING not in (resolution, initial) and initial > resolution):
        found.append(f"config.sched.lod_initial_resolution ({initial}) must be <= "
                     f"config.resolution ({resolution})")
    return found


def check_phase_resolution(resolution: int, config: ml_collections.ConfigDict) -> int:
    """A training-phase resolution of ``config``'s networks (bench-train ``--resolution``)."""
    if power_of_two(4)(resolution) is not None or resolution > config.resolution:
        raise ConfigError(f"--resolution must be a power of two in [4, {config.resolution}] "
                          f"(config.resolution), got {resolution}")
    return resolution


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises one :class:`ConfigError` line listing every out-of-range field."""
    found = problems(config)
    if found:
        raise ConfigError("; ".join(found))
