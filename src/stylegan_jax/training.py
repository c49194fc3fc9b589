"""The StyleGAN training step and loop (official ``training_loop.py`` and ``loss.py``).

One jitted *iteration* per minibatch runs the official order: a D step (reals with the fade
blend, fakes with style mixing, R1) together with the G EMA update, then a G step. It is
compiled once per resolution phase (``resolution`` is static; fade, learning rates, EMA beta
and the step number are traced) and donates the train state.

Data parallelism: parameters and optimizer state are replicated over the mesh ``'data'``
axis and every batch (reals and the generated latents) is split along it. The step is plain
``jax.jit`` over global arrays with a *mean* loss over the global batch, so XLA's all-reduce
gives exactly the single-device gradient (no ``shard_map``, hence none of its gradient-scaling
pitfalls). Random numbers are drawn with global shapes from ``fold_in(seed, step)``, so the
result does not depend on the number of devices.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from stylegan_jax import losses, parallel
from stylegan_jax.images import downsample_to, mirror
from stylegan_jax.layers import downscale2d, upscale2d
from stylegan_jax.networks import Discriminator, Generator

COUNTERS = ("d_nonfinite_streak", "g_nonfinite_streak", "worst_nonfinite_streak",
            "nonfinite_total")


@flax.struct.dataclass
class TrainState:
    """Everything the step updates. ``w_avg`` is shared by G and its EMA copy, as the official
    Gs copies non-trainable variables from G."""

    g_params: Any
    d_params: Any
    g_ema_params: Any
    w_avg: jax.Array
    g_opt: Any
    d_opt: Any
    counters: dict[str, jax.Array]


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam without the learning rate (applied in the step so it can change without
    recompiling). optax adds epsilon after bias correction, TF before; with eps=1e-8 this only
    differs in the first steps after a reset."""
    return optax.scale_by_adam(b1=config.opt.beta1, b2=config.opt.beta2, eps=config.opt.epsilon)


def init_train_state(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                     optimizer: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh variables at full resolution (G EMA starts as a copy of G)."""
    k_g, k_d = jax.random.split(key)
    z = jnp.zeros((1, G.latent_size))
    labels = jnp.zeros((1, G.label_size)) if G.label_size else None
    g_vars = G.init(k_g, z, labels)
    images = jnp.zeros((1, config.resolution, config.resolution, config.num_channels))
    d_vars = D.init(k_d, images, labels)
    return TrainState(
        g_params=g_vars["params"], d_params=d_vars["params"], g_ema_params=g_vars["params"],
        w_avg=g_vars["stats"]["w_avg"], g_opt=optimizer.init(g_vars["params"]),
        d_opt=optimizer.init(d_vars["params"]),
        counters={k: jnp.zeros((), jnp.int32) for k in COUNTERS})


def create_train_state(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                       optimizer: optax.GradientTransformation, mesh: jax.sharding.Mesh
                       ) -> TrainState:
    """A fresh train state, born replicated over the mesh."""
    init = functools.partial(init_train_state, config, G, D, optimizer)
    return jax.jit(init, out_shardings=parallel.replicated_sharding(mesh))(
        jax.random.key(config.seed))


def abstract_train_state(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                         optimizer: optax.GradientTransformation, mesh: jax.sharding.Mesh
                         ) -> TrainState:
    """Shapes, dtypes and (replicated) shardings of the train state, for restoring."""
    shapes = jax.eval_shape(functools.partial(init_train_state, config, G, D, optimizer),
                            jax.random.key(0))
    sharding = parallel.replicated_sharding(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        shapes)


def reset_optimizers(state: TrainState, optimizer: optax.GradientTransformation,
                     mesh: jax.sharding.Mesh) -> TrainState:
    """Fresh Adam states (moments and bias-correction count), as the official code does at
    every lod change."""
    fresh = jax.jit(lambda g, d: (optimizer.init(g), optimizer.init(d)),
                    out_shardings=parallel.replicated_sharding(mesh))
    g_opt, d_opt = fresh(state.g_params, state.d_params)
    return state.replace(g_opt=g_opt, d_opt=d_opt)


def prepare_reals(images: jax.Array, resolution: int, fade: jax.Array,
                  num_channels: int | None = None) -> jax.Array:
    """Stored uint8 reals -> [-1, 1] at the current resolution, with the official FadeLOD
    blend toward the previous resolution: ``lerp(x, up(down(x)), fade)``.

    ``num_channels=1`` trains on the grey level (channel mean) of RGB-stored data such as the
    bundled digits: fed as three equal channels, grey data lets D reject fakes by their colour
    alone, which the style-based G is slow to remove (see docs/unconditional-collapse.md).
    """
    if num_channels not in (None, images.shape[-1], 1):
        raise ValueError(f"config.num_channels={num_channels} does not fit the dataset's "
                         f"{images.shape[-1]} channels (use {images.shape[-1]} or 1 for grey)")
    x = downsample_to(images, resolution)
    if num_channels == 1:
        x = x.mean(axis=-1, keepdims=True)
    if resolution > 4:
        x = x + (upscale2d(downscale2d(x)) - x) * fade
    return x


def r1_resolution_scale(config: ml_collections.ConfigDict, resolution: int) -> float:
    """Weight of the native-resolution ``||grad||^2`` that reproduces the official R1.

    'official': ``(resolution / full)^2 = 4 ** -floor(lod)`` (the official gradient is taken
    w.r.t. nearest-upsampled full-resolution reals that D first box-downsamples); 'native':
    1, the penalty at the resolution D sees (stronger at low resolution than the official).
    """
    if config.loss.r1_scaling == "official":
        return (resolution / config.resolution) ** 2
    if config.loss.r1_scaling == "native":
        return 1.0
    raise ValueError(f"config.loss.r1_scaling must be 'official' or 'native', "
                     f"got {config.loss.r1_scaling!r}")


def _finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf is finite: one reduction over all of them. (One
    per leaf, combined by ``and``, makes XLA copy that chain of ``and`` into every fusion
    that reads the result, each param and moment update of :func:`_apply_adam`: two thirds
    of the 1024 program. The one reduction costs a copy of the gradients, +0.1% bytes.)"""
    return jnp.all(jnp.isfinite(jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])))


def _apply_adam(params: Any, opt_state: Any, grads: Any, lr: jax.Array,
                optimizer: optax.GradientTransformation) -> tuple[Any, Any, jax.Array]:
    """One Adam step, skipped (params and moments unchanged) if any gradient is non-finite."""
    ok = _finite(grads)
    updates, new_opt = optimizer.update(grads, opt_state, params)
    new_params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
    keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
    return keep(new_params, params), keep(new_opt, opt_state), ok


def _update_counters(counters: dict, d_ok: jax.Array, g_ok: jax.Array) -> dict:
    d_streak = jnp.where(d_ok, 0, counters["d_nonfinite_streak"] + 1)
    g_streak = jnp.where(g_ok, 0, counters["g_nonfinite_streak"] + 1)
    return {
        "d_nonfinite_streak": d_streak,
        "g_nonfinite_streak": g_streak,
        "worst_nonfinite_streak": jnp.maximum(counters["worst_nonfinite_streak"],
                                              jnp.maximum(d_streak, g_streak)),
        "nonfinite_total": counters["nonfinite_total"] + (~d_ok).astype(jnp.int32)
        + (~g_ok).astype(jnp.int32),
    }


def _fakes(G: Generator, data: jax.sharding.NamedSharding, g_params: Any, w_avg: jax.Array,
           key: jax.Array, batch_size: int, labels: jax.Array | None, resolution: int,
           fade: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A batch of training fakes (fresh z sharded over ``'data'``, style mixing, random noise)
    and the updated ``w_avg``."""
    k_z, k_noise, k_mix = jax.random.split(key, 3)
    z = jax.lax.with_sharding_constraint(
        jax.random.normal(k_z, (batch_size, G.latent_size)), data)
    images, state = G.apply({"params": g_params, "stats": {"w_avg": w_avg}}, z, labels,
                            current_resolution=resolution, fade=fade, train=True,
                            mutable=["stats"], rngs={"noise": k_noise, "mixing": k_mix})
    return images, state["stats"]["w_avg"]


def _d_loss(loss: ml_collections.ConfigDict, d_fn: Callable, reals: jax.Array,
            fakes: jax.Array, key: jax.Array, r1_scale: float) -> tuple[jax.Array, dict]:
    """The configured D loss (``config.loss.D``), batch mean, and the scores it logs."""
    if loss.D == "logistic_r1":
        value, aux = losses.d_logistic_r1(d_fn, reals, fakes, loss.r1_gamma, r1_scale)
        reg = aux["r1_penalty"]
    elif loss.D == "wgan_gp":
        value, aux = losses.d_wgan_gp(d_fn, reals, fakes, key, loss.wgan_lambda,
                                      loss.wgan_epsilon, loss.wgan_target,
                                      grad_scale=math.sqrt(r1_scale))
        reg = aux["gp_penalty"]
    else:
        raise ValueError(f"config.loss.D must be 'logistic_r1' or 'wgan_gp', got {loss.D!r}")
    return value.mean(), {"real_score": aux["real_logits"].mean(),
                          "fake_score": aux["fake_logits"].mean(), "reg": reg.mean()}


def _g_loss(loss: ml_collections.ConfigDict, fake_logits: jax.Array) -> jax.Array:
    """The configured G loss (``config.loss.G``), batch mean."""
    if loss.G == "logistic_nonsaturating":
        return losses.g_logistic_nonsaturating(fake_logits).mean()
    if loss.G == "wgan":
        return losses.g_wgan(fake_logits).mean()
    raise ValueError(f"config.loss.G must be 'logistic_nonsaturating' or 'wgan', "
                     f"got {loss.G!r}")


def make_train_iteration(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                         optimizer: optax.GradientTransformation, mesh: jax.sharding.Mesh
                         ) -> Callable:
    """``iteration(state, batch, step, fade, g_lr, d_lr, ema_beta, *, resolution)`` ->
    ``(state, metrics)``, jitted with the state donated. ``batch`` holds ``image`` and
    ``label`` and, from ``InputPipeline.next_batch(..., with_flips=True)``, the mirror flags
    ``flip`` applied here, so that one minibatch is one dispatch."""
    replicated = parallel.replicated_sharding(mesh)
    generate = functools.partial(_fakes, G, parallel.data_sharding(mesh))

    def d_loss_fn(d_params, reals, fakes, labels, fade, key, r1_scale):
        def d_fn(x):
            return D.apply({"params": d_params}, x, labels, fade=fade)

        return _d_loss(config.loss, d_fn, reals, fakes, key, r1_scale)

    def g_loss_fn(g_params, d_params, w_avg, key, batch_size, labels, resolution, fade):
        fakes, w_avg = generate(g_params, w_avg, key, batch_size, labels, resolution, fade)
        return _g_loss(config.loss, D.apply({"params": d_params}, fakes, labels, fade=fade)), \
            w_avg

    def iteration(state: TrainState, batch: dict, step: jax.Array, fade: jax.Array,
                  g_lr: jax.Array, d_lr: jax.Array, ema_beta: jax.Array, *, resolution: int
                  ) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.key(config.seed), step)
        k_fake_d, k_gp, k_fake_g = jax.random.split(key, 3)
        batch_size = batch["image"].shape[0]
        labels = jax.nn.one_hot(batch["label"], G.label_size) if G.label_size else None
        images = batch["image"]
        if "flip" in batch:  # mirror_augment in this dispatch (InputPipeline's with_flips)
            images = mirror(images, batch["flip"])
        reals = prepare_reals(images, resolution, fade, config.num_channels)
        r1_scale = r1_resolution_scale(config, resolution)

        # D step (with the G EMA update, as the official D_train_op + Gs_update_op).
        fakes, w_avg = generate(state.g_params, state.w_avg, k_fake_d, batch_size, labels,
                                resolution, fade)
        (d_loss, d_aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            state.d_params, reals, jax.lax.stop_gradient(fakes), labels, fade, k_gp, r1_scale)
        d_params, d_opt, d_ok = _apply_adam(state.d_params, state.d_opt, d_grads, d_lr,
                                            optimizer)
        g_ema = jax.tree.map(lambda e, p: p + (e - p) * ema_beta, state.g_ema_params,
                             state.g_params)

        # G step against the updated D.
        (g_loss, w_avg), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            state.g_params, d_params, w_avg, k_fake_g, batch_size, labels, resolution, fade)
        g_params, g_opt, g_ok = _apply_adam(state.g_params, state.g_opt, g_grads, g_lr,
                                            optimizer)

        new_state = TrainState(g_params=g_params, d_params=d_params, g_ema_params=g_ema,
                               w_avg=w_avg, g_opt=g_opt, d_opt=d_opt,
                               counters=_update_counters(state.counters, d_ok, g_ok))
        metrics = {"loss/D": d_loss, "loss/G": g_loss, "score/real": d_aux["real_score"],
                   "score/fake": d_aux["fake_score"], "loss/D_reg": d_aux["reg"]}
        return new_state, metrics

    return jax.jit(iteration, static_argnames="resolution", donate_argnums=0,
                   out_shardings=(replicated, replicated))


def make_grid_fn(G: Generator, mesh: jax.sharding.Mesh) -> Callable:
    """``grid(g_ema_params, w_avg, z, labels, noise_key, fade, *, resolution)`` -> images at
    the current resolution from the EMA generator without truncation (the official snapshot
    grid); ``labels`` is one-hot or None."""
    replicated = parallel.replicated_sharding(mesh)

    def grid(g_ema_params, w_avg, z, labels, noise_key, fade, *, resolution):
        return G.apply({"params": g_ema_params, "stats": {"w_avg": w_avg}}, z, labels,
                       current_resolution=resolution, fade=fade, rngs={"noise": noise_key})

    return jax.jit(grid, static_argnames="resolution", out_shardings=replicated)
