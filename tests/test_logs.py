"""Run logs: a restarted run drops what it logged past its checkpoint; images are encoded in
the background, with a downscaled TensorBoard copy."""

import json
import threading

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import logs
from stylegan_jax.logs import RunWriter


def test_restart_drops_records_past_the_restored_position_and_torn_lines(tmp_path):
    lines = [json.dumps({"nimg": n, "loss/G": 1.0}) for n in (32, 64, 96, 128)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"nimg": 16')  # torn write
    writer = RunWriter(tmp_path, resume_nimg=64)
    writer.scalars(96, {"loss/G": 2.0})
    writer.close()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["nimg"], r["loss/G"]) for r in records] == [(32, 1.0), (64, 1.0), (96, 2.0)]


def test_a_fresh_start_over_an_unsaved_run_keeps_no_old_records(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"nimg": 32}) + "\n")
    RunWriter(tmp_path, resume_nimg=0).close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_downscale_for_tensorboard_is_a_box_average():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    small = logs.downscale_for_tensorboard(image, 16)  # factor 4
    expected = image.reshape(16, 4, 12, 4, 3).mean(axis=(1, 3))
    assert small.shape == (16, 12, 3)
    np.testing.assert_allclose(small, expected, atol=1)
    assert logs.downscale_for_tensorboard(image, 64) is image
    gray = logs.downscale_for_tensorboard(image[..., :1], 30)  # factor 3, rounded up
    assert gray.shape == (22, 16, 1)


def test_images_are_encoded_off_the_calling_thread(tmp_path, monkeypatch):
    threads = []
    save = logs.save_png

    def recording_save(path, image):
        threads.append(threading.current_thread())
        save(path, image)

    monkeypatch.setattr(logs, "save_png", recording_save)
    writer = logs.RunWriter(tmp_path, tb_image_max_side=8)
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    writer.image(1, "fakes", image, tmp_path / "grids" / "a.png")
    writer.image(2, "fakes", image, tmp_path / "grids" / "b.png")
    writer.close()
    assert threads and all(t is not threading.main_thread() for t in threads)
    for name in ("a.png", "b.png"):  # full resolution on disk
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grids" / name)), image)


def test_background_errors_surface_on_close(tmp_path):
    writer = logs.RunWriter(tmp_path)
    (tmp_path / "blocked").write_text("a file where a directory should be")
    writer.image(1, "fakes", np.zeros((4, 4, 3), np.uint8), tmp_path / "blocked" / "x.png")
    with pytest.raises(OSError):
        writer.close()
