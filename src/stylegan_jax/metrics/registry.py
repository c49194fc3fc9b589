"""One metrics design for the CLI and the training loop: a registry of named metrics and one
driver, as in stylegan2-ada-pytorch's ``metric_main`` and big_vision's evaluators.

- :data:`REGISTRY` maps a name (``fid50k``, ``fid10k``, ``ppl_zfull``, ``ppl_wfull``,
  ``ppl_zend``, ``ppl_wend``, ``ls``, ``modes``) to a :class:`Metric`: its function, its
  sample count and what it needs (real images, Inception, LPIPS, an attribute or digit
  classifier). A registered *base*
  takes any sample count as a suffix: ``fid5k`` (5000 images), ``ppl_wend20k``, ``ls10k``,
  ``fid256`` (256 images; small demos and tests). :func:`register` adds a metric; it is then
  available to ``stylegan-jax metrics --metrics`` and to ``config.metrics`` alike.
- :func:`evaluate` is the driver: a generator (at its resolution and fade, float32), its
  variables, the real data (:class:`RealData`) and a cache directory -> ``{key: value}``. Each
  metric's result goes to ``on_result`` as soon as it is computed, so a later failure loses
  nothing.
- :func:`~stylegan_jax.metrics.frechet.real_stats_key` is the one cache key of real FID
  statistics (used through :meth:`Context.real_stats`).

Metric functions stay pure: they see a :class:`Context` (generator, data, networks, options),
never a config, schedule, checkpoint or dataset name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jax.sharding import Mesh

from stylegan_jax.digit_classifiers import DigitsClassifier
from stylegan_jax.metrics import frechet as fid_lib
from stylegan_jax.metrics import inception as inception_lib
from stylegan_jax.metrics import lpips as lpips_lib
from stylegan_jax.metrics import modes as modes_lib
from stylegan_jax.metrics import path_length as ppl_lib
from stylegan_jax.metrics import separability as ls_lib

DEFAULT_CACHE = Path("~/.cache/stylegan-jax/fid").expanduser()


@dataclasses.dataclass(frozen=True)
class RealData:
    """A prepared dataset as training streams it: directory, name, mirror setting, shuffle
    seed (real statistics use the same first images in the same order)."""

    data_dir: str
    name: str
    mirror: bool = True
    seed: int = 0


class Networks:
    """The networks metrics share, loaded on first use and kept: Inception (FID), LPIPS (PPL),
    an attribute classifier (``ls``), a digit classifier (``modes``). Tests and notebooks may
    pass stand-ins: ``extractor`` (any :class:`~stylegan_jax.metrics.frechet.FeatureExtractor`),
    ``distance`` = ``(fn, params)`` for PPL, ``classifier``, ``digits``."""

    def __init__(self, *, inception_weights: str | os.PathLike | None = None,
                 inception_mode: str = "nvidia", lpips_weights: str | os.PathLike | None = None,
                 extractor: fid_lib.FeatureExtractor | None = None,
                 distance: tuple[ppl_lib.Distance, Any] | None = None,
                 classifier: ls_lib.Classifier | None = None,
                 digits: DigitsClassifier | None = None):
        self.inception_weights = inception_weights or None
        self.inception_mode = inception_mode
        self.lpips_weights = lpips_weights or None
        self._extractor = extractor
        self._distance = distance
        self.classifier = classifier
        self.digits = digits

    def extractor(self) -> fid_lib.FeatureExtractor:
        if self._extractor is None:
            self._extractor = inception_lib.InceptionFeatures(
                inception_lib.load_inception(self.inception_weights), self.inception_mode)
        return self._extractor

    def distance(self) -> tuple[ppl_lib.Distance, Any]:
        if self._distance is None:
            self._distance = (lpips_lib.distance_255, lpips_lib.load_lpips(self.lpips_weights))
        return self._distance

    def feature_id(self) -> str:
        """What the real statistics depend on besides the data: the extractor."""
        if self._extractor is not None and not isinstance(
                self._extractor, inception_lib.InceptionFeatures):
            ex = self._extractor
            return f"{type(ex).__module__}.{type(ex).__qualname__}:{ex.dim}"
        weights = self.inception_weights or os.environ.get(inception_lib.INCEPTION_ENV, "")
        return f"inception:{self.inception_mode}:{Path(weights).name}"

    def missing(self, need: str) -> str | None:
        """Why ``need`` is unavailable (None if it is, or may be, available)."""
        if need == "inception" and self._extractor is None and not (
                self.inception_weights or os.environ.get(inception_lib.INCEPTION_ENV)):
            return f"no Inception weights (--inception_weights or ${inception_lib.INCEPTION_ENV})"
        if need == "lpips" and self._distance is None and not (
                self.lpips_weights or os.environ.get(lpips_lib.LPIPS_ENV)):
            return f"no LPIPS weights (--lpips_weights or ${lpips_lib.LPIPS_ENV})"
        if need == "classifier" and self.classifier is None:
            return "no attribute classifier (only digits runs bring one)"
        if need == "digits" and self.digits is None:
            return "no digit classifier (stacked_digits runs bring one)"
        return None

    def load(self, needs: Sequence[str]) -> None:
        """Loads what ``needs`` names now (a missing weights file fails before training)."""
        if "inception" in needs:
            self.extractor()
        if "lpips" in needs:
            self.distance()


@dataclasses.dataclass(frozen=True)
class Context:
    """What a metric function sees. ``generator.apply`` renders full-resolution images (a
    :class:`~stylegan_jax.sampling.PhaseGenerator` for a mid-training checkpoint)."""

    generator: Any
    variables: Any
    reals: RealData | None
    networks: Networks
    cache_dir: Path | None
    batch_size: int = 64
    seed: int = 0
    mesh: Mesh | None = None
    ppl_crop: bool = False

    def real_stats(self, num_images: int) -> fid_lib.Stats:
        """Real feature statistics, cached under
        :func:`~stylegan_jax.metrics.frechet.real_stats_key`."""
        if self.reals is None:
            raise ValueError("FID needs the real dataset")
        r = self.reals
        return fid_lib.dataset_stats(
            r.data_dir, r.name, self.networks.extractor(), num_images=num_images,
            mirror=r.mirror, seed=r.seed, batch_size=self.batch_size, mesh=self.mesh,
            cache_dir=self.cache_dir, cache_key=self.networks.feature_id())


@dataclasses.dataclass(frozen=True)
class Metric:
    """A registered metric: ``fn(context, name, num_samples) -> ({key: value}, {option:
    value})`` (options are recorded with the result), its default ``num_samples``, what it
    ``needs``, the result key that ranks checkpoints (``primary``, default the name) and
    whether lower values of it are better."""

    name: str
    fn: Callable[[Context, str, int], tuple[dict[str, float], dict[str, Any]]]
    num_samples: int
    needs: tuple[str, ...] = ()
    primary: str | None = None
    lower_is_better: bool = True

    @property
    def key(self) -> str:
        """The result key that ranks checkpoints by this metric."""
        return self.primary or self.name

    def with_samples(self, name: str, num_samples: int) -> Metric:
        return dataclasses.replace(self, name=name, num_samples=num_samples)


REGISTRY: dict[str, Metric] = {}
BASES: dict[str, Metric] = {}  # names that take a sample-count suffix
_VARIANT = re.compile(r"(?P<base>[a-z_]+?)(?P<n>\d+)(?P<k>k?)")


def register(metric: Metric, *, base: bool = True) -> Metric:
    """Adds ``metric`` under its name; ``base``: also accept ``<name><N>k`` / ``<name><N>``."""
    REGISTRY[metric.name] = metric
    if base:
        BASES[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    """The registered metric ``name``, or a sample-count variant of a base; ``ValueError``
    naming the registered ones otherwise."""
    if name in REGISTRY:
        return REGISTRY[name]
    m = _VARIANT.fullmatch(name)
    if m and m["base"] in BASES and int(m["n"]) > 0:
        return BASES[m["base"]].with_samples(name, int(m["n"]) * (1000 if m["k"] else 1))
    raise ValueError(f"unknown metric {name!r}; registered: {', '.join(sorted(REGISTRY))} "
                     f"(a count suffix sets the samples: e.g. fid10k, ppl_wend20k, fid256)")


def check_names(names: Sequence[str]) -> list[Metric]:
    """The metrics ``names`` (``ValueError`` naming the first unknown one)."""
    return [get(n) for n in names]


def computable(names: Sequence[str], networks: Networks) -> tuple[list[str], dict[str, str]]:
    """``names`` split into those computable with ``networks`` (the weights they need are
    given, a classifier is there) and ``{name: why not}`` for the rest."""
    ok, skipped = [], {}
    for name in names:
        metric = get(name)
        why = next((w for w in (networks.missing(n) for n in metric.needs) if w), None)
        if why is None:
            ok.append(name)
        else:
            skipped[name] = why
    return ok, skipped


def needs_of(names: Sequence[str]) -> set[str]:
    """What the metrics ``names`` need together ('reals', 'inception', 'lpips', ...)."""
    return {need for name in names for need in get(name).needs}


def evaluate(names: Sequence[str], generator: Any, variables: Any, reals: RealData | None, *,
             networks: Networks, cache_dir: str | os.PathLike | None = DEFAULT_CACHE,
             batch_size: int = 64, seed: int = 0, mesh: Mesh | None = None,
             ppl_crop: bool = False, num_samples: int | None = None,
             on_result: Callable[[str, dict[str, float], dict[str, Any]], None] | None = None,
             ) -> dict[str, float]:
    """The driver: computes ``names`` in order for ``generator`` (run it at its resolution and
    fade, in float32) and returns ``{key: value}`` (``ls`` gives ``ls_z`` and ``ls_w``).
    ``on_result(name, values, options)`` runs after each metric, before the next starts.
    ``num_samples`` overrides every metric's sample count (quick checks)."""
    metrics = check_names(names)
    if num_samples is not None:
        metrics = [m.with_samples(m.name, num_samples) for m in metrics]
    context = Context(generator, variables, reals, networks,
                      None if cache_dir is None else Path(cache_dir), batch_size, seed, mesh,
                      ppl_crop)
    results: dict[str, float] = {}
    for metric in metrics:
        values, options = metric.fn(context, metric.name, metric.num_samples)
        values = {k: float(v) for k, v in values.items()}
        options = {"num_samples": metric.num_samples, **options}
        if on_result is not None:
            on_result(metric.name, values, options)
        results.update(values)
    return results


# ---- the metrics -------------------------------------------------------------------------

def _fid(ctx: Context, name: str, n: int) -> tuple[dict, dict]:
    reals = ctx.real_stats(n)
    value = fid_lib.fid(ctx.generator, ctx.variables, reals, ctx.networks.extractor(),
                        num_images=n, batch_size=ctx.batch_size, seed=ctx.seed, mesh=ctx.mesh)
    return {name: value}, {"feature_extractor": ctx.networks.feature_id()}


def _ppl(space: str, sampling: str) -> Callable[[Context, str, int], tuple[dict, dict]]:
    def fn(ctx: Context, name: str, n: int) -> tuple[dict, dict]:
        distance, params = ctx.networks.distance()
        value = ppl_lib.ppl(ctx.generator, ctx.variables, params, space=space, sampling=sampling,
                            num_samples=n, crop=ctx.ppl_crop, batch_size=ctx.batch_size,
                            seed=ctx.seed, mesh=ctx.mesh, distance=distance)
        return {name: value}, {"ppl_crop": ctx.ppl_crop}

    return fn


def _ls(ctx: Context, name: str, n: int) -> tuple[dict, dict]:
    values = ls_lib.linear_separability(
        ctx.generator, ctx.variables, ctx.networks.classifier, num_samples=n, num_keep=n // 2,
        batch_size=ctx.batch_size, seed=ctx.seed, mesh=ctx.mesh)
    return values, {}


register(Metric("fid", _fid, 50000, ("reals", "inception")))
register(Metric("fid50k", _fid, 50000, ("reals", "inception")), base=False)
register(Metric("fid10k", _fid, 10000, ("reals", "inception")), base=False)
for _space in ppl_lib.SPACES:
    for _sampling in ppl_lib.SAMPLINGS:
        register(Metric(f"ppl_{_space}{_sampling}", _ppl(_space, _sampling), 100000,
                        ("lpips",)))
register(Metric("ls", _ls, 200000, ("classifier",), primary="ls_w"))


def _modes(ctx: Context, name: str, n: int) -> tuple[dict, dict]:
    values = modes_lib.mode_coverage(modes_lib.generator_sampler(ctx.generator, ctx.variables),
                                     ctx.networks.digits, num_samples=n,
                                     batch_size=ctx.batch_size, seed=ctx.seed)
    return values, {}


register(Metric("modes", _modes, 26000, ("digits",), lower_is_better=False))
DEFAULT_NAMES = ("fid50k", "ppl_zfull", "ppl_wfull", "ppl_zend", "ppl_wend", "ls", "modes")


def result_record(nimg: int, name: str, values: dict[str, float], options: dict[str, Any],
                  time: float) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: ``{"nimg", "time", "metric", **values, **options}``."""
    return {"nimg": nimg, "time": time, "metric": name, **values, **options}

