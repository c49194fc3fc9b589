"""Draw a paper figure (mixing, noise, truncation, interpolation) or an edit from a run.

usage: stylegan-jax figure --network RUN|CHECKPOINT|X.pkl --kind KIND --outdir DIR [flags]

mixing: style mixing grids (rows take coarse, middle or fine styles from the column seeds, as
the paper's Figure 3); noise: the effect of the noise inputs (Figure 4); truncation: a psi
sweep (Figure 8); interpolation: a GIF of lerps in W or slerps in Z between keyframe seeds;
edit: each row's w moved along a direction (a .npy from `stylegan-jax directions`) by
--amounts. --rows_from / --cols_from take the rows or columns from the projections of
`stylegan-jax project` (its --outdir) instead of seeds, each with its own noise.

example:
  stylegan-jax figure --network runs/digits --kind mixing --seeds 0-4 --col_seeds 5-9 --outdir figs
  stylegan-jax figure --network runs/digits --kind edit --rows_from p --direction d3.npy --outdir f
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax figure"
    fv = flags.FlagValues()
    shared = common.sampling_flags(fv)
    kind = flags.DEFINE_enum("kind", None, ["mixing", "noise", "truncation", "interpolation",
                                            "edit"], "Which figure.", flag_values=fv)
    rows_from = flags.DEFINE_string("rows_from", None, "mixing, edit: rows from the "
                                    "projections in this `project` output directory.",
                                    flag_values=fv)
    cols_from = flags.DEFINE_string("cols_from", None, "mixing: columns from the projections "
                                    "in this `project` output directory.", flag_values=fv)
    direction = flags.DEFINE_string("direction", None, "edit: a direction in W (.npy of w's "
                                    "size, from `stylegan-jax directions`).", flag_values=fv)
    amounts = flags.DEFINE_list("amounts", ["-2", "-1", "0", "1", "2"], "edit: the columns, "
                                "in standard deviations along the direction.", flag_values=fv)
    seeds = flags.DEFINE_string("seeds", "0-4", "Row seeds (mixing: source A; "
                                "interpolation: the keyframes).", flag_values=fv)
    col_seeds = flags.DEFINE_string("col_seeds", "5-9", "mixing: source B seeds (columns).",
                                    flag_values=fv)
    styles = flags.DEFINE_list("styles", [], "mixing: coarse, middle, fine or layer ranges "
                               "like 4-7, one grid each (default: the named ranges the model "
                               "has); edit: the layers moved (default: all).", flag_values=fv)
    psis = flags.DEFINE_list("psis", ["1", "0.7", "0.5", "0", "-0.5", "-1"],
                             "truncation: the psi columns.", flag_values=fv)
    steps = flags.DEFINE_integer("steps", 16, "interpolation: frames per pair of seeds.",
                                 lower_bound=1, flag_values=fv)
    space = flags.DEFINE_enum("space", "w", ["w", "z"], "interpolation: lerp in W or slerp "
                              "in Z.", flag_values=fv)
    fps = flags.DEFINE_float("fps", 12.0, "interpolation: GIF frame rate.", lower_bound=0.1,
                             upper_bound=100.0, flag_values=fv)
    samples = flags.DEFINE_integer("samples", 32, "noise: realisations for the std map.",
                                   lower_bound=2, flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    network = common.sampling_paths(shared, kind=kind.value)
    from pathlib import Path

    from stylegan_jax import editing, figures, projector
    from stylegan_jax import generate as gen

    try:
        try:
            psi_list = [float(p) for p in psis.value]
        except ValueError:
            raise ValueError(f"--psis must be numbers like 1,0.7,0, got {psis.value}") from None
        try:
            amount_list = [float(a) for a in amounts.value]
        except ValueError:
            raise ValueError(f"--amounts must be numbers like -2,0,2, got {amounts.value}"
                             ) from None
        for psi in [shared["psi"].value, *psi_list]:
            gen.check_psi(psi)
        row_list = gen.parse_seeds(seeds.value)
        col_list = gen.parse_seeds(col_seeds.value)
        model = gen.load(network, shared["checkpoint"].value)
        common.say_classes(prog, model.num_classes, shared["class_index"].value)
        rows, cols = (None if d is None else projector.load_projections(d, model.num_layers)[1]
                      for d in (rows_from.value, cols_from.value))
        edit = {}
        if direction.value is not None:
            edit = dict(direction=editing.load_direction(direction.value,
                                                         model.G.dlatent_size),
                        direction_name=Path(direction.value).stem)
        written = figures.write_figure(
            model, kind.value, shared["outdir"].value, row_list, col_seeds=col_list,
            styles=styles.value, psi=shared["psi"].value, cutoff=shared["cutoff"].value,
            psis=psi_list, steps=steps.value, space=space.value, fps=fps.value,
            samples=samples.value,
            noise=gen.STORED if shared["stored_noise"].value else shared["noise_seed"].value,
            class_index=shared["class_index"].value, rows=rows, cols=cols,
            amounts=amount_list, **edit)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    print("\n".join(f"Wrote {path}" for path in written))
