"""Finding a prepared dataset before anything else happens (train, data-bench, metrics).

Opening a dataset that was never prepared lets TFDS fail deep inside with advice that does not
apply ("... file format TFRECORD is not supported ... delete the data"), after the caller has
already created its run directory. :func:`open_prepared` looks first, reading only
``data_dir``, and raises :class:`DatasetNotPreparedError`: which dataset was looked for where,
which prepared ones are there, and the ``stylegan-jax prepare`` command that makes it.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import tensorflow_datasets as tfds

from stylegan_jax.data import builders
from stylegan_jax.errors import UsageError


class DatasetNotPreparedError(UsageError):
    """The dataset a run asks for is not (or not completely) prepared in its data_dir."""


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset's builder and what the trainer checks against the config."""

    name: str  # builder/config, e.g. "ffhq/256"
    builder: tfds.core.DatasetBuilder
    resolution: int
    num_classes: int


def prepared_names(data_dir: Path) -> list[str]:
    """``builder/config`` of every complete dataset in ``data_dir`` (a version folder with
    ``dataset_info.json``; TFDS's ``*.incomplete*`` folders of a failed build don't count)."""
    return sorted({f"{info.parents[2].name}/{info.parents[1].name}"
                   for info in data_dir.glob("*/*/*/dataset_info.json")
                   if "incomplete" not in info.parent.name})


def prepare_command(builder_name: str, config_name: str, data_dir: Path) -> str:
    """The ``stylegan-jax prepare`` command line that makes ``builder_name/config_name``."""
    cls = builders.BUILDERS[builder_name]
    config = next(c for c in cls.BUILDER_CONFIGS if c.name == config_name)
    args = ["stylegan-jax", "prepare", "--dataset", builder_name]
    if len(cls.BUILDER_CONFIGS) > 1:
        args += ["--resolution", str(config.resolution)]
        if len({getattr(c, "fit", None) for c in cls.BUILDER_CONFIGS}) > 1:
            args += ["--fit", config.fit]
    if cls.MANUAL_DOWNLOAD_INSTRUCTIONS:
        args += ["--source", "SOURCE"]
    return " ".join([*map(shlex.quote, args), "--data_dir", shlex.quote(os.fspath(data_dir))])


def open_prepared(data_dir: str | os.PathLike, name: str) -> PreparedDataset:
    """The prepared dataset ``name`` (``digits``, ``ffhq/256``, ``image_folder/256_crop``;
    a bare builder name means its default config) in ``data_dir``; reads nothing else and
    writes nothing. Raises :class:`DatasetNotPreparedError` saying what to run instead."""
    data_dir = Path(data_dir).expanduser().absolute()
    if data_dir.exists() and not data_dir.is_dir():
        raise DatasetNotPreparedError(f"data_dir {data_dir} is a file, not a directory")
    available = prepared_names(data_dir) if data_dir.is_dir() else []
    there = (f"prepared there: {', '.join(available)}" if available
             else "nothing is prepared there" if data_dir.is_dir()
             else "that directory does not exist")
    builder_name, _, config_name = name.partition(":")[0].partition("/")
    cls = builders.BUILDERS.get(builder_name)
    if cls is None:
        raise DatasetNotPreparedError(
            f"unknown dataset {name!r} ({there}); prepare makes e.g. "
            + ", ".join(f"{b}/{c.DEFAULT_BUILDER_CONFIG_NAME or c.BUILDER_CONFIGS[0].name}"
                        for b, c in sorted(builders.BUILDERS.items())))
    configs = [c.name for c in cls.BUILDER_CONFIGS]
    config_name = config_name or cls.DEFAULT_BUILDER_CONFIG_NAME or configs[0]
    if config_name not in configs:
        raise DatasetNotPreparedError(
            f"dataset {name!r}: {builder_name} has no config {config_name!r} (configs: "
            f"{', '.join(configs)}; {there})")
    full = f"{builder_name}/{config_name}"
    if full not in available:
        raise DatasetNotPreparedError(
            f"dataset {full} is not prepared in {data_dir} ({there}); make it with: "
            f"{prepare_command(builder_name, config_name, data_dir)}")
    builder = tfds.builder(full, data_dir=os.fspath(data_dir))
    metadata = builder.info.metadata or {}
    return PreparedDataset(name=full, builder=builder,
                           resolution=int(builder.info.features["image"].shape[0]),
                           num_classes=int(metadata.get("num_classes", 0)))
