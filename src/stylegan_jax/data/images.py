"""Reading source images: folder or zip listing, decoding to RGB uint8, and resizing.

Everything here is numpy + Pillow (no TensorFlow). Pillow releases the GIL while decoding,
so the thread pools used by the builders scale with cores.
"""

from __future__ import annotations

import glob
import io
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
Fit = Literal["crop", "pad"]

# A truncated file must fail loudly, never decode to a partly grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_T = TypeVar("_T")
_R = TypeVar("_R")


class BadImageError(ValueError):
    """A source file that cannot become a training image; the message says why."""


class ImageSource:
    """The image files under a folder (recursive) or inside a zip archive, in sorted order.

    ``keys`` are POSIX paths relative to the folder (or zip members). Hidden files, macOS
    ``__MACOSX`` debris and files whose extension is not in ``extensions`` (e.g. a LICENSE,
    a JSON or a GIF next to the images) are not listed but recorded in ``ignored`` (path ->
    why), so that ``prepare`` can say what it left out. ``read`` is thread-safe.
    """

    def __init__(self, path: str | Path, extensions: Collection[str] = IMAGE_EXTENSIONS):
        self.path = Path(path).expanduser()
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()
        if self.path.is_dir():
            names = (p.relative_to(self.path).as_posix()
                     for p in self.path.rglob("*") if p.is_file())
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            names = (i.filename for i in self._zip.infolist() if not i.is_dir())
        elif self.path.exists():
            raise FileNotFoundError(f"{self.path} is neither a folder nor a zip archive")
        else:
            raise FileNotFoundError(f"source {self.path} does not exist")
        self.keys: list[str] = []
        self.ignored: dict[str, str] = {}
        for name in sorted(names):
            why = _why_not_image(name, extensions)
            if why is None:
                self.keys.append(name)
            else:
                self.ignored[name] = why

    def read(self, key: str) -> bytes:
        if self._zip is None:
            return (self.path / key).read_bytes()
        with self._lock:  # ZipFile shares one file handle between members
            return self._zip.read(key)


def _why_not_image(name: str, extensions: Collection[str]) -> str | None:
    """Why ``name`` is not listed as a source image (``None``: it is)."""
    parts = PurePosixPath(name).parts
    if "__MACOSX" in parts:
        return "macOS metadata"
    if any(p.startswith(".") for p in parts):
        return "hidden file"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in extensions:
        return (f"{suffix or 'no extension'}, not one of "
                f"{'/'.join(sorted(extensions))}")
    return None


def describe_files(files: Mapping[str, str], limit: int = 3) -> str:
    """``a.gif (why), b.txt (why) and 5 more``: the first ``limit`` files and a count."""
    shown = [f"{name} ({why})" for name, why in list(files.items())[:limit]]
    more = f" and {len(files) - limit} more" if len(files) > limit else ""
    return ", ".join(shown) + more


def decode_rgb(data: bytes) -> np.ndarray:
    """Decodes an image file fully into RGB uint8 ``[H, W, 3]``.

    Conversions: palette, grayscale and CMYK go through Pillow's RGB conversion; 16-bit
    grayscale (``I;16``/``I``) is rescaled from 0..65535 to 0..255 (Pillow's own conversion
    would clip it); alpha is composited over black, the same colour as ``pad`` borders.
    Raises ``BadImageError`` for anything Pillow cannot decode completely.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _to_rgb(img)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImageError(f"cannot decode: {e}") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = np.asarray(img, dtype=np.float64)
        gray = np.rint(np.clip(gray, 0, 65535) * (255 / 65535)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode == "F":
        raise BadImageError("floating-point images are not supported")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def fit_square(image: np.ndarray, resolution: int, fit: Fit) -> np.ndarray:
    """Makes an RGB image square (``crop``: central square; ``pad``: centred on black) and
    resizes it to ``resolution`` with Pillow's antialiased Lanczos filter."""
    h, w = image.shape[:2]
    if fit == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top:top + side, left:left + side]
    elif fit == "pad":
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top:top + h, left:left + w] = image
    else:
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    if side == resolution:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(square).resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def ordered_map(fn: Callable[[_T], _R], items: Iterable[_T], workers: int,
                window: int | None = None) -> Iterator[_R]:
    """``map(fn, items)`` on a thread pool, in order, with at most ``window`` results in
    flight (bounded memory, unlike ``Executor.map`` which submits everything at once)."""
    window = window or 4 * workers
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        for future in pending:
            yield future.result()


def list_image_files(spec: str | Path) -> list[Path]:
    """``FILE``, ``DIR`` (its image files, recursively, sorted, hidden files skipped) or a
    glob (``'photos/*.jpg'``) -> image paths; ``FileNotFoundError`` naming ``spec`` if none."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [path / key for key in ImageSource(path).keys]
    else:
        found = sorted(p for p in map(Path, glob.glob(str(path), recursive=True))
                       if p.is_file() and _why_not_image(p.name, IMAGE_EXTENSIONS) is None)
    if not found:
        raise FileNotFoundError(f"{spec}: no {'/'.join(sorted(IMAGE_EXTENSIONS))} image there")
    return found


GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})


def read_target(path: str | Path, resolution: int, channels: int, *,
                grey_to_rgb: bool = False) -> np.ndarray:
    """One image file as a target for a ``resolution`` x ``resolution`` model with
    ``channels`` (1 or 3): decoded as :func:`decode_rgb` does, centre-cropped and resized as
    ``prepare --fit crop`` (:func:`fit_square`), uint8 ``[r, r, channels]``. A greyscale file
    for an RGB model is refused unless ``grey_to_rgb`` (then replicated, as ``prepare``
    does); a colour file for a greyscale model is refused. Errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
        image = decode_rgb(data)
        with Image.open(io.BytesIO(data)) as img:
            grey = img.mode in GREY_MODES
    except (BadImageError, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise BadImageError(f"{path}: {reason}") from None
    if channels == 3 and grey and not grey_to_rgb:
        raise BadImageError(f"{path}: a greyscale image, but the model makes RGB images; "
                            "convert it, or allow it to be replicated to RGB (grey_to_rgb)")
    if channels == 1 and not grey:
        raise BadImageError(f"{path}: a colour image, but the model makes greyscale images")
    square = fit_square(image, resolution, "crop")
    return square[..., :1] if channels == 1 else square
