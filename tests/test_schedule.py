"""The progressive-growing schedule against the official FFHQ-1024 timeline (8 GPUs)."""

import pytest

from stylegan_jax.config import paper_config
from stylegan_jax.schedule import ema_beta, training_schedule

SCHED = paper_config(1024).sched

# (kimg, resolution, fade, minibatch, lr, tick_kimg) read off the reference's timeline table:
# 0-600 stable 8 (mb 256), then each resolution fades in over 600 kimg and trains 600 more.
TIMELINE = [
    (0, 8, 0.0, 256, 0.001, 140), (599, 8, 0.0, 256, 0.001, 140),
    (900, 16, 0.5, 128, 0.001, 120), (1500, 16, 0.0, 128, 0.001, 120),
    (2100, 32, 0.5, 64, 0.001, 100), (2700, 32, 0.0, 64, 0.001, 100),
    (3300, 64, 0.5, 32, 0.001, 80), (3900, 64, 0.0, 32, 0.001, 80),
    (4500, 128, 0.5, 32, 0.0015, 60), (5100, 128, 0.0, 32, 0.0015, 60),
    (5700, 256, 0.5, 32, 0.002, 40), (6300, 256, 0.0, 32, 0.002, 40),
    (6900, 512, 0.5, 32, 0.003, 30), (7500, 512, 0.0, 32, 0.003, 30),
    (8100, 1024, 0.5, 32, 0.003, 20), (8400, 1024, 0.0, 32, 0.003, 20),
    (25000, 1024, 0.0, 32, 0.003, 20),
]


@pytest.mark.parametrize("kimg,resolution,fade,minibatch,lr,tick", TIMELINE)
def test_official_ffhq_1024_timeline(kimg, resolution, fade, minibatch, lr, tick):
    phase = training_schedule(kimg * 1000, SCHED, 1024, num_devices=8)
    assert phase.resolution == resolution
    assert phase.fade == pytest.approx(fade)
    assert phase.minibatch == minibatch
    assert phase.G_lrate == pytest.approx(lr) and phase.D_lrate == pytest.approx(lr)
    assert phase.tick_kimg == tick


def test_fade_runs_linearly_from_old_to_new():
    fades = [training_schedule(k * 1000, SCHED, 1024).fade for k in (600, 750, 1050, 1199.999)]
    assert fades[0] == 0.0  # at 600 kimg the 16x16 fade-in starts: lod 7 -> still 8x8
    assert [round(f, 4) for f in fades[1:]] == [0.75, 0.25, 0.0]
    assert training_schedule(600_001, SCHED, 1024).resolution == 16


def test_phase_key_changes_at_every_fade_and_stable_start():
    keys = {training_schedule(k * 1000, SCHED, 1024).key for k in range(0, 25_000, 50)}
    # lod 7 (8x8), then (6,7) fade, 6, (5,6), ... down to 0: 8 stable + 7 fade phases
    assert len(keys) == 15


def test_256_config_and_device_rounding():
    sched = paper_config(256).sched
    phase = training_schedule(5700 * 1000, sched, 256, num_devices=8)
    assert (phase.resolution, phase.fade, phase.lod) == (256, pytest.approx(0.5), 0.5)
    assert training_schedule(6000 * 1000, sched, 256).lod == 0.0
    assert training_schedule(0, sched, 256, num_devices=3).minibatch == 255
    with pytest.raises(ValueError, match="minibatch"):
        training_schedule(10**7, sched, 256, num_devices=64)


def test_ema_beta_is_official_half_life():
    assert ema_beta(32, 10.0) == pytest.approx(0.99778, abs=1e-5)
    assert ema_beta(512, 10.0) == pytest.approx(0.96513, abs=1e-5)
    assert ema_beta(32, 0.0) == 0.0


def test_lrate_rampdown_decays_linearly_to_zero_at_total_kimg():
    sched = paper_config(32).sched
    sched.update(dict(lod_initial_resolution=32, minibatch_dict={}, G_lrate_dict={},
                      D_lrate_dict={}, G_lrate_base=0.003, D_lrate_base=0.002,
                      lrate_rampdown_kimg=30.0))
    phases = [training_schedule(k * 1000, sched, 32, total_kimg=90.0) for k in (0, 60, 75, 90, 95)]
    assert [p.G_lrate for p in phases] == pytest.approx([0.003, 0.003, 0.0015, 0, 0])
    assert [p.D_lrate for p in phases] == pytest.approx([0.002, 0.002, 0.001, 0, 0])
    with pytest.raises(ValueError, match="total_kimg"):
        training_schedule(0, sched, 32)
    sched.lrate_rampdown_kimg = 0.0  # official: constant rates, no total_kimg needed
    assert training_schedule(89_000, sched, 32).G_lrate == 0.003
