"""JAX's persistent compilation cache, so that a resumed run (or a second run of the same
config) loads its per-phase training iterations from disk instead of recompiling them."""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "STYLEGAN_JAX_COMPILE_CACHE"


def enable_compilation_cache(workdir: str | os.PathLike) -> Path | None:
    """Turns on the persistent compilation cache and returns its directory (None: off).

    The directory is ``$STYLEGAN_JAX_COMPILE_CACHE`` if set (``off`` disables the cache), else
    one already configured through JAX (``JAX_COMPILATION_CACHE_DIR``), else
    ``<workdir>/compile_cache``. Programs that compile in under a second are not cached (JAX's
    default threshold). Call it before the first compilation: JAX fixes the cache directory
    when it first compiles.
    """
    setting = os.environ.get(ENV, "")
    if setting.lower() == "off":
        return None
    configured = jax.config.jax_compilation_cache_dir
    path = Path(setting or configured or Path(workdir) / "compile_cache")
    if not configured or setting:
        jax.config.update("jax_compilation_cache_dir", os.fspath(path))
    return path
