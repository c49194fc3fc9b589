"""Metrics of a trained run: ``run_metrics(workdir, step, names)`` behind ``stylegan-jax metrics``.

Loads the EMA generator of a checkpoint, computes the requested metrics and appends one JSON
line per metric to ``workdir/metrics.jsonl`` (``{"nimg": step, "time": ..., name: value}``,
the format of the training logs).

Names: ``fid<N>k`` (e.g. ``fid50k``: N thousand generated images vs as many reals),
``ppl_{z,w}{full,end}`` (100k samples), ``ls`` (200k samples, 100k kept; only for digits
runs unless a ``classifier`` is passed), ``modes`` (26k samples: modes covered of 1,000 and
their KL to the real distribution, for runs on ``stacked_digits``).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from stylegan_jax.data import digits_classifier as digits_classifier_lib
from stylegan_jax.metrics import frechet as fid_lib
from stylegan_jax.metrics import inception as inception_lib
from stylegan_jax.metrics import lpips as lpips_lib
from stylegan_jax.metrics import modes as modes_lib
from stylegan_jax.metrics import path_length as ppl_lib
from stylegan_jax.metrics import separability as ls_lib

DEFAULT_CACHE = Path("~/.cache/stylegan-jax/fid").expanduser()
_PPL = re.compile(r"ppl_([zw])(full|end)$")
_FID = re.compile(r"fid(\d+)k$")


def check_names(names: list[str]) -> None:
    """Raises ``ValueError`` for an unknown metric name."""
    bad = [n for n in names if not (_PPL.match(n) or _FID.match(n) or n in ("ls", "modes"))]
    if bad:
        raise ValueError(f"unknown metrics {bad}; use fid<N>k (e.g. fid50k), "
                         "ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, ls, modes")


def run_metrics(workdir: str | os.PathLike, step: int | None, metric_names: list[str], *,
                inception_weights: str | os.PathLike | None = None,
                inception_mode: str = "nvidia",
                lpips_weights: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, batch_size: int = 64,
                seed: int = 0, cache_dir: str | os.PathLike | None = DEFAULT_CACHE,
                num_samples: int | None = None,
                classifier: ls_lib.Classifier | None = None,
                dataset_name: str | None = None) -> dict[str, Any]:
    """Computes ``metric_names`` for checkpoint ``step`` (None: latest) of ``workdir`` and
    appends them to ``workdir/metrics.jsonl``; returns ``{name: value}`` (``ls`` gives
    ``ls_z`` and ``ls_w``). ``num_samples`` overrides every metric's sample count (quick
    checks). Weights default to ``$STYLEGAN_JAX_INCEPTION`` / ``$STYLEGAN_JAX_LPIPS``.
    ``workdir`` may also be an official StyleGAN ``.pkl`` (its Gs; results are returned, not
    written); ``dataset_name`` overrides ``config.dataset.name`` (the FID reals, the PPL crop)."""
    from stylegan_jax.runs import load_run  # checkpoint loading stays out of metric modules

    check_names(metric_names)
    if Path(workdir).suffix == ".pkl" and not Path(workdir).is_dir():
        from stylegan_jax.generate import load

        model, step = load(workdir, step), None
        config, generator, variables = model.config, model.G, model.variables
    else:
        run = load_run(workdir, step)
        config, generator, variables, step = run.config, run.G, run.variables, run.step
    dataset = config.dataset
    if dataset_name:
        dataset.name = dataset_name
    data_dir = data_dir if data_dir is not None else dataset.data_dir
    is_digits = dataset.name.startswith("digits")
    if "ls" in metric_names and classifier is None:
        if not is_digits:
            raise ValueError("ls needs attribute classifiers: the official CelebA-HQ ones "
                             "cannot be shipped; call run_metrics(..., classifier=...) from "
                             "Python (digits runs use the bundled digits classifier)")
        classifier = ls_lib.digits_classifier()

    results: dict[str, Any] = {}
    extractor = lpips_params = None
    for name in metric_names:
        if m := _FID.match(name):
            if extractor is None:
                extractor = inception_lib.InceptionFeatures(
                    inception_lib.load_inception(inception_weights), inception_mode)
            n = num_samples or int(m.group(1)) * 1000
            weights_id = os.fspath(inception_weights or os.environ.get(
                inception_lib.INCEPTION_ENV, ""))
            reals = fid_lib.dataset_stats(
                data_dir, dataset.name, extractor, num_images=n,
                mirror=dataset.mirror_augment, seed=config.seed, batch_size=batch_size,
                cache_dir=cache_dir, cache_key=f"{inception_mode}:{Path(weights_id).name}")
            values = {name: fid_lib.fid(generator, variables, reals, extractor, num_images=n,
                                        batch_size=batch_size, seed=seed)}
        elif m := _PPL.match(name):
            if lpips_params is None:
                lpips_params = lpips_lib.load_lpips(lpips_weights)
            values = {name: ppl_lib.ppl(
                generator, variables, lpips_params, space=m.group(1), sampling=m.group(2),
                num_samples=num_samples or 100000, crop=dataset.name.startswith("ffhq"),
                batch_size=batch_size, seed=seed)}
        elif name == "modes":
            values = modes_lib.mode_coverage(
                modes_lib.generator_sampler(generator, variables),
                digits_classifier_lib.digits_classifier(), num_samples=num_samples or 26000,
                batch_size=batch_size, seed=seed)
        else:
            n = num_samples or 200000
            values = ls_lib.linear_separability(
                generator, variables, classifier, num_samples=n, num_keep=n // 2,
                batch_size=batch_size, seed=seed)
        if step is not None:
            write_results(workdir, step, values)
        results.update(values)
    return results


def write_results(workdir: str | os.PathLike, step: int, values: dict[str, float]) -> None:
    """Appends ``{"nimg": step, "time": ..., **values}`` to ``workdir/metrics.jsonl``."""
    import jax

    if jax.process_index() != 0:
        return
    record = {"nimg": step, "time": time.time(), **{k: float(v) for k, v in values.items()}}
    with open(Path(workdir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
