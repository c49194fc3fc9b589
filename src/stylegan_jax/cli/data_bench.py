"""Print the images/s of the input pipeline alone.

usage: stylegan-jax data-bench --data_dir DIR --dataset NAME [--batch N] [flags]

Streams global batches of a prepared dataset as training does (shuffled, mirrored, prefetched)
and reports how many images per second the host delivers, to check that the input pipeline
keeps up with the accelerators.

example:
  stylegan-jax data-bench --data_dir data --dataset ffhq/256 --batch 64
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax data-bench"
    fv = flags.FlagValues()
    data_dir = flags.DEFINE_string("data_dir", None, "Where prepared datasets live.",
                                   flag_values=fv)
    dataset = flags.DEFINE_string("dataset", None, "Prepared dataset, e.g. digits or "
                                  "ffhq/256 (as printed by prepare).", flag_values=fv)
    batch = flags.DEFINE_integer("batch", 64, "Global batch size.", lower_bound=1,
                                 flag_values=fv)
    steps = flags.DEFINE_integer("steps", 50, "Timed batches.", lower_bound=1, flag_values=fv)
    workers = flags.DEFINE_integer("workers", None, "Reader threads (default: cores, <=32).",
                                   lower_bound=1, flag_values=fv)
    prefetch = flags.DEFINE_integer("prefetch", 4, "Host batches in flight.", lower_bound=1,
                                    flag_values=fv)
    mirror = flags.DEFINE_bool("mirror", True, "Random horizontal flips.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if data_dir.value is None or dataset.value is None:
        raise UsageError("--data_dir and --dataset are required")
    from stylegan_jax.data.bench import images_per_second
    from stylegan_jax.data.pipeline import InputPipeline

    with InputPipeline(data_dir.value, dataset.value, mirror=mirror.value,
                       workers=workers.value, prefetch=prefetch.value) as pipeline:
        try:
            rate = images_per_second(pipeline, batch.value, steps.value)
        except ValueError as e:  # a batch the devices cannot split
            raise UsageError(f"--batch {batch.value}: {e}") from e
        print(f"{dataset.value}: {pipeline.num_examples} images of {pipeline.resolution}x"
              f"{pipeline.resolution}, batch {batch.value}: {rate:,.0f} images/s")
