"""Loading an experiment config file (``--config FILE``) and checking its overrides.

Done here rather than by ``ml_collections.config_flags.DEFINE_config_file``, which defers a
missing file, a syntax error or a missing ``get_config`` to the first attribute access and
reports them as tracebacks. Every problem becomes one :class:`~stylegan_jax.errors.ConfigError`
line naming the file (and line) or the field, with a "did you mean" for misspelt fields.
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.util
import re
import traceback
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from stylegan_jax.errors import ConfigError

_CONFIG_ARG = re.compile(r"^--?config(=|$)")
_OVERRIDE_ARG = re.compile(r"^--?(?:no)?config\.([^=]+)")


def split_argv(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(config file, the other args)`` from ``argv`` (``--config F`` or ``--config=F``)."""
    path, rest, args = None, [], list(argv)
    while args:
        arg = args.pop(0)
        match = _CONFIG_ARG.match(arg)
        if match is None:
            rest.append(arg)
        elif match.group(1) == "=":
            path = arg.split("=", 1)[1]
        elif args:
            path = args.pop(0)
        else:
            raise ConfigError("--config needs a file, e.g. --config experiments/digits.py")
    return path, rest


def load(spec: str) -> ml_collections.ConfigDict:
    """Runs ``get_config()`` of the file ``spec`` (``FILE`` or ``FILE:ARG``, as in
    ml_collections: ``ARG`` is passed to ``get_config``)."""
    path_str, *arg = spec.split(":", 1)
    path = Path(path_str).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {what}")
    loader = importlib.machinery.SourceFileLoader("stylegan_jax_user_config", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    try:
        loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"config file {path}, line {e.lineno}: syntax error: {e.msg}") from e
    except Exception as e:
        raise ConfigError(f"config file {path}{_line_in(e, path)}: "
                          f"{type(e).__name__}: {e}") from e
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {path} has no get_config() function; it must define "
                          "one returning an ml_collections.ConfigDict (see experiments/)")
    try:
        config = get_config(*arg)
    except Exception as e:
        raise ConfigError(f"config file {path}{_line_in(e, path)}: get_config() failed: "
                          f"{type(e).__name__}: {e}") from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config file {path}: get_config() returned "
                          f"{type(config).__name__}, not an ml_collections.ConfigDict")
    return config


def _line_in(error: BaseException, path: Path) -> str:
    """``", line N"`` of the innermost traceback frame in ``path`` (empty if none)."""
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
             if Path(f.filename) == path]
    return f", line {lines[-1]}" if lines else ""


def check_overrides(config: ml_collections.ConfigDict, argv: Sequence[str]) -> None:
    """Raises ``ConfigError`` for the first ``--config.a.b=...`` in ``argv`` naming a field
    ``config`` does not have, with the closest existing names."""
    for arg in argv:
        match = _OVERRIDE_ARG.match(arg)
        if match is None:
            continue
        node, done = config, []
        for part in match.group(1).split("."):
            keys = list(node.keys()) if isinstance(node, (ml_collections.ConfigDict, dict)) \
                else []
            if part not in keys:
                where = f" in config.{'.'.join(done)}" if done else ""
                close = difflib.get_close_matches(part, [str(k) for k in keys], n=1)
                hint = f", did you mean {close[0]}?" if close else ""
                raise ConfigError(f"unknown field {part}{where} (--config."
                                  f"{match.group(1)}){hint}")
            node, done = node[part], [*done, part]

