"""Run logs without TensorFlow: scalars as JSON lines and TensorBoard events (tensorboardX),
image grids as PNG and TensorBoard images. Only process 0 writes; other processes get a writer
that does nothing, so callers need no ``if`` around logging.

Images are encoded on a background thread (an 8x8 grid at 1024 is an 8192x8192 PNG, seconds of
zlib on the main thread otherwise), and TensorBoard gets a box-downscaled copy.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
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


def downscale_for_tensorboard(image: np.ndarray, max_side: int) -> np.ndarray:
    """A uint8 HWC image box-reduced by the smallest integer factor that brings its longer
    side to at most ``max_side`` (unchanged if it already fits)."""
    factor = -(-max(image.shape[:2]) // max_side)
    if factor <= 1:
        return image
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    small = np.asarray(pil.reduce(factor))  # box average; a partial last block is averaged too
    return small[..., None] if small.ndim == 2 else small

class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted, so
    a notebook or test that replaces ``sys.stderr`` later never gets a stale, closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Shows this package's log records (INFO and up) on stderr, one line each.

    ``logging.basicConfig`` is not enough: importing absl (through Orbax) already gives the
    root logger a handler, which makes ``basicConfig`` a no-op and leaves the root at WARNING,
    so INFO lines such as "resuming from ..." never showed. Other libraries keep their
    levels (Orbax's INFO chatter stays hidden)."""
    package = logging.getLogger("stylegan_jax")
    if not any(getattr(h, "_stylegan_jax", False) for h in package.handlers):
        handler = _StderrHandler()
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
    TensorBoard (its ``purge_step``).

    ``image`` returns at once: PNG and TensorBoard encoding run on one background thread, one
    image at a time (a new image waits for the previous one, bounding memory). ``flush`` does
    not wait for it (it re-raises its error if it has failed); ``close`` waits. TensorBoard
    images are downscaled to at most ``tb_image_max_side`` pixels per side; the PNG keeps full
    resolution.
    """

    def __init__(self, workdir: str | Path, enabled: bool = True,
                 resume_nimg: int | None = None, tb_image_max_side: int = 2048):
        self.workdir = Path(workdir)
        self.enabled = enabled
        self.tb_image_max_side = tb_image_max_side
        self._tb = None
        self._jsonl = None
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="png") if enabled else None
        self._pending: Future | None = None
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
        """A uint8 HWC image to TensorBoard (downscaled) and, if ``path`` is given, to a PNG
        file, encoded in the background (the caller must not modify ``image`` afterwards)."""
        if not self.enabled:
            return
        self._check(wait=True)

        def encode() -> None:
            if path is not None:
                save_png(path, image)
            small = downscale_for_tensorboard(image, self.tb_image_max_side)
            self._tb.add_image(tag, small, step, dataformats="HWC")

        self._pending = self._encoder.submit(encode)

    def _check(self, wait: bool) -> None:
        """Re-raises the error of the image being encoded once it is done (waiting if asked)."""
        pending = self._pending
        if pending is not None and (wait or pending.done()):
            self._pending = None
            pending.result()

    def flush(self) -> None:
        if self.enabled:
            self._check(wait=False)
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            try:
                self._check(wait=True)
            finally:
                self._encoder.shutdown()
                self._tb.close()
                self._jsonl.close()
