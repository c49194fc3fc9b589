"""The ``stylegan-jax`` command line: ``stylegan-jax COMMAND [--flags]``.

Thin by design: each command parses its own absl flags (configs via ml_collections
``--config FILE`` with ``--config.field=value`` overrides) and calls the library.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import flags
from ml_collections import config_flags


def _config_flag(fv: flags.FlagValues) -> flags.FlagHolder:
    return config_flags.DEFINE_config_file(
        "config", None, "Experiment config file (experiments/*.py).", flag_values=fv,
        lock_config=True,
    )


def _parse(fv: flags.FlagValues, prog: str, argv: Sequence[str]) -> None:
    try:
        fv([prog, *argv])
    except flags.Error as e:
        raise SystemExit(f"{prog}: {e}\n\nFlags:\n{fv.main_module_help()}") from None


def summary(argv: Sequence[str]) -> None:
    """Print the layer table of G and D (parameter counts per layer and totals)."""
    fv = flags.FlagValues()
    config = _config_flag(fv)
    _parse(fv, "stylegan-jax summary", argv)
    if config.value is None:
        raise SystemExit("stylegan-jax summary: --config FILE is required")
    from stylegan_jax import summary as summary_lib

    print(summary_lib.network_summary(config.value))


COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "summary": summary,
}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: stylegan-jax COMMAND [--flags]\n\ncommands:")
        for name, fn in COMMANDS.items():
            print(f"  {name:<12} {(fn.__doc__ or '').strip().splitlines()[0]}")
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise SystemExit(f"stylegan-jax: unknown command {command!r}; one of {sorted(COMMANDS)}")
    COMMANDS[command](rest)


if __name__ == "__main__":
    main()
