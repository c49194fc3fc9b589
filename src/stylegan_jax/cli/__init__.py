"""The ``stylegan-jax`` command line: ``stylegan-jax COMMAND [--flags]``.

Thin by design: one module per command parses its own absl flags (configs via
``--config FILE`` with ``--config.field=value`` overrides) and calls the library, which never
imports this package. ``stylegan-jax COMMAND --help`` prints the command's usage, description
and flags (:mod:`.common`).

Exit status: 0 done; 2 a user mistake (:class:`~stylegan_jax.errors.UsageError`: a bad flag,
config field or path), printed as one line ``stylegan-jax CMD: error: ...``; 3 a run whose
files cannot be used or continued (:class:`~stylegan_jax.errors.RunError`: no intact
checkpoint, a locked workdir, a diverged run), also one line; anything else is a bug and keeps
its traceback (exit 1). ``--debug`` (or ``STYLEGAN_JAX_DEBUG=1``) shows the traceback of every
error.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from collections.abc import Sequence

from stylegan_jax.cli import (
    bench_suite,
    bench_train,
    data_bench,
    directions,
    figure,
    generate,
    import_run,
    metrics,
    prepare,
    project,
    summary,
    tpu_compile,
    train,
)
from stylegan_jax.errors import RunError, UsageError

EXIT_USAGE = 2
EXIT_RUN = 3

# command name -> its module (``main(argv)``; the docstring is its help).
COMMANDS: dict[str, types.ModuleType] = {
    "summary": summary,
    "train": train,
    "bench-train": bench_train,
    "bench-suite": bench_suite,
    "tpu-compile": tpu_compile,
    "metrics": metrics,
    "prepare": prepare,
    "data-bench": data_bench,
    "generate": generate,
    "figure": figure,
    "project": project,
    "directions": directions,
    "import": import_run,
}


class CommandExit(SystemExit):
    """A one-line error exit (status 2 or 3) whose ``str`` is the printed line (what tests
    match on)."""

    def __init__(self, line: str, status: int):
        super().__init__(status)
        self.line = line

    def __str__(self) -> str:
        return self.line


def summary_line(command: str) -> str:
    return (COMMANDS[command].__doc__ or "").strip().splitlines()[0]


def _fail(line: str, status: int, error: BaseException | None, debug: bool) -> CommandExit:
    if debug and error is not None:
        traceback.print_exception(error)
    print(line, file=sys.stderr)
    return CommandExit(line, status)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("STYLEGAN_JAX_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: stylegan-jax COMMAND [--flags]   (stylegan-jax COMMAND --help for its "
              "flags)\n\ncommands:")
        for name in COMMANDS:
            print(f"  {name:<12} {summary_line(name)}")
        raise SystemExit(0 if argv else EXIT_USAGE)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise _fail(f"stylegan-jax: error: unknown command {command!r}; one of "
                    f"{sorted(COMMANDS)}", EXIT_USAGE, None, debug)
    try:
        COMMANDS[command].main(rest)
    except UsageError as e:
        raise _fail(f"stylegan-jax {command}: error: {e}", EXIT_USAGE, e, debug) from None
    except RunError as e:
        raise _fail(f"stylegan-jax {command}: error: {e}", EXIT_RUN, e, debug) from None
