"""``stylegan-jax prepare``: validate a source, then build it into an ``array_record`` dataset.

Order of work: check every source image (nothing written yet), then write; any failure while
writing removes what this build created, so ``data_dir`` never holds a half-written dataset.
TFDS's own banner ("Downloading and preparing dataset Unknown size ...") is kept off stdout:
nothing is downloaded, and the caller reports what was written (:class:`Prepared`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import tensorflow_datasets as tfds

from stylegan_jax.data import builders
from stylegan_jax.errors import require_dir


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Where a prepared dataset lives and what it holds."""

    name: str  # what the input pipeline and ``data-bench --dataset`` take, e.g. "ffhq/256"
    path: Path  # data_dir/name/config/version
    num_examples: int
    skipped: Mapping[str, str]  # unusable source images left out by --skip_bad -> why
    num_classes: int
    ignored: Mapping[str, str] = dataclasses.field(default_factory=dict)  # non-images -> why
    num_bytes: int = 0  # on disk, every file of the prepared copy
    seconds: float = 0.0  # writing it (after the source check)


def prepare_dataset(dataset: str, data_dir: str | os.PathLike, *,
                    source: str | os.PathLike | None = None, resolution: int | None = None,
                    fit: str = "crop", skip_bad: bool = False, overwrite: bool = False,
                    workers: int | None = None) -> Prepared:
    """Builds ``dataset`` (``ffhq``, ``image_folder``, ``digits`` or
    ``stacked_digits``) into ``data_dir``.

    ``source`` is the FFHQ manual directory / zip or the user's image folder / zip;
    ``resolution`` defaults to 1024 for ffhq and 256 for image_folder; ``fit`` is ``crop`` or
    ``pad`` (image_folder only). Raises ``builders.SourceError`` (bad or missing source, bad
    files unless ``skip_bad``) and ``FileExistsError`` (already prepared, unless
    ``overwrite``, which deletes the old copy once the source has passed validation) and
    ``UsageError`` if ``data_dir`` is a file.
    """
    if dataset not in builders.BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(builders.BUILDERS)}")
    config = builders.config_name(dataset, resolution, fit)
    data_dir = require_dir(data_dir, "data_dir").absolute()
    builder = builders.BUILDERS[dataset](config=config, data_dir=os.fspath(data_dir),
                                         file_format="array_record", workers=workers)
    name = f"{dataset}/{config}"
    if Path(builder.data_dir).exists() and not overwrite:
        raise FileExistsError(f"{name} is already prepared in {builder.data_dir} "
                              "(overwrite=True replaces it)")
    plan = builder.check_source(source, skip_bad=skip_bad)

    new_dirs = [d for d in (data_dir, data_dir / dataset, data_dir / dataset / config)
                if not d.exists()]
    mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    start = time.monotonic()
    try:
        with (tempfile.TemporaryDirectory(prefix="stylegan-jax-prepare-") as scratch,
              contextlib.redirect_stdout(io.StringIO())):  # TFDS's "Downloading ..." banner
            builder.download_and_prepare(
                download_dir=scratch,
                download_config=tfds.download.DownloadConfig(download_mode=mode))
    except BaseException:
        if new_dirs:
            shutil.rmtree(new_dirs[0], ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    path = Path(builder.data_dir)
    return Prepared(name=name, path=path,
                    num_examples=builder.info.splits["train"].num_examples,
                    skipped=dict(sorted(plan.skipped.items())),
                    num_classes=len(plan.class_names), ignored=plan.ignored,
                    num_bytes=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
                    seconds=seconds)
