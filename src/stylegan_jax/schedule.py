"""Progressive-growing schedule: resolution, fade, minibatch, learning rates and tick length as
functions of the number of real images shown, exactly as the official ``training_schedule``.

``lod`` counts halvings below the full resolution. Each phase lasts ``lod_training_kimg``
(stable) plus ``lod_transition_kimg`` (fade-in of the next resolution). The *current*
resolution is ``2 ** (log2(R) - floor(lod))``, so a new resolution is already used during its
own fade-in, and ``fade = frac(lod)`` is the weight of the previous resolution's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_collections


@dataclass(frozen=True)
class Phase:
    """Everything the training loop needs for one point of the schedule."""

    kimg: float
    lod: float
    resolution: int
    fade: float
    minibatch: int
    G_lrate: float
    D_lrate: float
    tick_kimg: float

    @property
    def key(self) -> tuple[int, int]:
        """(floor(lod), ceil(lod)): the official trigger for resetting Adam when it changes."""
        return math.floor(self.lod), math.ceil(self.lod)


def _lookup(table: dict, resolution: int, default):
    """Per-resolution override from a dict keyed by resolution (int or str keys)."""
    for key, value in table.items():
        if int(key) == resolution:
            return value
    return default


def training_schedule(cur_nimg: int, sched: ml_collections.ConfigDict, resolution: int,
                      num_devices: int = 1, total_kimg: float | None = None) -> Phase:
    """The official schedule at ``cur_nimg`` images for a network of ``resolution``.

    ``sched`` holds the official ``training_schedule`` kwargs: ``lod_initial_resolution``,
    ``lod_training_kimg``, ``lod_transition_kimg``, ``minibatch_base``, ``minibatch_dict``,
    ``G_lrate_base``/``G_lrate_dict``, ``D_lrate_base``/``D_lrate_dict``, ``lrate_rampup_kimg``,
    ``tick_kimg_base``/``tick_kimg_dict``. The global minibatch is rounded down to a multiple of
    ``num_devices`` (the official code does this for its GPU count).

    Not official: ``sched.lrate_rampdown_kimg`` > 0 decays both learning rates linearly to 0
    over the last that many thousand images before ``total_kimg`` (which it then needs; a run
    resumed with a larger ``total_kimg`` moves the ramp); the official schedule keeps them
    constant (0, the default).
    """
    res_log2 = int(math.log2(resolution))
    kimg = cur_nimg / 1000.0
    phase_dur = sched.lod_training_kimg + sched.lod_transition_kimg
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = res_log2 - math.floor(math.log2(sched.lod_initial_resolution)) - phase_idx
    if sched.lod_transition_kimg > 0:
        lod -= max(phase_kimg - sched.lod_training_kimg, 0.0) / sched.lod_transition_kimg
    lod = max(lod, 0.0)
    cur_res = 2 ** (res_log2 - int(math.floor(lod)))
    minibatch = int(_lookup(sched.minibatch_dict, cur_res, sched.minibatch_base))
    minibatch -= minibatch % num_devices
    if minibatch <= 0:
        raise ValueError(f"minibatch at {cur_res}x{cur_res} is smaller than the {num_devices} "
                         "devices; raise config.sched.minibatch_base/minibatch_dict")
    g_lrate = float(_lookup(sched.G_lrate_dict, cur_res, sched.G_lrate_base))
    d_lrate = float(_lookup(sched.D_lrate_dict, cur_res, sched.D_lrate_base))
    if sched.lrate_rampup_kimg > 0:
        rampup = min(kimg / sched.lrate_rampup_kimg, 1.0)
        g_lrate, d_lrate = g_lrate * rampup, d_lrate * rampup
    rampdown_kimg = sched.get("lrate_rampdown_kimg", 0.0)
    if rampdown_kimg > 0:
        if total_kimg is None:
            raise ValueError("sched.lrate_rampdown_kimg needs the run's total_kimg")
        rampdown = min(max((total_kimg - kimg) / rampdown_kimg, 0.0), 1.0)
        g_lrate, d_lrate = g_lrate * rampdown, d_lrate * rampdown
    tick_kimg = float(_lookup(sched.tick_kimg_dict, cur_res, sched.tick_kimg_base))
    return Phase(kimg=kimg, lod=lod, resolution=cur_res, fade=lod - math.floor(lod),
                 minibatch=minibatch, G_lrate=g_lrate, D_lrate=d_lrate, tick_kimg=tick_kimg)


def ema_beta(minibatch: int, G_smoothing_kimg: float) -> float:
    """Official G EMA decay per step: half-life of ``G_smoothing_kimg`` thousand images."""
    return 0.5 ** (minibatch / (G_smoothing_kimg * 1000.0)) if G_smoothing_kimg > 0 else 0.0


def full_resolution_kimg(config: ml_collections.ConfigDict) -> float:
    """The first kimg of the full-resolution stable phase (lod 0) of ``config``'s schedule:
    the official ``resume_kimg`` at which fine-tuning a finished network starts."""
    sched = config.sched
    phases = int(math.log2(config.resolution)) - int(math.log2(sched.lod_initial_resolution))
    return max(phases, 0) * (sched.lod_training_kimg + sched.lod_transition_kimg)


def phase_programs(config: ml_collections.ConfigDict, num_devices: int
                   ) -> list[tuple[int, int]]:
    """The distinct ``(resolution, minibatch)`` programs the training loop compiles over the
    config's schedule (one per phase resolution; fade is a traced argument)."""
    sched = config.sched
    phase_kimg = sched.lod_training_kimg + sched.lod_transition_kimg
    phases = int(math.log2(config.resolution)) - int(math.log2(sched.lod_initial_resolution))
    programs = []
    for p in range(phases + 1):
        for kimg in (p * phase_kimg, p * phase_kimg + sched.lod_training_kimg + 1e-3):
            phase = training_schedule(int(kimg * 1000), sched, config.resolution, num_devices)
            if (phase.resolution, phase.minibatch) not in programs:
                programs.append((phase.resolution, phase.minibatch))
    return programs
