"""Build a dataset (ffhq, image_folder, digits or stacked_digits) for training, without TensorFlow.

usage: stylegan-jax prepare --dataset NAME --data_dir DIR [--source PATH] [--resolution R] [flags]

Decodes, checks and resizes the source images once (official repeated 2x2 box averaging) and
writes them as uint8 array_record files under DATA_DIR; prints the dataset name to train on
(config.dataset.name). digits and stacked_digits are bundled (no download); ffhq and
image_folder read --source, a folder or zip. Every file is checked before anything is
written.

example:
  stylegan-jax prepare --dataset image_folder --source ~/photos --resolution 256 --data_dir data
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax prepare"
    fv = flags.FlagValues()
    dataset = flags.DEFINE_enum("dataset", None,
                                ["ffhq", "image_folder", "digits", "stacked_digits"],
                                "Which builder.", flag_values=fv)
    data_dir = flags.DEFINE_string("data_dir", None, "Where prepared datasets live.",
                                   flag_values=fv)
    source = flags.DEFINE_string("source", None, "ffhq: folder or zip holding "
                                 "images1024x1024; image_folder: folder or zip of images.",
                                 flag_values=fv)
    resolution = flags.DEFINE_integer("resolution", None, "Stored resolution, a power of "
                                      "two (default: ffhq 1024, image_folder 256).",
                                      lower_bound=1, flag_values=fv)
    fit = flags.DEFINE_enum("fit", "crop", ["crop", "pad"], "image_folder: centre-crop or "
                            "black-pad non-square images.", flag_values=fv)
    skip_bad = flags.DEFINE_bool("skip_bad", False, "Skip unusable source files (with a "
                                 "warning) instead of stopping.", flag_values=fv)
    overwrite = flags.DEFINE_bool("overwrite", False, "Replace an existing prepared copy.",
                                  flag_values=fv)
    workers = flags.DEFINE_integer("workers", None, "Decoding threads (default: all cores).",
                                   lower_bound=1, flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if dataset.value is None or data_dir.value is None:
        raise UsageError("--dataset and --data_dir are required")
    from stylegan_jax.data import builders
    from stylegan_jax.data import prepare as prepare_lib
    from stylegan_jax.data.images import describe_files

    try:
        done = prepare_lib.prepare_dataset(
            dataset.value, data_dir.value, source=source.value, resolution=resolution.value,
            fit=fit.value, skip_bad=skip_bad.value, overwrite=overwrite.value,
            workers=workers.value)
    except (builders.SourceError, FileExistsError, FileNotFoundError, ValueError) as e:
        # the library names its parameters; on the command line they are flags
        raise UsageError(str(e).replace("overwrite=True", "--overwrite")
                         .replace("skip_bad=True", "--skip_bad")) from e
    if done.ignored:
        print(f"note: ignored {len(done.ignored)} files that are not source images: "
              f"{describe_files(done.ignored)}", file=sys.stderr)
    if done.skipped:
        print(f"warning: skipped {len(done.skipped)} unusable source images (--skip_bad): "
              f"{describe_files(done.skipped)}", file=sys.stderr)
    labels = f", {done.num_classes} classes" if done.num_classes else ""
    print(f"Prepared {done.num_examples} images{labels} as '{done.name}' in {done.path} "
          f"({done.num_bytes / 2**20:,.1f} MiB written in {done.seconds:.1f} s)\n"
          f"Train or benchmark with --data_dir {data_dir.value} --dataset {done.name}")
