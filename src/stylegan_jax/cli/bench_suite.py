"""Every accelerator benchmark in one budgeted call, written row by row as JSONL.

usage: stylegan-jax bench-suite --out FILE.jsonl [--budget_s S] [--items A,B] [--smoke]
       stylegan-jax bench-suite --markdown FILE.jsonl

Measures, in priority order and each in its own process under one wall-clock budget: the
training iteration at 1024/b16 (bfloat16, float32), fid and ppl_wend throughput at 1024 with
their projected 50k / 100k times, the largest bfloat16 batch at 1024 (compile only), projection
at batch 1 and 32, the 256/b32 iteration, and, in the background from the start, the compile
time of every phase program of the FFHQ-1024 schedule. Networks have the official widths and
random weights. Each row is appended to --out as soon as it exists, so a budget or lease that
runs out keeps every finished row; --markdown prints the rows as the tables of BENCHMARKS.md.
--smoke runs the same code at tiny widths on the CPU (about two minutes on two cores, most of
it compiling).

example:
  stylegan-jax bench-suite --out $OUT/suite.jsonl --budget_s 540
  stylegan-jax bench-suite --markdown $OUT/suite.jsonl
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax bench-suite"
    fv = flags.FlagValues()
    out = flags.DEFINE_string("out", None, "JSONL file the rows are appended to.",
                              flag_values=fv)
    markdown = flags.DEFINE_string("markdown", None, "Print the rows of this JSONL file as "
                                   "markdown tables and exit.", flag_values=fv)
    budget = flags.DEFINE_float("budget_s", 540.0, "Wall-clock budget of the whole call, "
                                "seconds.", lower_bound=1.0, flag_values=fv)
    item_limit = flags.DEFINE_float("item_limit_s", 240.0, "The most seconds one item may "
                                    "take before it is killed.", lower_bound=1.0,
                                    flag_values=fv)
    items = flags.DEFINE_list("items", None, "Items to run, by name, in this order (default: "
                              "all; --smoke --items=help lists them).", flag_values=fv)
    smoke = flags.DEFINE_bool("smoke", False, "Tiny widths and resolutions (the CPU, ~2 minutes).",
                              flag_values=fv)
    background = flags.DEFINE_bool("background", True, "Compile the phase programs in the "
                                   "background from the start (--nobackground: last, in the "
                                   "foreground, so nothing runs beside the timed items).",
                                   flag_values=fv)
    cache_dir = flags.DEFINE_string("cache_dir", None, "JAX persistent compilation cache "
                                    "shared by the items (default: "
                                    "/tmp/stylegan-jax-bench-cache).", flag_values=fv)
    timing = flags.DEFINE_float("timing_s", 20.0, "Seconds each throughput measurement aims "
                                "at.", lower_bound=0.0, flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    from stylegan_jax import bench_suite

    if markdown.value is not None:
        common.print_markdown(markdown.value, bench_suite.markdown, "bench-suite")
        return
    settings = bench_suite.Settings(
        smoke=smoke.value, budget_s=budget.value, item_limit_s=item_limit.value,
        timing_s=timing.value,
        **({} if cache_dir.value is None else {"cache_dir": cache_dir.value}))
    names = bench_suite.item_names(settings)
    if items.value == ["help"]:
        print("\n".join(names))
        return
    if out.value is None:
        raise UsageError("--out FILE.jsonl is required (or --markdown FILE.jsonl)")
    unknown = sorted(set(items.value or ()) - set(names))
    if unknown:
        raise UsageError(f"--items: unknown {unknown}; choose from {names}")
    path = bench_suite.run_suite(settings, out.value, items.value, background.value)
    print(f"{prog}: rows in {path}; tables: {prog} --markdown {path}")
