"""Start a run from an official StyleGAN .pkl (G, D, Gs) to fine-tune it with train.

usage: stylegan-jax import --pkl X.pkl --workdir NEW_DIR [--config FILE[:ARG]] [flags]

Writes a new run whose first checkpoint holds the pickle's G, D and Gs (as the EMA generator)
and fresh Adam states, positioned at --resume_kimg (default: the start of the full-resolution
stable phase); `stylegan-jax train --workdir NEW_DIR` with the same --config continues it.

example:
  stylegan-jax import --pkl karras2019stylegan-ffhq-1024x1024.pkl --workdir runs/ffhq_ft \
      --config experiments/ffhq_1024.py
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError, require_dir


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax import"
    fv = flags.FlagValues()
    config = common.config_flag(fv, prog, argv)
    pkl = flags.DEFINE_string("pkl", None, "Official network pickle (karras2019stylegan-*.pkl).",
                              flag_values=fv)
    workdir = flags.DEFINE_string("workdir", None, "New run directory.", flag_values=fv)
    resume_kimg = flags.DEFINE_float("resume_kimg", None, "Schedule position in kimg (default: "
                                     "the start of the full-resolution stable phase).",
                                     lower_bound=0.0, flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if pkl.value is None or workdir.value is None:
        raise UsageError("--pkl FILE.pkl and --workdir DIR are required")
    require_dir(workdir.value, "--workdir")
    from stylegan_jax import runs
    from stylegan_jax.validate import check_config

    if config.value is not None:
        check_config(config.value)
    try:
        nimg, run_config = runs.import_run(pkl.value, workdir.value, config.value,
                                           resume_kimg.value)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    print(f"Imported {pkl.value} into {workdir.value} at {nimg / 1000:g} kimg "
          f"({run_config.resolution}x{run_config.resolution}). Fine-tune with `stylegan-jax "
          f"train --workdir {workdir.value}` and the same --config and --config.* overrides "
          "as this import (the run keeps the config it was imported with).")
