"""Save a direction in W per attribute (the linear-separability SVM normals) to edit along.

usage: stylegan-jax directions --network RUN|CHECKPOINT|X.pkl --outdir DIR [--classifiers DIR]

Samples --num_samples images without truncation, labels them with an attribute classifier (a
digits run's ten digit attributes, or NVIDIA's CelebA-HQ classifiers with --classifiers), fits a
linear SVM in W per attribute on the surest half, as the `ls` metric does, and writes its normal,
scaled to the samples' standard deviation along it, as OUTDIR/NAME.npy (digit0..digit9, or the
classifier names such as 00-male). `figure --kind edit --direction OUTDIR/NAME.npy` uses one.

example:
  stylegan-jax directions --network runs/digits --outdir directions
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError, require_dir


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax directions"
    fv = flags.FlagValues()
    run = common.run_flags(fv)
    outdir = flags.DEFINE_string("outdir", None, "Where to write NAME.npy.", flag_values=fv)
    classifiers = flags.DEFINE_string("classifiers", None, "A directory of the official "
                                      "celebahq-classifier-*.pkl (default: the run's own, "
                                      "digits runs only).", flag_values=fv)
    num_samples = flags.DEFINE_integer("num_samples", 20000, "Images to sample (the SVM fits "
                                       "the surest half).", lower_bound=8, flag_values=fv)
    batch_size = flags.DEFINE_integer("batch_size", 64, "Images per step (a multiple of the "
                                      "device count).", lower_bound=1, flag_values=fv)
    seed = flags.DEFINE_integer("seed", 0, "Sampling seed.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    path = common.network_path(run["network"], run["workdir"])
    if path is None or outdir.value is None:
        raise UsageError("--network (or --workdir) and --outdir are required")
    require_dir(outdir.value, "--outdir")
    from stylegan_jax import editing, parallel
    from stylegan_jax import generate as gen

    try:
        model = gen.load(path, run["checkpoint"].value)
        classifier, names = editing.attribute_classifier(model, classifiers.value)
        directions = editing.fit_directions(model, classifier, num_samples=num_samples.value,
                                            batch_size=batch_size.value, seed=seed.value,
                                            mesh=parallel.make_mesh())
        written = editing.save_directions(outdir.value, directions, names)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    print(f"Wrote {len(written)} directions ({', '.join(names)}) to {outdir.value}")
