"""TFDS builders ``ffhq``, ``image_folder``, ``digits`` and ``stacked_digits``, written as
``array_record``.

Storage: each example is ``image``: raw ``uint8 [R, R, 3]`` (a ``tfds.features.Tensor``) and
``label``: ``int32`` (-1 when the source has none). Raw pixels rather than PNG bytes because
(measured with Pillow on one core) decoding a 1024x1024 PNG costs ~25 ms and a 256x256 one
~2 ms, while a raw record is a memcpy; since every training phase reads the full-resolution
images (lower resolutions are made on the device), the 8x8..64x64 phases would need tens of
cores just for PNG decoding. Lossless PNG saves only ~2x on photos, so FFHQ at 1024 takes
~220 GB instead of ~90 GB; at 256 it is 14 GB. Raw tensors also prepare and read without
TensorFlow (an ``Image`` feature fed numpy arrays calls ``tf.image.encode_png``).

Writing: the builders derive from ``tfds.core.ShardBasedBuilder``, which streams each shard
straight to its ``array_record`` file. ``GeneratorBasedBuilder`` instead pushes every example
through ``tfds.core.shuffle.Shuffler``, which spills to temporary files through
``tf.io.gfile`` once a split passes 1 GB (with or without ``disable_shuffling``), i.e. needs
TensorFlow for any real dataset. Records are stored in sorted source order; the input
pipeline does the global shuffle. TFDS writes into a temporary directory and renames it on
success, so a failed build leaves no dataset behind.

Validation happens before anything is written: ``check_source`` decodes every source file
(in threads) and returns a ``Plan``; ``download_and_prepare`` then writes exactly that plan.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from tqdm import tqdm

from stylegan_jax.data import images as images_lib
from stylegan_jax.images import box_downsample_uint8

SHARD_BYTES = 1 << 30  # ~1 GB of pixels per array_record shard


class SourceError(ValueError):
    """The source cannot be built as asked; the message names every problem."""


@dataclasses.dataclass
class Plan:
    """What a build will write, decided before writing: one entry per good source image."""

    keys: list[str]
    labels: list[int]
    load: Callable[[str], np.ndarray]  # key -> uint8 [R, R, 3]
    class_names: list[str] = dataclasses.field(default_factory=list)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> reason
    ignored: dict[str, str] = dataclasses.field(default_factory=dict)  # non-image -> reason


class _ImageBuilder(tfds.core.ShardBasedBuilder, skip_registration=True):
    """Shared parts: features, sharding, threaded decoding and a progress bar."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw uint8 images in array_record, written without TensorFlow."}

    def __init__(self, *, workers: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._workers = workers or os.cpu_count() or 1
        self._plan: Plan | None = None
        self._bar: tqdm | None = None

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS 4.9.10 looks this up through `importlib_resources`, a package it does not
        # declare on Python >= 3.9; the plain file path is what it would return.
        return epath.Path(inspect.getfile(cls))

    @property
    def resolution(self) -> int:
        return self.builder_config.resolution

    def _info(self) -> tfds.core.DatasetInfo:
        r = self.resolution
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(r, r, 3), dtype=np.uint8,
                                              encoding=tfds.features.Encoding.BYTES),
                "label": tfds.features.Tensor(shape=(), dtype=np.int32),
            }),
            metadata=tfds.core.MetadataDict(),
        )

    def check_source(self, source: str | os.PathLike | None, *, skip_bad: bool = False) -> Plan:
        """Validates the whole source and keeps the resulting plan for the build.

        Raises ``SourceError`` naming every bad file unless ``skip_bad``.
        """
        self._plan = self._make_plan(None if source is None else Path(source), skip_bad)
        return self._plan

    def _make_plan(self, source: Path | None, skip_bad: bool) -> Plan:
        raise NotImplementedError

    def _download_and_prepare(self, dl_manager, download_config=None) -> None:
        if self._plan is None:
            self.check_source(dl_manager.manual_dir if self.MANUAL_DOWNLOAD_INSTRUCTIONS else None)
        plan = self._plan
        self.info.metadata.update(num_classes=len(plan.class_names),
                                  class_names=plan.class_names, skipped=sorted(plan.skipped))
        with tqdm(total=len(plan.keys), desc=f"Writing {self.name}/{self.builder_config.name}",
                  unit="img") as self._bar:
            super()._download_and_prepare(dl_manager, download_config)

    def _shard_iterators_per_split(self, dl_manager):
        n = len(self._plan.keys)
        per_shard = max(1, SHARD_BYTES // (3 * self.resolution ** 2))
        bounds = [(lo, min(n, lo + per_shard)) for lo in range(0, n, per_shard)]
        return {"train": [functools.partial(self._generate, lo, hi) for lo, hi in bounds]}

    def _generate(self, lo: int, hi: int):
        plan = self._plan
        loaded = images_lib.ordered_map(plan.load, plan.keys[lo:hi], self._workers)
        for i, image in zip(range(lo, hi), loaded, strict=True):
            self._bar.update()
            yield i, {"image": image, "label": np.int32(plan.labels[i])}

    def _plan_files(self, source: images_lib.ImageSource, check: Callable[[np.ndarray], None],
                    transform: Callable[[np.ndarray], np.ndarray], skip_bad: bool,
                    labelled: bool) -> Plan:
        """Decodes and checks every file of ``source`` (threads), then applies the policy."""
        if not source.keys:
            others = (f" (only other files: {images_lib.describe_files(source.ignored)})"
                      if source.ignored else "")
            raise SourceError(f"no .png/.jpg/.jpeg/.webp images found in {source.path}{others}")

        def probe(key: str) -> str | None:
            try:
                check(images_lib.decode_rgb(source.read(key)))
            except (images_lib.BadImageError, OSError) as e:
                return str(e)
            return None

        results = images_lib.ordered_map(probe, source.keys, self._workers)
        bad = {k: why for k, why in zip(source.keys, tqdm(
            results, total=len(source.keys), desc=f"Checking {source.path}", unit="img"),
            strict=True) if why is not None}
        if bad and not skip_bad:
            listing = "\n".join(f"  {k}: {why}" for k, why in bad.items())
            raise SourceError(f"{len(bad)} of {len(source.keys)} source files are unusable, "
                              f"nothing was written (skip_bad=True skips them):\n{listing}")
        if bad:
            logging.warning("skipping %d unusable source files: %s", len(bad), bad)
        good = [k for k in source.keys if k not in bad]
        if not good:
            raise SourceError(f"every image in {source.path} is unusable")
        labels, class_names = _folder_labels(good) if labelled else ([-1] * len(good), [])
        return Plan(keys=good, labels=labels, class_names=class_names, skipped=bad,
                    ignored=source.ignored,
                    load=lambda key: transform(images_lib.decode_rgb(source.read(key))))


def _folder_labels(keys: list[str]) -> tuple[list[int], list[str]]:
    """Class labels from sub-folder names, ``torchvision.ImageFolder`` style.

    Below the deepest folder shared by all images, the first folder level names the class,
    if every image has one and there are at least two; otherwise every label is -1.
    """
    dirs = [PurePosixPath(k).parent.parts for k in keys]
    common = 0
    while all(len(d) > common for d in dirs) and len({d[common] for d in dirs}) == 1:
        common += 1
    if not all(len(d) > common for d in dirs):
        return [-1] * len(keys), []
    names = sorted({d[common] for d in dirs})
    index = {name: i for i, name in enumerate(names)}
    return [index[d[common]] for d in dirs], names


@dataclasses.dataclass
class ResolutionConfig(tfds.core.BuilderConfig):
    """A builder config fixing the stored resolution (and, for folders, the fit mode)."""

    resolution: int = 0
    fit: images_lib.Fit = "crop"


FFHQ_RESOLUTIONS = tuple(2 ** k for k in range(10, 2, -1))  # 1024 .. 8


class Ffhq(_ImageBuilder):
    """FFHQ (Karras et al. 2019): 70,000 aligned faces, stored at one power-of-two resolution
    made from the source PNGs by the official repeated 2x2 box averaging."""

    name = "ffhq"
    BUILDER_CONFIGS = [ResolutionConfig(name=str(r), resolution=r,
                                        description=f"{r}x{r} RGB, box-downsampled")
                       for r in FFHQ_RESOLUTIONS]
    DEFAULT_BUILDER_CONFIG_NAME = "1024"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
FFHQ cannot be downloaded automatically. Get `images1024x1024` (89 GB, 70,000 PNGs) from
https://github.com/NVlabs/ffhq-dataset (`python download_ffhq.py --images`, or the Google
Drive folder linked there), then pass as --source either the folder that contains
`images1024x1024/` (or `images1024x1024.zip`), the `images1024x1024` folder itself (numbered
sub-folders or flat), or the zip file.
"""

    def _make_plan(self, source: Path | None, skip_bad: bool) -> Plan:
        if source is None or not source.exists():
            raise SourceError(f"FFHQ source {source} does not exist.\n\n"
                              f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        for official in (source / "images1024x1024", source / "images1024x1024.zip"):
            if official.exists():
                source = official
                break
        files = images_lib.ImageSource(source, extensions={".png"})
        if not files.keys:
            raise SourceError(f"no PNG files in {source}.\n\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        r = self.resolution

        def check(image: np.ndarray) -> None:
            h, w = image.shape[:2]
            if h != w or h & (h - 1):
                raise images_lib.BadImageError(f"{w}x{h} is not a square power of two")
            if h < r:
                raise images_lib.BadImageError(f"{w}x{h} is smaller than {r}x{r}")

        return self._plan_files(files, check, lambda im: box_downsample_uint8(im, r),
                                skip_bad, labelled=False)


IMAGE_FOLDER_RESOLUTIONS = tuple(2 ** k for k in range(3, 11))  # 8 .. 1024


class ImageFolder(_ImageBuilder):
    """Your own images: a folder (searched recursively) or zip of PNG/JPEG/WebP files, made
    square by centre crop or black padding and resized (Lanczos) to a power of two. Class
    labels come from sub-folder names when there are any (see ``_folder_labels``)."""

    name = "image_folder"
    BUILDER_CONFIGS = [ResolutionConfig(name=f"{r}_{fit}", resolution=r, fit=fit,
                                        description=f"{r}x{r} RGB, {fit} to square")
                       for r in IMAGE_FOLDER_RESOLUTIONS for fit in ("crop", "pad")]
    DEFAULT_BUILDER_CONFIG_NAME = "256_crop"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the folder or .zip holding your images as --source."

    def _make_plan(self, source: Path | None, skip_bad: bool) -> Plan:
        if source is None:
            raise SourceError("image_folder needs a source folder or zip")
        r, fit = self.resolution, self.builder_config.fit

        def check(image: np.ndarray) -> None:
            h, w = image.shape[:2]
            side = min(h, w) if fit == "crop" else max(h, w)
            if side < r:
                raise images_lib.BadImageError(
                    f"{w}x{h} is smaller than {r}x{r} ({fit}); upscaling would blur it")

        return self._plan_files(images_lib.ImageSource(source), check,
                                lambda im: images_lib.fit_square(im, r, fit), skip_bad,
                                labelled=True)


DIGITS_RESOLUTION = 32


@dataclasses.dataclass
class _FixedConfig(tfds.core.BuilderConfig):
    resolution: int = DIGITS_RESOLUTION


class Digits(_ImageBuilder):
    """scikit-learn's bundled handwritten digits (UCI optdigits test set): 1,797 images of 8x8
    with values 0..16 and labels 0..9, as white-on-black 32x32 RGB.

    Upscaling: values are scaled to 0..255 and resized 8 -> 32 with Pillow's bicubic filter,
    which turns the 4x4 blocks of a nearest-neighbour upscale into smooth pen strokes (a
    GAN would otherwise spend capacity on block edges). Needs no download.
    """

    name = "digits"
    BUILDER_CONFIGS = [_FixedConfig(name="32", description="32x32 RGB, bicubic from 8x8")]

    def _make_plan(self, source: Path | None, skip_bad: bool) -> Plan:
        images, labels = digits_arrays()
        keys = [f"{i:04d}" for i in range(len(images))]
        return Plan(keys=keys, labels=labels.tolist(), load=lambda key: images[int(key)],
                    class_names=[str(d) for d in range(10)])


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The upscaled digits: uint8 ``[1797, 32, 32, 3]`` and int32 labels ``[1797]``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    size = (DIGITS_RESOLUTION, DIGITS_RESOLUTION)
    big = np.stack([np.asarray(Image.fromarray(im).resize(size, Image.Resampling.BICUBIC))
                    for im in small])
    return np.repeat(big[..., None], 3, axis=-1), digits.target.astype(np.int32)


STACKED_DIGITS_IMAGES = 100_000
STACKED_DIGITS_SEED = 0


@dataclasses.dataclass
class StackedConfig(tfds.core.BuilderConfig):
    """How many triples to draw, and the seed that fixes them."""

    resolution: int = DIGITS_RESOLUTION
    num_images: int = STACKED_DIGITS_IMAGES
    seed: int = STACKED_DIGITS_SEED


class StackedDigits(_ImageBuilder):
    """Stacked digits, the 1,000-mode benchmark of "Stacked MNIST" (Metz et al. 2017, Lin et
    al. 2018) made from the bundled digits: each image's red, green and blue channels are three
    independent uniformly drawn digit images of :func:`digits_arrays`; the label is the mode
    ``100 * red + 10 * green + blue`` (0..999), stored for the mode-coverage metric (training
    stays unconditional). The triples are fixed by the config's seed. Needs no download.
    """

    name = "stacked_digits"
    BUILDER_CONFIGS = [StackedConfig(name="32", description=f"{STACKED_DIGITS_IMAGES} 32x32 "
                                     "RGB images, one random digit per channel")]

    def _make_plan(self, source: Path | None, skip_bad: bool) -> Plan:
        digits, digit_labels = digits_arrays()
        config = self.builder_config
        picks = stacked_digits_picks(len(digits), config.num_images, config.seed)
        labels = stacked_digits_modes(digit_labels[picks])
        keys = [f"{i:07d}" for i in range(config.num_images)]
        return Plan(keys=keys, labels=labels.tolist(),
                    load=lambda key: digits[picks[int(key)], :, :, 0].transpose(1, 2, 0),
                    class_names=[f"{m:03d}" for m in range(1000)])


def stacked_digits_picks(num_digits: int, num_images: int, seed: int) -> np.ndarray:
    """Indices ``[num_images, 3]`` of the digit image in each channel (R, G, B), drawn
    uniformly and independently with ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).integers(0, num_digits, (num_images, 3))


def stacked_digits_modes(channel_digits: np.ndarray) -> np.ndarray:
    """Digit classes ``[..., 3]`` (R, G, B) -> mode ``100 R + 10 G + B`` (int32)."""
    channel_digits = np.asarray(channel_digits)
    return (channel_digits @ np.array([100, 10, 1])).astype(np.int32)


BUILDERS: dict[str, type[_ImageBuilder]] = {
    "ffhq": Ffhq, "image_folder": ImageFolder, "digits": Digits,
    "stacked_digits": StackedDigits,
}


def config_name(dataset: str, resolution: int | None = None, fit: str = "crop") -> str:
    """The TFDS config name for a prepare request; raises ``ValueError`` if there is none."""
    cls = BUILDERS[dataset]
    names = [c.name for c in cls.BUILDER_CONFIGS]
    if dataset in ("digits", "stacked_digits"):
        if resolution not in (None, DIGITS_RESOLUTION):
            raise ValueError(f"{dataset} is {DIGITS_RESOLUTION}x{DIGITS_RESOLUTION} only")
        return names[0]
    if resolution is None:
        resolution = 1024 if dataset == "ffhq" else 256
    name = str(resolution) if dataset == "ffhq" else f"{resolution}_{fit}"
    if name not in names:
        raise ValueError(f"{dataset} has no config {name!r}; resolutions are powers of two "
                         f"in {sorted({c.resolution for c in cls.BUILDER_CONFIGS})}")
    return name

