"""Metrics of a run, the glue between a loaded generator and the one driver (:mod:`.registry`):
``run_metrics(model, names)`` behind ``stylegan-jax metrics``, and the inputs that both it and
the training loop derive from a run's config (real data, classifier, PPL crop).

It takes the generator already loaded (a :class:`stylegan_jax.generate.Model`, or anything
with its ``config``, ``G``, ``variables``, ``step`` and ``workdir``: the checkpoint's EMA
generator at its own resolution and fade in float32), calls :func:`.registry.evaluate` and,
for a run, appends one JSON line per metric to ``workdir/metrics.jsonl`` as soon as it is
computed
(``{"nimg": step, "time": ..., "metric": name, name: value, "num_samples": ..., ...}``).
``modes`` (mode coverage of 1,000, for ``stacked_digits`` runs) is computed by default for
those runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import ml_collections

from stylegan_jax.digit_classifiers import digit_attributes, digit_classifier
from stylegan_jax.metrics import registry
from stylegan_jax.metrics import separability as ls_lib

DEFAULT_CACHE = registry.DEFAULT_CACHE
PPL_CROP = ("auto", "on", "off")
CROPPED_DATASETS = ("ffhq", "celeba")  # dataset names PPL crops to the face region under auto


def check_names(names: Sequence[str]) -> None:
    """Raises ``ValueError`` for an unknown metric name."""
    registry.check_names(names)


def ppl_crop(choice: str, dataset_name: str) -> bool:
    """``--ppl_crop``: 'on', 'off', or 'auto' = on for FFHQ and CelebA-HQ datasets (names that
    start with ``ffhq`` or contain ``celeba``). The official code always crops."""
    if choice not in PPL_CROP:
        raise ValueError(f"ppl_crop must be one of {PPL_CROP}, got {choice!r}")
    if choice == "auto":
        name = dataset_name.lower()
        return name.startswith("ffhq") or "celeba" in name
    return choice == "on"


def real_data(config: ml_collections.ConfigDict,
              data_dir: str | os.PathLike | None = None) -> registry.RealData:
    """The real images of a run, streamed as training streams them."""
    dataset = config.dataset
    return registry.RealData(os.fspath(data_dir if data_dir is not None else dataset.data_dir),
                             dataset.name, bool(dataset.mirror_augment), int(config.seed))


def run_classifier(config: ml_collections.ConfigDict) -> ls_lib.Classifier | None:
    """The attribute classifier a run brings for ``ls``: digits runs the digits one."""
    if not config.dataset.name.startswith("digits"):
        return None
    return digit_attributes()


def default_names(config: ml_collections.ConfigDict) -> list[str]:
    """The metrics worth computing for a run by default (``modes`` for stacked digits)."""
    names = [n for n in registry.DEFAULT_NAMES if n != "modes"]
    return names + ["modes"] if config.dataset.name.startswith("stacked_digits") else names


def add_run_classifiers(networks: registry.Networks, config: ml_collections.ConfigDict,
                        names: Sequence[str]) -> None:
    """Gives ``networks`` the classifiers the run brings for ``names``: the digits attribute
    classifier (``ls`` on digits), the digit classifier (``modes``)."""
    needs = registry.needs_of(names)
    if "classifier" in needs and networks.classifier is None:
        networks.classifier = run_classifier(config)
    if "digits" in needs and networks.digits is None:
        networks.digits = digit_classifier()


def jsonl_writer(workdir: str | os.PathLike, nimg: int
                 ) -> Callable[[str, dict[str, float], dict[str, Any]], None]:
    """An ``on_result`` for :func:`.registry.evaluate`: one ``metrics.jsonl`` line per metric."""
    def write(name: str, values: dict[str, float], options: dict[str, Any]) -> None:
        import jax

        if jax.process_index() != 0:
            return
        record = registry.result_record(nimg, name, values, options, time.time())
        with open(Path(workdir) / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    return write


class LoadedGenerator(Protocol):
    """What :func:`run_metrics` needs of a loaded generator (``generate.Model`` has it)."""

    config: ml_collections.ConfigDict
    G: Any
    variables: Any
    step: int
    workdir: Path | None


def run_metrics(model: LoadedGenerator, metric_names: Sequence[str] | None = None, *,
                inception_weights: str | os.PathLike | None = None,
                inception_mode: str = "nvidia",
                lpips_weights: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, batch_size: int = 64,
                seed: int = 0, cache_dir: str | os.PathLike | None = DEFAULT_CACHE,
                ppl_crop_choice: str = "auto", num_samples: int | None = None,
                classifier: ls_lib.Classifier | None = None, dataset_name: str | None = None,
                networks: registry.Networks | None = None,
                on_skip: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Computes ``metric_names`` (None: every default metric the run can compute, see
    :data:`.registry.DEFAULT_NAMES`) of ``model`` (``generate.load`` of a run's checkpoint,
    at its resolution and fade, in float32; replicate it over every device with
    ``mesh=parallel.make_mesh()``); for a run (``model.workdir`` set), each result is appended
    to ``workdir/metrics.jsonl`` as soon as it is computed. Returns ``{key: value}``.
    ``dataset_name`` overrides ``config.dataset.name`` (the FID reals, the PPL crop);
    ``num_samples`` overrides every metric's sample count; ``classifier`` is the ``ls``
    attribute classifier (e.g. the official CelebA-HQ ones). ``networks`` replaces the weight
    flags (stand-ins in tests); metrics left out of the default list are reported to
    ``on_skip(name, why)``."""
    if metric_names is not None:
        check_names(metric_names)
    config = model.config
    if dataset_name:
        config = ml_collections.ConfigDict(config.to_dict())
        config.dataset.name = dataset_name
    crop = ppl_crop(ppl_crop_choice, config.dataset.name)
    if networks is None:
        networks = registry.Networks(inception_weights=inception_weights,
                                     inception_mode=inception_mode, lpips_weights=lpips_weights)
    if classifier is not None:
        networks.classifier = classifier
    add_run_classifiers(networks, config,
                        default_names(config) if metric_names is None else metric_names)
    metric_names = _computable_names(metric_names, config, networks, on_skip)
    return registry.evaluate(
        metric_names, model.G, model.variables, real_data(config, data_dir), networks=networks,
        cache_dir=cache_dir, batch_size=batch_size, seed=seed, ppl_crop=crop,
        num_samples=num_samples,
        on_result=None if model.workdir is None else jsonl_writer(model.workdir, model.step))


def _computable_names(metric_names: Sequence[str] | None, config: ml_collections.ConfigDict,
                      networks: registry.Networks,
                      on_skip: Callable[[str, str], None] | None) -> list[str]:
    """The metrics to run: the defaults the run can compute (the others reported to
    ``on_skip``), or the names asked for, refused if one needs a classifier there is not."""
    if metric_names is None:
        names, skipped = registry.computable(default_names(config), networks)
        for name, why in skipped.items():
            if on_skip is not None:
                on_skip(name, why)
        if not names:
            raise ValueError("no metric can be computed for this run: "
                             + "; ".join(f"{n}: {w}" for n, w in skipped.items()))
        return names
    for name in metric_names:
        if "classifier" in registry.get(name).needs and networks.classifier is None:
            raise ValueError(f"{name} needs attribute classifiers: the official CelebA-HQ "
                             "ones cannot be shipped; pass registry.Networks(classifier="
                             "...) from Python (digits runs use the bundled digits "
                             "classifier)")
    return list(metric_names)
