"""Project your own images into a run's W (or W+) and write what comes back.

usage: stylegan-jax project --network RUN|CHECKPOINT|X.pkl --target FILE|DIR|GLOB --outdir DIR

Finds, for each target image (PNG/JPEG, centre-cropped and resized to the model's resolution as
`prepare --fit crop` does), the w and noise inputs whose image is closest in LPIPS, by the
StyleGAN2 projector's recipe (1000 Adam steps, noise inputs optimised and regularised), many
targets at once on every device. Writes OUTDIR/NAME/{target.png, proj.png, projected_w.npz}
(w and noise: `Model.generate(w=..., noise=...)` redraws proj.png), optionally proj.gif, and
one JSON line per target in OUTDIR/projections.jsonl (lpips, start_lpips, psnr, steps, space).
Needs the LPIPS VGG16 weights (--lpips_weights or $STYLEGAN_JAX_LPIPS).

example:
  stylegan-jax project --network runs/digits --target my_digits/ --class_index 3 --outdir proj
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError, require_dir


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax project"
    fv = flags.FlagValues()
    run = common.run_flags(fv)
    target = flags.DEFINE_string("target", None, "An image file, a directory of them "
                                 "(recursive) or a glob like 'photos/*.jpg'.", flag_values=fv)
    outdir = flags.DEFINE_string("outdir", None, "Where to write the results.", flag_values=fv)
    space = flags.DEFINE_enum("space", "w", ["w", "w+"], "w: one w for every layer (the "
                              "StyleGAN2 projector); w+: one w per layer (Image2StyleGAN).",
                              flag_values=fv)
    steps = flags.DEFINE_integer("steps", 1000, "Optimisation steps.", lower_bound=1,
                                 flag_values=fv)
    batch = flags.DEFINE_integer("batch", 32, "Targets optimised together (split over the "
                                 "devices).", lower_bound=1, flag_values=fv)
    seed = flags.DEFINE_integer("seed", 0, "Seed of the initial noise inputs and the w noise.",
                                flag_values=fv)
    class_index = flags.DEFINE_integer("class_index", None, "Conditional models: the class "
                                       "of every target (default: start from the mean w of "
                                       "all classes).", lower_bound=0, flag_values=fv)
    lpips_weights = flags.DEFINE_string("lpips_weights", None, "LPIPS VGG16 weights "
                                        "(default: $STYLEGAN_JAX_LPIPS).", flag_values=fv)
    freeze_noise = flags.DEFINE_bool("freeze_noise", False, "Keep the initial noise inputs "
                                     "instead of optimising them.", flag_values=fv)
    mse_weight = flags.DEFINE_float("mse_weight", 0.0, "Weight of a pixel MSE term (on "
                                    "[-1, 1] images) added to LPIPS.", lower_bound=0.0,
                                    flag_values=fv)
    gif_every = flags.DEFINE_integer("gif_every", 0, "Write NAME/proj.gif with a frame every "
                                     "this many steps (0: no GIF).", lower_bound=0,
                                     flag_values=fv)
    grey_to_rgb = flags.DEFINE_bool("grey_to_rgb", False, "Accept greyscale targets for an "
                                    "RGB model (replicated to RGB, as prepare does).",
                                    flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    path = common.network_path(run["network"], run["workdir"])
    if path is None or target.value is None or outdir.value is None:
        raise UsageError("--network (or --workdir), --target and --outdir are required")
    require_dir(outdir.value, "--outdir")
    from stylegan_jax import generate as gen
    from stylegan_jax import projector
    from stylegan_jax.data.images import BadImageError, list_image_files
    from stylegan_jax.metrics import lpips
    from stylegan_jax.metrics.weights import WeightsError

    try:
        paths = list_image_files(target.value)
        lpips_params = lpips.load_lpips(lpips_weights.value)  # or $STYLEGAN_JAX_LPIPS
        model = gen.load(path, run["checkpoint"].value)
        if class_index.value is not None:
            model.labels(1, class_index.value)  # checks the class against the model
        rows = projector.project_files(
            model, paths, lpips_params, outdir.value,
            classes=None if class_index.value is None else [class_index.value] * len(paths),
            grey_to_rgb=grey_to_rgb.value, gif_every=gif_every.value, space=space.value,
            steps=steps.value, batch_size=batch.value, seed=seed.value,
            optimize_noise=not freeze_noise.value, mse_weight=mse_weight.value)
    except (ValueError, FileNotFoundError, BadImageError, WeightsError) as e:
        raise UsageError(e) from e
    mean = sum(r["lpips"] for r in rows) / len(rows)
    print(f"Projected {len(rows)} images into {space.value.upper()} ({steps.value} steps, mean "
          f"LPIPS {mean:.4f}); wrote {outdir.value}/{projector.RESULTS_FILE}")
