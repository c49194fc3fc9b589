"""What every command shares: parsing its absl flags (with ``--help``), the ``--config FILE``
flag and its overrides, and the flags that name a network or a sampling setting.

A command module's docstring is its help: the first line is the summary that
``stylegan-jax --help`` lists, a ``usage:`` line, then a paragraph with an example.
``stylegan-jax COMMAND --help`` (or ``-h``) prints that and the command's flags with their
defaults; ``--helpfull`` prints absl's own listing, every ``--config.*`` field included.
"""

from __future__ import annotations

import re
import sys
import textwrap
import types
from collections.abc import Callable, Sequence
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from stylegan_jax import config_file
from stylegan_jax.errors import UsageError, require_dir

HELP_FLAGS = ("-h", "--help")
CONFIG_HELP = ("Experiment config file (experiments/*.py, a Table 1 row or other argument after "
               "a colon: FILE:ARG); --config.FIELD=VALUE overrides one field of it.")


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in (*HELP_FLAGS, "--helpfull") for a in argv)


def config_flag(fv: flags.FlagValues, prog: str, argv: Sequence[str]) -> flags.FlagHolder:
    """``--config FILE`` plus its ``--config.field=value`` overrides, read from ``argv``: the
    file is loaded and every override checked to name a field before absl parses the values.
    Asked for help, nothing is loaded: the flag is only listed."""
    if wants_help(argv) and "--helpfull" not in argv:
        return flags.DEFINE_string("config", None, CONFIG_HELP, flag_values=fv)
    path, rest = config_file.split_argv(argv)
    if path is None:
        return types.SimpleNamespace(value=None)
    config = config_file.load(path)
    config_file.check_overrides(config, rest)
    return config_flags.DEFINE_config_dict(
        "config", config, CONFIG_HELP, flag_values=fv, lock_config=True,
        sys_argv=[prog, *rest])


def parse(fv: flags.FlagValues, prog: str, argv: Sequence[str], doc: str) -> None:
    """Parses ``argv`` into ``fv``; ``--help`` prints the command's help (``doc`` and the
    flags) and exits 0. A bad flag is a :class:`UsageError` (absl names the closest flag)."""
    if "--helpfull" in argv:
        print(f"{doc.strip()}\n\n{fv.get_help(include_special_flags=False)}")
        raise SystemExit(0)
    if wants_help(argv):
        print(help_text(fv, doc))
        raise SystemExit(0)
    if "config" in fv:  # the file was loaded by config_flag; absl parses the overrides
        argv = config_file.split_argv(argv)[1]
    try:
        fv([prog, *argv])
    except flags.Error as e:
        raise UsageError(e) from e


def help_text(fv: flags.FlagValues, doc: str) -> str:
    """``usage:`` line, the description (summary, paragraph, example) and every flag with its
    default, as ``stylegan-jax COMMAND --help`` prints them."""
    lines = textwrap.dedent(doc).strip().splitlines()
    usage = [line for line in lines if line.startswith("usage:")]
    body = "\n".join(line for line in lines if not line.startswith("usage:"))
    description = re.sub(r"\n{3,}", "\n\n", body).strip()
    flag_lines = [_describe_flag(fv[name]) for name in sorted(fv)
                  if not name.startswith("config.")]
    return "\n".join([*usage, "", description, "", "flags:", *flag_lines,
                      "  --debug: Show the traceback of an error (or STYLEGAN_JAX_DEBUG=1).",
                      "  -h, --help: Show this help; --helpfull: absl's full listing."])


def _describe_flag(flag: flags.Flag) -> str:
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    default = "none" if flag.default is None else flag.default_as_str or repr(flag.default)
    if isinstance(flag.default, list):
        default = ",".join(map(str, flag.default)) or "empty"
    help_ = flag.help if "default" in flag.help else \
        f"{flag.help} (default: {default.strip(chr(39))})"
    wrapped = textwrap.wrap(help_, width=96, initial_indent="      ",
                            subsequent_indent="      ")
    return "\n".join([f"  {name}", *wrapped])


# ---- flags that name a network and how to sample it ------------------------------------------

def network_flag(fv: flags.FlagValues) -> flags.FlagHolder:
    return flags.DEFINE_string("network", None, "A run directory, one checkpoint directory "
                               "WORKDIR/checkpoints/STEP, or an official StyleGAN .pkl "
                               "(karras2019stylegan-*.pkl; its Gs is used).", flag_values=fv)


def network_path(network: flags.FlagHolder, workdir: flags.FlagHolder) -> str | None:
    """``--network`` or, as before it existed, ``--workdir`` (not both); anything but an
    official ``.pkl`` must be a (run or checkpoint) directory."""
    if network.value is not None and workdir.value is not None:
        raise UsageError("give --network or --workdir, not both")
    path, flag = ((network.value, "--network") if network.value is not None
                  else (workdir.value, "--workdir"))
    if path is not None and not path.endswith(".pkl"):
        require_dir(path, flag)
    return path


def run_flags(fv: flags.FlagValues) -> dict[str, flags.FlagHolder]:
    """``--network`` (or ``--workdir``) and ``--checkpoint``: which trained generator."""
    return dict(
        network=network_flag(fv),
        workdir=flags.DEFINE_string("workdir", None, "Run directory (or one checkpoint "
                                    "directory WORKDIR/checkpoints/STEP).", flag_values=fv),
        checkpoint=flags.DEFINE_integer("checkpoint", None, "Checkpoint (images seen); "
                                        "default the latest.", lower_bound=0, flag_values=fv),
    )


def sampling_flags(fv: flags.FlagValues) -> dict[str, flags.FlagHolder]:
    """Flags shared by ``generate`` and ``figure``: the run, sampling and output."""
    return dict(
        **run_flags(fv),
        stored_noise=flags.DEFINE_bool("stored_noise", False, "Use the noise constants stored "
                                       "in an official .pkl instead of --noise_seed.",
                                       flag_values=fv),
        psi=flags.DEFINE_float("psi", None, "Truncation psi in [-2, 2] (default: none).",
                               flag_values=fv),
        cutoff=flags.DEFINE_integer("cutoff", None, "Truncate layers below this (default: "
                                    "the config's, 8).", lower_bound=0, flag_values=fv),
        noise_seed=flags.DEFINE_integer("noise_seed", 0, "Fixed noise realisation.",
                                        flag_values=fv),
        class_index=flags.DEFINE_integer("class_index", None, "Class of a conditional "
                                         "model (default: seed s draws class s % "
                                         "num_classes).", flag_values=fv),
        outdir=flags.DEFINE_string("outdir", None, "Where to write the PNGs.", flag_values=fv),
    )


def sampling_paths(shared: dict[str, flags.FlagHolder], **required: object) -> str:
    """The network path of a sampling command after checking that it, ``--outdir`` and the
    command's ``required`` flags (name -> value) are given and that the outdir can be one."""
    network = network_path(shared["network"], shared["workdir"])
    if network is None or shared["outdir"].value is None or None in required.values():
        names = "".join(f", --{name}" for name in required)
        raise UsageError(f"--network (or --workdir){names} and --outdir are required")
    require_dir(shared["outdir"].value, "--outdir")
    return network


def say_classes(prog: str, num_classes: int, class_index: int | None) -> None:
    """One stderr line when a conditional model picks its classes from the seeds."""
    if num_classes and class_index is None:
        print(f"{prog}: conditional model without --class_index: seed s is drawn as class "
              f"s % {num_classes}", file=sys.stderr)


def print_markdown(path: str, render: Callable[[list[dict]], str], command: str) -> None:
    """Prints ``render(rows)`` of the JSONL file ``path`` (``--markdown``), or one line naming
    the file when it is missing or is not rows that ``command`` wrote."""
    from stylegan_jax.bench_suite import read_rows

    if not Path(path).is_file():
        raise UsageError(f"--markdown {path}: no such file")
    try:
        text = render(read_rows(path))
    except (KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"--markdown {path}: not the rows of `stylegan-jax {command} --out` "
                         f"({type(e).__name__}: {e})") from e
    print(text, end="")
