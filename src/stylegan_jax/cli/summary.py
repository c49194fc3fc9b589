"""Print the layer table of G and D (parameter counts per layer and totals).

usage: stylegan-jax summary --config FILE[:ARG] [--config.FIELD=VALUE ...]

Builds the config's generator and discriminator from abstract shapes (nothing is computed) and
prints every layer with its output shape and parameter count, like the official print_layers.
Config F at 1024x1024 has 26,219,627 parameters in G and 23,087,249 in D.

example:
  stylegan-jax summary --config experiments/ffhq_1024.py
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    fv = flags.FlagValues()
    prog = "stylegan-jax summary"
    config = common.config_flag(fv, prog, argv)
    common.parse(fv, prog, argv, __doc__)
    if config.value is None:
        raise UsageError("--config FILE is required")
    from stylegan_jax import summary as summary_lib
    from stylegan_jax.validate import check_config

    check_config(config.value)

    print(summary_lib.network_summary(config.value))
