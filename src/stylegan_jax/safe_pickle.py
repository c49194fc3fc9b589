"""The one restricted unpickler: every pickle the project reads goes through here.

A pickle names the globals it needs (``module.name``) and ``pickle`` imports and calls them,
so a crafted file runs arbitrary code (``os.system`` via ``__reduce__``). A
:class:`RestrictedUnpickler` resolves only the globals its caller allows, each mapped to an
object the caller chose (often a harmless stand-in), and refuses any other with
:class:`UnsafePickleError` naming the global and the file. :data:`NUMPY_GLOBALS` holds the
array, dtype and scalar reconstructors numpy writes, under both its 1.x (``numpy.core``) and
2.x (``numpy._core``) module names, so pickles from either numpy load.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

_multiarray = (getattr(np, "_core", None) or np.core).multiarray
_numeric = (getattr(np, "_core", None) or np.core).numeric


class UnsafePickleError(ValueError):
    """A pickle names a global that the reader does not allow, or is not a pickle at all."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 bytes, as Python 2 pickles write them
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = _multiarray.scalar
        if hasattr(_numeric, "_frombuffer"):  # protocol-5 arrays
            allowed[(f"{package}.numeric", "_frombuffer")] = _numeric._frombuffer
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool_"):
        allowed[("numpy", name)] = getattr(np, name)
    allowed[("numpy.dtypes", "Float32DType")] = type(np.dtype("float32"))
    return allowed


NUMPY_GLOBALS: Mapping[tuple[str, str], Any] = _numpy_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles with only the ``allowed`` globals; ``source`` names the file in errors."""

    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any], *,
                 source: str | os.PathLike, what: str = "pickle",
                 persistent_load: Callable[[Any], Any] | None = None,
                 encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._allowed, self._source, self._what = allowed, os.fspath(source), what
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing {module}.{name} in a {self._what}; this reader only "
                "builds plain data and never runs code from a file") from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError(f"{self._source}: unexpected persistent id in a {self._what}")
        return self._persistent(pid)


def load(file: IO[bytes], allowed: Mapping[tuple[str, str], Any] = NUMPY_GLOBALS, *,
         source: str | os.PathLike, what: str = "pickle",
         persistent_load: Callable[[Any], Any] | None = None, encoding: str = "ASCII") -> Any:
    """Reads one pickle from ``file`` with only ``allowed`` globals (default: numpy's).
    ``encoding`` decodes Python 2 ``str`` objects (``'latin1'`` for Python 2 numpy arrays)."""
    try:
        return RestrictedUnpickler(file, allowed, source=source, what=what,
                                   persistent_load=persistent_load, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError) as e:
        raise UnsafePickleError(f"{os.fspath(source)}: not a readable {what} ({e})") from None


def loads(data: bytes, allowed: Mapping[tuple[str, str], Any] = NUMPY_GLOBALS, *,
          source: str | os.PathLike, what: str = "pickle") -> Any:
    """:func:`load` from bytes."""
    return load(io.BytesIO(data), allowed, source=source, what=what)
