"""Run logs without TensorFlow: scalars as JSON lines and TensorBoard events (tensorboardX),
image grids as PNG and TensorBoard images. Only process 0 writes; other processes get a writer
that does nothing, so callers need no ``if`` around logging.
"""

from __future__ import annotations

import json
import logging
import os
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


def configure_logging(level: int = logging.INFO) -> None:
    """Shows this package's log records (INFO and up) on stderr, one line each.

    ``logging.basicConfig`` is not enough: importing absl (through Orbax) already gives the
    root logger a handler, which makes ``basicConfig`` a no-op and leaves the root at WARNING,
    so INFO lines such as "resuming from ..." never showed. Other libraries keep their
    levels (Orbax's INFO chatter stays hidden)."""
    package = logging.getLogger("stylegan_jax")
    if not any(getattr(h, "_stylegan_jax", False) for h in package.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler._stylegan_jax = True
        package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False


def truncate_records(path: str | Path, last_nimg: int) -> int:
    """Drops the JSON lines of ``path`` past ``last_nimg`` images (and torn lines), so a
    resumed run does not log the lost part of its last tick twice; returns how many."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["nimg"] <= last_nimg:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass
    if len(kept) != len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    return len(lines) - len(kept)


class RunWriter:
    """``metrics.jsonl`` + TensorBoard events in ``workdir``; inert when ``enabled`` is False.

    ``resume_nimg``: the position a run (re)starts from (0 for a fresh start); records logged
    past it by an interrupted run are dropped from ``metrics.jsonl`` and hidden from
    TensorBoard (its ``purge_step``)."""

    def __init__(self, workdir: str | Path, enabled: bool = True,
                 resume_nimg: int | None = None):
        self.workdir = Path(workdir)
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter

            self.workdir.mkdir(parents=True, exist_ok=True)
            jsonl = self.workdir / "metrics.jsonl"
            if resume_nimg is not None and (dropped := truncate_records(jsonl, resume_nimg)):
                logging.getLogger(__name__).info(
                    "dropped %d log records past %d images from %s", dropped, resume_nimg, jsonl)
            self._tb = SummaryWriter(str(self.workdir / "tensorboard"),
                                     purge_step=None if resume_nimg is None else resume_nimg + 1)
            self._jsonl = open(jsonl, "a")  # noqa: SIM115

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
