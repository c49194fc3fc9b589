"""Run logs: background image encoding and the downscaled TensorBoard copy."""

import threading

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import logs


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
