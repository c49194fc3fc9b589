"""Directions in W to edit images along: the linear-separability step's SVM normals.

For each binary attribute of a classifier, sample images without truncation, keep the most
confident half, fit ``LinearSVC`` on their w (as ``ls`` does) and take its normal, pointing
toward the attribute and scaled to the samples' standard deviation along it
(:func:`stylegan_jax.metrics.separability.attribute_direction`). ``w + k * direction`` then
moves an image k standard deviations toward the attribute (``figure --kind edit``).
Classifiers: the bundled digits' ten one-vs-rest digit attributes for digits runs
(``digit0``..``digit9``), or NVIDIA's 40 CelebA-HQ classifiers (a directory of
``celebahq-classifier-*.pkl``) for official face networks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jax.sharding import Mesh

from stylegan_jax import official
from stylegan_jax.generate import Model
from stylegan_jax.metrics import separability
from stylegan_jax.metrics.run import run_classifier


def attribute_classifier(model: Model, classifiers: str | os.PathLike | None = None
                         ) -> tuple[separability.Classifier, list[str]]:
    """``(classifier, attribute names)``: the CelebA-HQ classifiers in directory
    ``classifiers`` if given, else the one the run brings (digits runs)."""
    if classifiers is not None:
        names = [p.stem.removeprefix("celebahq-classifier-")
                 for p in sorted(Path(classifiers).glob(official.CLASSIFIER_GLOB))]
        return official.attribute_classifier(classifiers), names
    dataset = model.config.get("dataset") if hasattr(model.config, "get") else None
    classifier = run_classifier(model.config) if dataset is not None else None
    if classifier is None:
        raise ValueError("this run brings no attribute classifier (only digits runs do); "
                         "give a directory of the official celebahq-classifier-*.pkl")
    return classifier, [f"digit{k}" for k in range(10)]


def fit_directions(model: Model, classifier: separability.Classifier, *,
                   num_samples: int = 20000, num_keep: int | None = None,
                   batch_size: int = 64, seed: int = 0, mesh: Mesh | None = None
                   ) -> np.ndarray:
    """One direction ``[A, D]`` per attribute of ``classifier`` from ``num_samples`` images
    (the ``num_keep`` surest of each, default half)."""
    _, w, probs = separability.sample_attributes(model.G, model.variables, classifier,
                                                 num_samples=num_samples,
                                                 batch_size=batch_size, seed=seed, mesh=mesh)
    keep = num_samples // 2 if num_keep is None else num_keep
    return np.stack([separability.attribute_direction(w, probs[:, a], keep)
                     for a in range(probs.shape[1])])


def save_directions(outdir: str | os.PathLike, directions: np.ndarray,
                    names: Sequence[str]) -> list[Path]:
    """``outdir/NAME.npy`` (float32 ``[D]``) per direction; returns the files."""
    if len(names) != len(directions):
        raise ValueError(f"{len(names)} names for {len(directions)} directions")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.npy" for name in names]
    for path, d in zip(paths, directions, strict=True):
        np.save(path, np.asarray(d, np.float32))
    return paths


def load_direction(path: str | os.PathLike, dlatent_size: int) -> np.ndarray:
    """A ``[D]`` direction from a ``.npy``; errors name the file."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a direction from it ({e})") from None
    if d.shape != (dlatent_size,) or not np.issubdtype(d.dtype, np.floating):
        raise ValueError(f"{path}: a direction must be {dlatent_size} floats (this model's "
                         f"w), got {d.dtype} {list(d.shape)}")
    return d.astype(np.float32)
