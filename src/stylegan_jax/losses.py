"""GAN losses of the official ``training/loss.py``, per sample (the step takes the mean).

Each D loss takes ``d_fn(images) -> logits [N]`` so that gradient penalties can differentiate
the discriminator with respect to its input.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

DiscriminatorFn = Callable[[jax.Array], jax.Array]


def g_logistic_nonsaturating(fake_logits: jax.Array) -> jax.Array:
    """``softplus(-D(G(z)))`` (official ``G_logistic_nonsaturating``)."""
    return jax.nn.softplus(-fake_logits)


def g_wgan(fake_logits: jax.Array) -> jax.Array:
    """``-D(G(z))`` (official ``G_wgan``)."""
    return -fake_logits


def r1_penalty(d_fn: DiscriminatorFn, reals: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-sample ``||grad_x D(x)||^2`` at the reals, and the real logits.

    The gradient of ``sum(D(reals))`` w.r.t. the reals is taken on the logits, not on the
    softplus of them (a bug once present in a popular port).
    """
    logits, vjp = jax.vjp(d_fn, reals)
    (grads,) = vjp(jnp.ones_like(logits))
    return jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=(1, 2, 3)), logits


def d_logistic_r1(d_fn: DiscriminatorFn, reals: jax.Array, fakes: jax.Array, r1_gamma: float,
                  r1_scale: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``softplus(D(fake)) + softplus(-D(real)) + gamma/2 * r1_scale * ||grad D(real)||^2``
    (official ``D_logistic_simplegp`` with R1 only).

    ``r1_scale`` reproduces the official strength at low resolution: the official code takes the
    gradient w.r.t. the nearest-upsampled full-resolution reals, which is ``4 ** -floor(lod)``
    times the native-resolution norm (see ``training.r1_resolution_scale``). ``r1_gamma == 0``
    skips the penalty's gradient (and its double backward) altogether, as the official
    ``if r1_gamma != 0.0``; its logged value is then 0.
    """
    if r1_gamma == 0:
        real_logits = d_fn(reals)
        penalty = jnp.zeros(real_logits.shape, jnp.float32)
    else:
        penalty, real_logits = r1_penalty(d_fn, reals)
    fake_logits = d_fn(fakes)
    loss = jax.nn.softplus(fake_logits) + jax.nn.softplus(-real_logits)
    if r1_gamma != 0:
        loss = loss + penalty * (r1_gamma * 0.5 * r1_scale)
    return loss, {"real_logits": real_logits, "fake_logits": fake_logits, "r1_penalty": penalty}


def d_wgan_gp(d_fn: DiscriminatorFn, reals: jax.Array, fakes: jax.Array, key: jax.Array,
              wgan_lambda: float = 10.0, wgan_epsilon: float = 0.001, wgan_target: float = 1.0,
              grad_scale: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Official ``D_wgan_gp``: ``D(fake) - D(real)``, plus ``lambda / target^2 *
    (||grad D(mix)|| - target)^2`` at a per-sample random interpolation of reals and fakes,
    plus the drift term ``epsilon * D(real)^2``.

    ``grad_scale`` multiplies the gradient norm; ``2 ** -floor(lod)`` reproduces the official
    penalty at low resolution (see ``d_logistic_r1``).
    """
    real_logits, fake_logits = d_fn(reals), d_fn(fakes)
    alpha = jax.random.uniform(key, (reals.shape[0], 1, 1, 1), reals.dtype)
    mixed = reals + (fakes - reals) * alpha
    mixed_logits, vjp = jax.vjp(d_fn, mixed)
    (grads,) = vjp(jnp.ones_like(mixed_logits))
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=(1, 2, 3))) * grad_scale
    penalty = jnp.square(norms - wgan_target)
    loss = fake_logits - real_logits + penalty * (wgan_lambda / wgan_target**2)
    loss = loss + jnp.square(real_logits) * wgan_epsilon
    return loss, {"real_logits": real_logits, "fake_logits": fake_logits, "gp_penalty": penalty}
