"""Time the full training iteration on synthetic data: images/s and step time.

usage: stylegan-jax bench-train --config FILE[:ARG] [--resolution R] [--batch N] [flags]

Builds the jitted training iteration as training does (D step with R1, G EMA, G step) on
synthetic uint8 reals, compiles it, warms up and times --steps iterations. --cost_only prints
XLA's cost analysis (GFLOP and GB per image) of the lowered iteration without running it;
--compile_only compiles it ahead of time and prints the lower and compile seconds, the
program's size (StableHLO, optimised HLO instructions) and the device memory it needs.

example:
  stylegan-jax bench-train --config experiments/ffhq_256.py --resolution 256 --batch 32
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax bench-train"
    fv = flags.FlagValues()
    config = common.config_flag(fv, prog, argv)
    resolution = flags.DEFINE_integer("resolution", None, "Phase resolution to time "
                                      "(default: the config's).", lower_bound=4,
                                      flag_values=fv)
    batch = flags.DEFINE_integer("batch", 32, "Global batch size.", lower_bound=1,
                                 flag_values=fv)
    steps = flags.DEFINE_integer("steps", 20, "Timed iterations.", lower_bound=1,
                                 flag_values=fv)
    cost = flags.DEFINE_bool("cost", False, "Also print XLA's cost analysis of the iteration "
                             "(GFLOP and GB accessed per image).", flag_values=fv)
    cost_only = flags.DEFINE_bool("cost_only", False, "Print the cost analysis and skip the "
                                  "timing (needs no accelerator).", flag_values=fv)
    compile_only = flags.DEFINE_bool("compile_only", False, "Compile the iteration ahead of "
                                     "time and print its compile time, HLO size and memory; "
                                     "skip the timing.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if config.value is None:
        raise UsageError("--config FILE is required")
    from stylegan_jax import bench as bench_lib
    from stylegan_jax.validate import check_config, check_phase_resolution

    check_config(config.value)
    res = check_phase_resolution(resolution.value or config.value.resolution, config.value)
    try:
        if cost.value or cost_only.value:
            print(bench_lib.iteration_cost(config.value, res, batch.value))
        if compile_only.value:
            print(bench_lib.compile_iteration(config.value, res, batch.value)[1])
        if not (cost_only.value or compile_only.value):
            print(bench_lib.bench_train(config.value, res, batch.value, steps.value))
    except ValueError as e:  # e.g. a batch the devices cannot split
        raise UsageError(e) from e
