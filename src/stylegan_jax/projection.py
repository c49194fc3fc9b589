"""Projecting images into W or W+: the StyleGAN2 projector's recipe, batched and data-parallel.

The recipe (NVlabs/stylegan2-ada-pytorch ``projector.py``; Karras et al. 2020, Appendix D),
the default here:

- start from the mean ``w_avg`` of 10,000 mapped z (``RandomState(123)``), and take
  ``w_std = sqrt(sum |w - w_avg|^2 / 10,000)`` as w's scale;
- Adam (0.9, 0.999, eps 1e-8) on w and on every layer's noise input (initialised N(0, 1)),
  lr ``0.1 * ramp`` where the ramp rises over the first 5% of the steps as a linear ramp and
  falls over the last 25% as a half cosine (:func:`learning_rate`);
- Gaussian noise on w of ``0.05 * w_std * max(0, 1 - t / 0.75)^2`` (:func:`w_noise_scale`);
- loss: the LPIPS-VGG16 distance to the target (targets and images box-downsampled to at most
  256x256) plus ``1e5 *`` the multi-scale autocorrelation of the noise inputs
  (:func:`noise_regularizer`); after each step every noise input is re-normalised to zero mean
  and unit variance (:func:`normalize_noise`).

``space='w+'`` optimises one w per layer (Image2StyleGAN); ``optimize_noise=False`` keeps the
initial noise; ``mse_weight`` adds a pixel MSE term (on [-1, 1] images).

N targets are optimised together by one jitted ``lax.scan`` over the steps, their batch axis
sharded over the ``'data'`` mesh axis (padded to a whole batch and dropped after). The loss is
the *sum* over targets, so each target's gradient is its own, and every target draws the same
random numbers (derived from ``seed`` only): a target's result does not depend on what it was
batched with or on the device count. A conditional model starts each target from the mean w
of its class (or of all classes).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from stylegan_jax import parallel
from stylegan_jax.generate import Model
from stylegan_jax.images import box_mean, from_uint8, to_uint8
from stylegan_jax.metrics.lpips import LPIPS
from stylegan_jax.networks import noise_shapes

SPACES = ("w", "w+")
LPIPS_MAX_RESOLUTION = 256  # the projector compares images at most 256x256


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The projector's knobs, with the StyleGAN2 projector's defaults."""

    steps: int = 1000
    space: str = "w"
    learning_rate: float = 0.1
    lr_rampup: float = 0.05  # fraction of the steps
    lr_rampdown: float = 0.25
    w_noise: float = 0.05  # initial w noise, in units of w_std
    w_noise_ramp: float = 0.75  # fraction of the steps over which the w noise fades out
    noise_weight: float = 1e5  # weight of the noise autocorrelation regulariser
    optimize_noise: bool = True
    mse_weight: float = 0.0
    w_avg_samples: int = 10000
    w_avg_seed: int = 123
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.w_avg_samples < 2:
            raise ValueError(f"w_avg_samples must be >= 2, got {self.w_avg_samples}")


def learning_rate(t: Any, base: float = 0.1, rampup: float = 0.05,
                  rampdown: float = 0.25) -> Any:
    """The projector's lr at progress ``t = step / steps``: ``base`` times a linear ramp-up
    over ``rampup`` and a half-cosine ramp-down over the last ``rampdown``."""
    down = jnp.minimum(1.0, (1.0 - t) / rampdown)
    return base * (0.5 - 0.5 * jnp.cos(down * jnp.pi)) * jnp.minimum(1.0, t / rampup)


def w_noise_scale(t: Any, w_std: Any, initial: float = 0.05, ramp: float = 0.75) -> Any:
    """Standard deviation of the noise added to w at progress ``t``: ``initial * w_std``
    fading out quadratically, zero from ``t = ramp`` on."""
    return w_std * initial * jnp.square(jnp.maximum(0.0, 1.0 - t / ramp))


def noise_regularizer(noise: Sequence[jax.Array]) -> jax.Array:
    """Per target ``[N]``: the sum over noise inputs ``[N, h, w, 1]`` and over their 2x2
    average-pooled pyramid (down to 8x8) of the squared mean autocorrelation at a one-pixel
    shift along each axis (wrapping around), which is 0 for white noise."""
    total = 0.0
    for n in noise:
        while True:
            for axis in (1, 2):
                total = total + jnp.square(jnp.mean(n * jnp.roll(n, 1, axis), axis=(1, 2, 3)))
            if n.shape[1] <= 8:
                break
            n = box_mean(n, 2)
    return total


def normalize_noise(noise: Sequence[jax.Array]) -> list[jax.Array]:
    """Each target's noise inputs ``[N, h, w, 1]`` shifted and scaled to mean 0, variance 1."""
    out = []
    for n in noise:
        n = n - jnp.mean(n, axis=(1, 2, 3), keepdims=True)
        out.append(n * jax.lax.rsqrt(jnp.mean(jnp.square(n), axis=(1, 2, 3), keepdims=True)))
    return out


def w_statistics(model: Model, classes: Sequence[int] | None = None, *,
                 num_samples: int = 10000, seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    """``(w_avg [N, D], w_std [N])``: the mean and scalar spread of ``num_samples`` mapped z
    (``RandomState(seed)``), per target. An unconditional model has one pair, repeated; a
    conditional one maps the z with each target's class, or, where it is ``None`` (or for
    every target without ``classes``), with classes ``i % num_classes``."""
    z = np.random.RandomState(seed).randn(num_samples, model.G.latent_size).astype(np.float32)
    n = 1 if classes is None else len(classes)
    wanted = [None] * n if classes is None else list(classes)
    cache: dict[int | None, tuple[np.ndarray, float]] = {}
    for c in wanted:
        if c in cache:
            continue
        if model.num_classes:
            labels = model.labels(num_samples, None if c is None else int(c))
            w = model.map(z, labels=labels)
        elif c is not None:
            raise ValueError("this model is unconditional: it takes no target classes")
        else:
            w = model.map(z)
        w = w.astype(np.float64)
        avg = w.mean(axis=0)
        cache[c] = (avg, math.sqrt(np.sum(np.square(w - avg)) / num_samples))
    return (np.stack([cache[c][0] for c in wanted]).astype(np.float32),
            np.array([cache[c][1] for c in wanted], np.float32))


def lpips_input(images: jax.Array) -> jax.Array:
    """Images ``[N, r, r, C]`` in [-1, 1] as the projector compares them: box-downsampled to
    at most 256x256, greyscale repeated to RGB."""
    images = box_mean(images, max(images.shape[1] // LPIPS_MAX_RESOLUTION, 1))
    return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def psnr(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """PSNR in dB ``[N]`` between uint8 images (``inf`` where identical)."""
    diff = images.astype(np.float64) - targets.astype(np.float64)
    mse = np.mean(np.square(diff), axis=tuple(range(1, diff.ndim)))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a progress callback is told after each chunk of steps: the batch of targets it
    belongs to and the step reached; :attr:`loss`, :attr:`w` and :attr:`noise` give the
    current per-target values on the host (copied only if the callback reads them)."""

    batch: slice
    step: int
    steps: int
    _loss: jax.Array = dataclasses.field(repr=False)
    _w: jax.Array = dataclasses.field(repr=False)
    _noise: list[jax.Array] = dataclasses.field(repr=False)

    def _real(self, a: jax.Array) -> np.ndarray:
        return np.asarray(a)[: self.batch.stop - self.batch.start]  # padding dropped

    @property
    def loss(self) -> np.ndarray:
        return self._real(self._loss)

    @property
    def w(self) -> np.ndarray:
        return self._real(self._w)

    @property
    def noise(self) -> list[np.ndarray]:
        return [self._real(a) for a in self._noise]


@dataclasses.dataclass(frozen=True)
class Projection:
    """Per target: ``w`` (``[N, D]`` for space 'w', ``[N, num_layers, D]`` for 'w+'), the
    optimised ``noise`` (per layer ``[N, h, w, 1]``), the projected ``images`` (uint8), and
    their LPIPS distance (``lpips``; ``start_lpips`` for the starting image) and ``psnr`` to
    the targets. ``Model.generate(w=w, noise=noise)`` reproduces ``images``."""

    w: np.ndarray
    noise: list[np.ndarray]
    images: np.ndarray
    lpips: np.ndarray
    start_lpips: np.ndarray
    psnr: np.ndarray
    space: str
    steps: int


def _synthesize(model: Model, variables: Any, w: jax.Array, noise: Sequence[jax.Array]
                ) -> jax.Array:
    return model.G.apply(variables, w, noise=list(noise), method="synthesize")


@functools.cache
def programs(model: Model, recipe: Recipe, mesh: Mesh) -> tuple[Callable, Callable, Callable]:
    """Jitted ``start``, ``run(chunk)`` and ``evaluate`` for one model, recipe and mesh."""
    data, rep = parallel.data_sharding(mesh), parallel.replicated_sharding(mesh)
    lpips = LPIPS()
    adam = optax.scale_by_adam(*recipe.betas, eps=recipe.eps)
    layers = noise_shapes(model.resolution)

    def constrain(tree: Any) -> Any:
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(
            a, data if a.ndim else rep), tree)

    def distance(lpips_params, images, target_features):
        features = lpips.apply({"params": lpips_params}, lpips_input(images), method="features")
        return lpips.apply({"params": lpips_params}, features, target_features,
                           method="feature_distance")

    @jax.jit
    def start(lpips_params, targets, w_avg, key):
        """Target features, initial w and noise, Adam state."""
        n = targets.shape[0]
        target_features = lpips.apply({"params": lpips_params}, lpips_input(targets),
                                      method="features")
        w = w_avg if recipe.space == "w" else jnp.repeat(w_avg[:, None], len(layers), axis=1)
        keys = jax.random.split(key, len(layers))
        noise = [jnp.broadcast_to(jax.random.normal(k, s[1:]), (n, *s[1:]))
                 for k, s in zip(keys, layers, strict=True)]
        params = {"w": w, "noise": noise} if recipe.optimize_noise else {"w": w}
        return constrain((target_features, params, adam.init(params), noise))

    def loss_fn(params, fixed_noise, variables, lpips_params, targets, target_features,
                w_std, key, t):
        shape = params["w"].shape[1:]  # one draw for every target: batch-independent
        scale = w_noise_scale(t, w_std, recipe.w_noise, recipe.w_noise_ramp)
        w = params["w"] + jax.random.normal(key, shape) * scale.reshape(-1, *[1] * len(shape))
        noise = params.get("noise", fixed_noise)
        images = _synthesize(model, variables, w, noise)
        per_target = distance(lpips_params, images, target_features)
        if recipe.optimize_noise and recipe.noise_weight:
            per_target += recipe.noise_weight * noise_regularizer(noise)
        if recipe.mse_weight:
            per_target += recipe.mse_weight * jnp.mean(jnp.square(images - targets),
                                                       axis=(1, 2, 3))
        return jnp.sum(per_target), per_target

    @functools.partial(jax.jit, static_argnames="length", donate_argnums=(0, 1))
    def run(params, opt_state, fixed_noise, variables, lpips_params, targets,
            target_features, w_std, key, first, length):
        """``length`` steps from step ``first``; returns the new state and the last loss."""

        def step(carry, i):
            params, opt_state, _ = carry
            t = i.astype(jnp.float32) / recipe.steps
            (_, per_target), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, fixed_noise, variables, lpips_params, targets, target_features,
                w_std, jax.random.fold_in(key, i), t)
            updates, opt_state = adam.update(grads, opt_state)
            lr = learning_rate(t, recipe.learning_rate, recipe.lr_rampup, recipe.lr_rampdown)
            params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
            if recipe.optimize_noise:
                params = {**params, "noise": normalize_noise(params["noise"])}
            return constrain((params, opt_state, per_target)), None

        loss = jnp.zeros(targets.shape[:1], jnp.float32)
        (params, opt_state, loss), _ = jax.lax.scan(
            step, (params, opt_state, loss), first + jnp.arange(length))
        return params, opt_state, loss

    @jax.jit
    def evaluate(variables, lpips_params, w, noise, target_features):
        images = _synthesize(model, variables, w, noise)
        return to_uint8(images), distance(lpips_params, images, target_features)

    return start, run, evaluate


def _targets_array(targets: Any, model: Model) -> np.ndarray:
    x = np.asarray(targets)
    want = (model.resolution, model.resolution, model.G.num_channels)
    if x.ndim != 4 or x.shape[1:] != want:
        raise ValueError(f"targets must be [N, {want[0]}, {want[1]}, {want[2]}] images for "
                         f"this {want[0]}x{want[0]} model with {want[2]} channels, got "
                         f"{list(x.shape)}")
    return from_uint8(x) if x.dtype == np.uint8 else x.astype(np.float32)


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)]) if len(x) < size else x


def project_batches(model: Model, targets: Any, lpips_params: Any, *,
                    classes: Sequence[int | None] | None = None, recipe: Recipe | None = None,
                    seed: int = 0, batch_size: int = 32, mesh: Mesh | None = None,
                    callback: Callable[[Progress], None] | None = None,
                    callback_every: int = 100, **knobs: Any
                    ) -> Iterator[tuple[slice, Projection]]:
    """:func:`project`, one batch at a time: yields ``(which targets, their Projection)`` as
    each batch finishes (so a caller can write results before the next batch starts)."""
    recipe = dataclasses.replace(recipe or Recipe(), **knobs)
    mesh = mesh if mesh is not None else parallel.make_mesh()
    x = _targets_array(targets, model)
    n = len(x)
    if not n:
        raise ValueError("no targets to project")
    if classes is not None and len(classes) != n:
        raise ValueError(f"got {len(classes)} classes for {n} targets")
    if classes is not None and not model.num_classes and any(c is not None for c in classes):
        raise ValueError("this model is unconditional: it takes no target classes")
    if batch_size < 1 or callback_every < 1:
        raise ValueError("batch_size and callback_every must be >= 1")
    originals = np.asarray(targets) if np.asarray(targets).dtype == np.uint8 else to_uint8(x)
    w_avg, w_std = w_statistics(model, classes, num_samples=recipe.w_avg_samples,
                                seed=recipe.w_avg_seed)
    if classes is None:
        w_avg, w_std = np.repeat(w_avg, n, axis=0), np.repeat(w_std, n)
    size = -(-min(batch_size, n) // mesh.size) * mesh.size
    start, run, evaluate = programs(model, recipe, mesh)
    data, rep = parallel.data_sharding(mesh), parallel.replicated_sharding(mesh)
    variables = jax.device_put(model.variables, rep)
    lpips_params = jax.device_put(lpips_params, rep)
    key_noise, key_steps = jax.random.split(jax.random.key(seed))
    chunk = min(callback_every, recipe.steps) if callback else recipe.steps
    for lo in range(0, n, size):
        real = slice(lo, min(lo + size, n))
        count = real.stop - real.start

        def put(a: np.ndarray, real: slice = real) -> jax.Array:
            return jax.device_put(_pad(a[real], size), data)

        batch_targets, batch_std = put(x), put(w_std)
        target_features, params, opt_state, noise = start(lpips_params, batch_targets,
                                                          put(w_avg), key_noise)
        _, start_lpips = evaluate(variables, lpips_params, params["w"], noise,
                                  target_features)
        fixed_noise = [] if recipe.optimize_noise else noise
        for first in range(0, recipe.steps, chunk):
            length = min(chunk, recipe.steps - first)
            params, opt_state, loss = run(params, opt_state, fixed_noise, variables,
                                          lpips_params, batch_targets, target_features,
                                          batch_std, key_steps, first, length=length)
            if callback:
                callback(Progress(real, first + length, recipe.steps, loss, params["w"],
                                  params.get("noise", noise)))
        final_noise = params.get("noise", noise)
        images, distances = evaluate(variables, lpips_params, params["w"], final_noise,
                                     target_features)
        images = np.asarray(images)[:count]
        yield real, Projection(
            w=np.asarray(params["w"])[:count],
            noise=[np.asarray(a)[:count] for a in final_noise], images=images,
            lpips=np.asarray(distances)[:count], start_lpips=np.asarray(start_lpips)[:count],
            psnr=psnr(images, originals[real]), space=recipe.space, steps=recipe.steps)


def project(model: Model, targets: Any, lpips_params: Any, **kwargs: Any) -> Projection:
    """Projects ``targets`` (uint8 ``[N, r, r, C]``, or floats in [-1, 1]) into ``model``'s W
    (or W+, ``space='w+'``) by the StyleGAN2 projector's recipe (module docstring); any
    :class:`Recipe` field may be given as a keyword (``steps=``, ``space=``, ...).

    ``lpips_params``: :func:`stylegan_jax.metrics.lpips.load_lpips`. ``classes``: one class
    per target for a conditional model (the start is that class's mean w; ``None`` entries
    the mean over all classes). Targets are optimised ``batch_size`` at a time (each batch
    padded to that size, rounded up to the device count of ``mesh``, default all devices),
    and ``callback`` gets a :class:`Progress` every ``callback_every`` steps (chunks of a
    jitted scan). ``seed`` draws the initial noise inputs and the w noise."""
    parts = [p for _, p in project_batches(model, targets, lpips_params, **kwargs)]
    return Projection(
        w=np.concatenate([p.w for p in parts]),
        noise=[np.concatenate(layer) for layer in zip(*(p.noise for p in parts), strict=True)],
        images=np.concatenate([p.images for p in parts]),
        lpips=np.concatenate([p.lpips for p in parts]),
        start_lpips=np.concatenate([p.start_lpips for p in parts]),
        psnr=np.concatenate([p.psnr for p in parts]), space=parts[0].space,
        steps=parts[0].steps)
