"""Errors that are the user's to fix (a flag, a config field, a path), not bugs.

Library code raises these with a message that names the file, field or flag and says what
would work; ``stylegan_jax.cli.main`` prints that one line (no traceback) and exits with
status 2 (:class:`UsageError`) or 3 (:class:`RunError`). Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(Exception):
    """The request cannot be done as given; the message says which input and why."""


class RunError(RuntimeError):
    """A run's files cannot be used or the run cannot go on (no intact checkpoint, a workdir
    locked by another process, a diverged run): the CLI prints one line and exits 3, no
    traceback."""


class ConfigError(UsageError):
    """A config file or ``--config.field`` override is missing, broken or out of range."""


def require_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a ``Path``; raises ``UsageError`` if it exists and is not a directory
    (a directory that does not exist yet is fine: it will be created)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a directory")
    return path
