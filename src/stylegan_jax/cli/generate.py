"""Write one PNG per seed (z = RandomState(seed).randn) from a run's EMA generator.

usage: stylegan-jax generate --network RUN|CHECKPOINT|X.pkl --seeds LIST --outdir DIR [flags]

Samples the checkpoint's EMA generator (or an official pickle's Gs) at the given seeds, with
optional truncation (--psi, --cutoff) and a fixed noise realisation, and writes
OUTDIR/seedNNNN.png. A seed names the same image in every command and in Python.

example:
  stylegan-jax generate --network runs/digits --seeds 0-9 --psi 0.7 --outdir out
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax generate"
    fv = flags.FlagValues()
    shared = common.sampling_flags(fv)
    seeds = flags.DEFINE_string("seeds", None, "Seeds, e.g. 0-99 or 1,5,7.", flag_values=fv)
    batch_size = flags.DEFINE_integer("batch_size", 32, "Images per device batch.",
                                      lower_bound=1, flag_values=fv)
    dtype = flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                              "Sampling precision: bfloat16 is faster on accelerators and "
                              "gives slightly different images.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    network = common.sampling_paths(shared, seeds=seeds.value)
    from pathlib import Path

    from stylegan_jax import generate as gen
    from stylegan_jax.images import to_uint8
    from stylegan_jax.logs import save_png

    try:
        seed_list = gen.parse_seeds(seeds.value)
        gen.check_psi(shared["psi"].value)
        model = gen.load(network, shared["checkpoint"].value, compute_dtype=dtype.value)
        common.say_classes(prog, model.num_classes, shared["class_index"].value)
        noise = gen.STORED if shared["stored_noise"].value else shared["noise_seed"].value
        images = model.generate(seeds=seed_list, psi=shared["psi"].value,
                                cutoff=shared["cutoff"].value, noise=noise,
                                class_index=shared["class_index"].value,
                                batch_size=batch_size.value)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    outdir = Path(shared["outdir"].value)
    for seed, image in zip(seed_list, to_uint8(images), strict=True):
        save_png(outdir / f"seed{seed:04d}.png", image)
    source = network if network.endswith(".pkl") else f"checkpoint {model.step}"
    print(f"Wrote {len(seed_list)} images of {source} to {outdir}")
