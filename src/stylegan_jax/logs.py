"""Run logs without TensorFlow: scalars as JSON lines and TensorBoard events (tensorboardX),
image grids as PNG and TensorBoard images. Only process 0 writes; other processes get a writer
that does nothing, so callers need no ``if`` around logging.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """[N, H, W, C] -> one [rows*H, columns*W, C] image (N padded with black cells)."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    padded = np.zeros((rows * columns, h, w, c), images.dtype)
    padded[:n] = images
    return padded.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(
        rows * h, columns * w, c)


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Writes a uint8 HWC image atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(tmp)
    tmp.replace(path)


class RunWriter:
    """``metrics.jsonl`` + TensorBoard events in ``workdir``; inert when ``enabled`` is False."""

    def __init__(self, workdir: str | Path, enabled: bool = True):
        self.workdir = Path(workdir)
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter

            self.workdir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(self.workdir / "tensorboard"))
            self._jsonl = open(self.workdir / "metrics.jsonl", "a")  # noqa: SIM115

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One JSON line ``{"nimg": step, "time": ..., **values}`` and TensorBoard scalars."""
        if not self.enabled:
            return
        record = {"nimg": step, "time": time.time(), **{k: float(v) for k, v in values.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for key, value in values.items():
            self._tb.add_scalar(key, float(value), step)

    def image(self, step: int, tag: str, image: np.ndarray, path: str | Path | None = None
              ) -> None:
        """A uint8 HWC image to TensorBoard and, if ``path`` is given, to a PNG file."""
        if not self.enabled:
            return
        if path is not None:
            save_png(path, image)
        self._tb.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()
