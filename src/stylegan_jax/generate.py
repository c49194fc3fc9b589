"""Sampling from a trained run: :func:`load` its EMA generator, turn seeds into latents and
generate images with truncation, per-layer styles (W+) and explicit, deterministic noise.

Conventions (kept stable so that a seed names the same image everywhere):

- seed -> z: ``np.random.RandomState(seed).randn(latent_size)``, as the official
  ``generate_figures.py``; seeds are integers in [0, 2**32).
- noise: an int is a *noise seed*; its realisation is ``jax.random.normal`` from
  ``jax.random.split(jax.random.key(noise_seed), num_layers)[i]`` for layer i, shape
  ``[1, h, w, 1]``, shared by the whole batch (like the official ``randomize_noise=False``,
  one fixed realisation). The default is noise seed 0. A list of per-layer arrays
  (``[1 or N, h, w, 1]``) is used as given. ``'stored'`` uses the noise constants stored in
  an official StyleGAN pickle (what its ``randomize_noise=False`` figures use).
- style layers: layers ``2r-4`` and ``2r-3`` belong to resolution ``2**r`` (0, 1: 4x4; see
  :func:`stylegan_jax.networks.first_style_layer` and ``layer_resolution``). Named
  ranges are defined by resolution, so they adapt to the model: coarse 4-8, middle 16-32,
  fine 64 and up. A name that covers no layer of the model (fine at 32x32) is an error.
- classes: a conditional model sampled without a class draws seed s as class
  ``s % num_classes`` (:func:`seed_classes`), so seeds 0-9 of a 10-class model give one image
  of each class and a seed names the same image in ``Model.generate``/``map``, the
  ``generate`` and ``figure`` commands and the notebook. Latents given without their seeds
  count as seeds 0, 1, 2, ... (row i is class ``i % num_classes``); pass ``seeds=`` to say
  where they came from. An explicit ``class_index`` (one class, or one per row) overrides.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import parallel
from stylegan_jax.networks import (
    Generator,
    first_style_layer,
    layer_resolution,
    noise_shapes,
    num_style_layers,
)

PSI_RANGE = (-2.0, 2.0)  # truncation psi beyond this only extrapolates into garbage
STYLE_RANGES = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, None)}
Noise = int | str | Sequence[Any]
STORED = "stored"


def parse_seeds(text: str) -> list[int]:
    """``'0-99'``, ``'1,5,7'`` or a mix (``'0-3,10'``) -> seeds, in order, inclusive ranges."""
    seeds = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"bad seed list {text!r}: use e.g. '0-99', '1,5,7' or '0-3,10'")
        lo = int(match[1])
        hi = int(match[2]) if match[2] is not None else lo
        if hi < lo:
            raise ValueError(f"bad seed range {part.strip()!r}: the end is before the start")
        seeds.extend(range(lo, hi + 1))
    if max(seeds) >= 2**32:
        raise ValueError(f"seeds must be < 2**32, got {max(seeds)}")
    return seeds


def seeds_to_z(seeds: Sequence[int], latent_size: int) -> np.ndarray:
    """The official seed -> latent map: ``[len(seeds), latent_size]`` float32."""
    return np.stack([np.random.RandomState(s).randn(latent_size) for s in seeds]
                    ).astype(np.float32)


def seed_classes(seeds: Sequence[int], num_classes: int) -> np.ndarray:
    """The class a conditional model draws for each seed when none is given:
    ``seed % num_classes`` (the one rule every entry point uses; see the module docstring)."""
    return np.asarray(seeds, dtype=np.int64).reshape(-1) % num_classes


def check_psi(psi: float | None) -> None:
    """Rejects a truncation psi outside :data:`PSI_RANGE` (``None`` means no truncation)."""
    if psi is not None and not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise ValueError(f"truncation psi {psi} is outside [{PSI_RANGE[0]}, {PSI_RANGE[1]}] "
                         f"(1 = no truncation, 0 = the average image)")


def _named_layers(name: str, num_layers: int) -> range:
    lo, hi = STYLE_RANGES[name]
    stop = num_layers if hi is None else min(num_style_layers(hi), num_layers)
    return range(first_style_layer(lo), stop)


def named_styles(num_layers: int) -> list[str]:
    """The named style ranges that cover at least one layer of the model."""
    return [name for name in STYLE_RANGES if _named_layers(name, num_layers)]


def style_layers(spec: str, num_layers: int) -> range:
    """A named range (``coarse``, ``middle``, ``fine``) or an inclusive layer range
    (``'4-7'``, ``'3'``) -> the layers it covers in a model with ``num_layers`` layers."""
    resolution = layer_resolution(num_layers - 1)
    if spec in STYLE_RANGES:
        layers = _named_layers(spec, num_layers)
        if not layers:
            lo, hi = STYLE_RANGES[spec]
            where = f"{lo}x{lo} and up" if hi is None else f"{lo}x{lo} to {hi}x{hi}"
            raise ValueError(f"{spec!r} styles ({where}) do not exist in this "
                             f"{resolution}x{resolution} model (layers 0-{num_layers - 1}); "
                             f"use one of "
                             f"{named_styles(num_layers)} or layers like '0-{num_layers - 1}'")
        return layers
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", spec.strip())
    if not match:
        raise ValueError(f"bad style range {spec!r}: one of {list(STYLE_RANGES)} or layers "
                         f"like '4-7'")
    first = int(match[1])
    last = int(match[2]) if match[2] is not None else first
    if not 0 <= first <= last < num_layers:
        raise ValueError(f"layer range {spec!r} is outside the model's layers "
                         f"0-{num_layers - 1} ({resolution}x{resolution})")
    return range(first, last + 1)


def _compile(G: Generator) -> tuple[Any, Any]:
    """Jitted z -> w and z-or-w -> image functions; ``cutoff`` is static, ``psi`` traced."""

    def map_(variables, z, labels):
        return G.apply(variables, z, labels, method="map")

    def run(variables, z, labels, w, psi, noise, cutoff):
        if w is None:
            w = G.apply(variables, z, labels, method="map")
        w = G.apply(variables, w, method="broadcast")
        if psi is not None:
            w = G.apply(variables, w, psi, cutoff, method="truncate")
        return G.apply(variables, w, noise=noise, method="synthesize")

    return jax.jit(map_), jax.jit(run, static_argnames="cutoff")


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A run's EMA generator ready to sample: its ``config``, module ``G``, ``variables``
    (``{'params', 'stats': {'w_avg'}}``) and checkpoint ``step`` (images seen; 0 for an
    official pickle), the run's ``workdir`` (``None`` for an official pickle), and an official
    pickle's ``stored_noise`` (per-layer arrays)."""

    config: ml_collections.ConfigDict
    G: Generator
    variables: dict
    step: int
    _map: Any = dataclasses.field(repr=False)
    _run: Any = dataclasses.field(repr=False)
    stored_noise: list[np.ndarray] | None = dataclasses.field(default=None, repr=False)
    workdir: Path | None = None

    @property
    def num_layers(self) -> int:
        return self.G.num_layers

    @property
    def resolution(self) -> int:
        return self.G.resolution

    @property
    def num_classes(self) -> int:
        """Classes of a conditional model (its one-hot label size); 0 if unconditional."""
        return self.G.label_size

    def z(self, seeds: Sequence[int]) -> np.ndarray:
        """Latents of ``seeds`` (see the module docstring)."""
        return seeds_to_z(seeds, self.G.latent_size)

    def labels(self, n: int, class_index: int | Sequence[int] | None = None,
               seeds: Sequence[int] | None = None) -> np.ndarray | None:
        """One-hot labels ``[n, num_classes]`` for a conditional model, else ``None``:
        ``class_index`` (one class for all rows, or one per row) or, without it, the classes
        of ``seeds`` (default ``0..n-1``) by :func:`seed_classes`."""
        size = self.num_classes
        if not size:
            if class_index is not None:
                raise ValueError("this model is unconditional: it takes no class index")
            return None
        if seeds is not None and len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} latents")
        if class_index is None:
            classes = seed_classes(range(n) if seeds is None else seeds, size)
        else:
            classes = np.asarray(class_index)
            if classes.ndim > 1 or classes.size not in (1, n) or (
                    classes.size and not np.issubdtype(classes.dtype, np.integer)):
                raise ValueError(f"class_index must be one integer class or one per image "
                                 f"({n}), got {class_index!r}")
            bad = classes[(classes < 0) | (classes >= size)]
            if bad.size:
                raise ValueError(f"class index {bad.flat[0]} is outside [0, {size}) of this "
                                 f"conditional model")
            classes = np.broadcast_to(classes.reshape(-1), (n,))
        return np.eye(size, dtype=np.float32)[classes]

    def noise(self, seed: int | str = 0, layers: Sequence[int] | None = None
              ) -> list[np.ndarray]:
        """The noise realisation of ``seed`` (``[1, h, w, 1]`` per layer), or the stored noise
        for ``seed='stored'``, zero outside ``layers`` (default: all layers)."""
        shapes = noise_shapes(self.resolution)
        if isinstance(seed, str):
            if seed != STORED:
                raise ValueError(f"noise must be a noise seed or {STORED!r}, got {seed!r}")
            if self.stored_noise is None:
                raise ValueError("this network has no stored noise (only official pickles of "
                                 "networks with noise inputs do); use a noise seed")
            values = [np.asarray(a, np.float32) for a in self.stored_noise]
        else:
            keys = jax.random.split(jax.random.key(seed), self.num_layers)
            values = [np.asarray(jax.random.normal(k, s)) for k, s in zip(keys, shapes,
                                                                          strict=True)]
        on = set(range(self.num_layers) if layers is None else layers)
        return [v if i in on else np.zeros(s, np.float32)
                for i, (v, s) in enumerate(zip(values, shapes, strict=True))]

    def map(self, z: Any = None, class_index: int | Sequence[int] | None = None, *,
            seeds: Sequence[int] | None = None, labels: Any = None) -> np.ndarray:
        """z ``[N, latent_size]`` (default: the latents of ``seeds``) -> w ``[N, dlatent_size]``
        (no truncation). A conditional model takes ``class_index`` or the seeds' classes
        (:meth:`labels`), or explicit label rows ``labels`` ``[N, num_classes]`` (e.g. blends
        of one-hot rows: the label embedding is linear)."""
        z = np.asarray(self.z(seeds) if z is None else z, np.float32)
        if labels is None:
            labels = self.labels(len(z), class_index, seeds)
        elif not self.num_classes:
            raise ValueError("this model is unconditional: it takes no labels")
        elif class_index is not None or seeds is not None:
            raise ValueError("labels replace class_index and seeds: pass only one")
        return np.asarray(self._map(self.variables, z, labels))

    def generate(self, z: Any = None, *, w: Any = None, seeds: Sequence[int] | None = None,
                 psi: float | None = None, cutoff: int | None = None, noise: Noise = 0,
                 class_index: int | Sequence[int] | None = None,
                 batch_size: int = 32) -> np.ndarray:
        """Images ``[N, r, r, C]`` (float32 in ~[-1, 1]) from latents ``z`` (default: the
        latents of ``seeds``) or from ``w`` (``[N, D]``, or W+ ``[N, num_layers, D]``),
        truncated toward ``w_avg`` by ``psi`` on layers ``< cutoff`` (default: the config's,
        8, or all layers of a smaller model), with fixed ``noise`` (a noise seed, per-layer
        arrays, or ``'stored'`` for an official pickle's stored noise), run ``batch_size`` at
        a time on the default device. A conditional model draws ``class_index`` (one class or
        one per image) or, without it, each seed's class ``seed % num_classes``."""
        if w is not None and (z is not None or seeds is not None):
            raise ValueError("pass z (or seeds) or w, not both")
        if w is not None and class_index is not None:
            raise ValueError("w already carries its class: give class_index to map(), or "
                             "pass z or seeds with it")
        if w is None and z is None and seeds is None:
            raise ValueError("pass z, seeds or w")
        check_psi(psi)
        # the config's cutoff covers every layer of a smaller model (official: layer < cutoff)
        cutoff = (min(self.G.truncation_cutoff, self.num_layers) if cutoff is None
                  else int(cutoff))
        if not 0 <= cutoff <= self.num_layers:
            raise ValueError(f"truncation cutoff {cutoff} is outside [0, {self.num_layers}]")
        if w is None and z is None:
            z = self.z(seeds)
        x = np.asarray(z if w is None else w, np.float32)
        n = len(x)
        labels = self.labels(n, class_index, seeds) if w is None else None
        noise = (self.noise(noise) if isinstance(noise, int | str)
                 else [np.asarray(a) for a in noise])
        out = []
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            batch_noise = [a if a.shape[0] == 1 else a[part] for a in noise]
            out.append(np.asarray(self._run(
                self.variables, x[part] if w is None else None,
                None if labels is None else labels[part], x[part] if w is not None else None,
                None if psi is None else np.float32(psi), batch_noise, cutoff=cutoff)))
        return np.concatenate(out)


def from_variables(config: ml_collections.ConfigDict, G: Generator, variables: dict) -> Model:
    """A :class:`Model` of generator ``G`` with ``variables`` (``{'params', 'stats'}``, e.g.
    ``G.init(...)``: random weights for benchmarks and tests) that no run saved."""
    return Model(config, G, variables, 0, *_compile(G))


def load(workdir_or_checkpoint: str | Path, step: int | None = None, *,
         compute_dtype: str = "float32", mesh: jax.sharding.Mesh | None = None) -> Model:
    """The EMA generator of a run, from its workdir (latest checkpoint, or ``step`` images)
    or from one checkpoint directory ``WORKDIR/checkpoints/STEP``, or Gs of an official
    StyleGAN ``.pkl`` (with its stored noise); its variables replicated on ``mesh`` (default:
    the first device, CPU or GPU) whatever device count wrote the checkpoint (see
    :func:`stylegan_jax.runs.load_run`). A
    checkpoint samples at its own resolution and fade (images upsampled to the full
    resolution); everything samples in float32 unless ``compute_dtype`` is ``'bfloat16'``
    (faster, slightly different images)."""
    dtypes = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if compute_dtype not in dtypes:
        raise ValueError(f"compute_dtype must be one of {sorted(dtypes)}, got {compute_dtype!r}")
    path = Path(workdir_or_checkpoint)
    mesh = mesh or parallel.make_mesh(1)
    if path.suffix == ".pkl" and not path.is_dir():
        return _load_official(path, step, dtypes[compute_dtype], mesh)
    # Imported here so that `import stylegan_jax` does not pull in Orbax and the trainer.
    from stylegan_jax import runs

    run = runs.load_run(path, step, mesh=mesh, dtype=dtypes[compute_dtype])
    return Model(run.config, run.G, run.variables, run.step, *_compile(run.G),
                 workdir=run.workdir)


def _load_official(path: Path, step: int | None, dtype: Any, mesh: jax.sharding.Mesh) -> Model:
    """Gs of an official StyleGAN pickle as a :class:`Model` (see :mod:`stylegan_jax.official`),
    at the pickle's ``lod`` (a snapshot saved while growing samples at its phase)."""
    from stylegan_jax import official
    from stylegan_jax.models import build_networks
    from stylegan_jax.sampling import at_phase, lod_phase, phase_note

    if step is not None:
        raise ValueError(f"{path}: an official pickle holds one snapshot; a checkpoint step "
                         "does not apply")
    net = official.load_pickle(path)
    # a snapshot saved while growing renders at its lod, upsampled, as the official Gs does
    resolution, fade = lod_phase(net.config.resolution, net.lod)
    G = at_phase(build_networks(net.config)[0], resolution, fade, dtype=dtype)
    if note := phase_note(G):
        logging.getLogger(__name__).warning("%s: %s", path, note)
    variables = jax.device_put(net.Gs, parallel.replicated_sharding(mesh))
    return Model(net.config, G, variables, 0, *_compile(G), stored_noise=net.noise)
