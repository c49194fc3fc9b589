"""Compile every program of a run for a Cloud TPU slice, here, before renting it.

usage: stylegan-jax tpu-compile --config FILE[:ARG] --topology GEN:SHAPE [--out FILE.jsonl]
       [--programs phases,fid,ppl,projection] [--resolutions R,...] [--per_chip_batch N]
       [--max_batch] [--xla_option NAME=VALUE ...]
       stylegan-jax tpu-compile --markdown FILE.jsonl

Runs the real XLA:TPU compiler (libtpu: `make tpu-tools`) on this machine, no TPU needed, for
the slice named by --topology (v4, v5e, v5p or v6e and its chip grid, e.g. v5e:4x4,
v4:2x2x4). One JSON line per program as soon as it is compiled: every training phase of the
config's schedule at the per-chip batch the schedule gives on that slice (--per_chip_batch
overrides it), then the FID, PPL and projection programs. Each row says whether the program
fits a chip (HBM per chip: arguments, temporaries, outputs, aliases), XLA:TPU's FLOPs and
bytes per chip, the roofline bound from the chip's peak rates, the collectives, and the
compile seconds; a phase whose global batch does not split over the slice says which slice
or batch works. --max_batch then searches the largest per-chip batch at full resolution.
--markdown prints the rows of earlier calls as the tables of BENCHMARKS.md. (JAX's persistent
compilation cache cannot serve compile-only devices, so each call compiles afresh; training on
the pod caches its programs in WORKDIR/compile_cache.)

example:
  stylegan-jax tpu-compile --config experiments/ffhq_1024_tpu.py --topology v5e:2x4 \\
      --out tpu-v5e.jsonl
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def _options(values: Sequence[str]) -> dict[str, str]:
    options = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--xla_option {value!r} is not NAME=VALUE")
        options[name] = setting
    return options


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax tpu-compile"
    fv = flags.FlagValues()
    config = common.config_flag(fv, prog, argv)
    topology = flags.DEFINE_string("topology", None, "The TPU slice, GENERATION:SHAPE "
                                   "(v5e:2x4, v4:2x2x1, v5p:2x2x1, v6e:4x4).", flag_values=fv)
    out = flags.DEFINE_string("out", None, "JSONL file the rows are appended to (they are "
                              "printed either way).", flag_values=fv)
    programs = flags.DEFINE_list("programs", "phases,fid,ppl,projection", "Which programs: "
                                 "phases, fid, ppl, projection.", flag_values=fv)
    resolutions = flags.DEFINE_list("resolutions", None, "Only the phases at these "
                                    "resolutions (default: every phase).", flag_values=fv)
    per_chip = flags.DEFINE_integer("per_chip_batch", None, "Images per chip in every phase "
                                    "(default: the schedule's global batch over the chips).",
                                    lower_bound=1, flag_values=fv)
    max_batch = flags.DEFINE_bool("max_batch", False, "Also search the largest per-chip batch "
                                  "that fits at full resolution.", flag_values=fv)
    xla_options = flags.DEFINE_multi_string("xla_option", [], "An XLA:TPU compiler option, "
                                            "NAME=VALUE (repeatable).", flag_values=fv)
    markdown = flags.DEFINE_string("markdown", None, "Print the rows of this JSONL file as "
                                   "markdown tables and exit.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if markdown.value is not None:
        from stylegan_jax import tpu_compile

        common.print_markdown(markdown.value, tpu_compile.markdown, "tpu-compile")
        return
    if config.value is None:
        raise UsageError("--config FILE is required")
    if topology.value is None:
        raise UsageError("--topology GENERATION:SHAPE is required (e.g. v5e:2x4)")
    try:
        only = [int(r) for r in resolutions.value or ()]
    except ValueError as e:
        raise UsageError(f"--resolutions takes whole numbers: {e}") from e
    options = _options(xla_options.value)
    import jax

    from stylegan_jax import tpu_compile
    from stylegan_jax.bench_suite import RowWriter
    from stylegan_jax.validate import check_config, check_phase_resolution

    check_config(config.value)
    for r in only:
        check_phase_resolution(r, config.value)
    jax.config.update("jax_platforms", "cpu")  # the TPU is compile-only: never a backend
    writer = RowWriter(out.value or "/dev/null", "tpu-compile", time.time(), label=prog)
    for row in tpu_compile.compile_rows(config.value, topology.value, programs=programs.value,
                                        per_chip_batch=per_chip.value, resolutions=only,
                                        max_batch=max_batch.value, compiler_options=options):
        writer.write(row)
