"""Primitive layers of the official StyleGAN (NVlabs/stylegan ``networks_stylegan.py``), NHWC.

Every weight uses the equalized learning rate of the official ``get_weight``: it is stored as
N(0, 1/lrmul) and multiplied at run time by ``gain / sqrt(fan_in) * lrmul``, with fan_in the
product of all weight dims but the last. Biases are stored at 0 and multiplied by ``lrmul``.
Parameters stay float32; ``dtype`` is the compute dtype of convolutions and matmuls (bf16 on
GPU/TPU); normalisations and statistics always run in float32 as in the official code.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.layout import Layout, with_layout_constraint

from stylegan_jax.images import box_mean

Dtype = jnp.dtype
SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2
EPS = 1e-8
TPU_LANES = 128  # XLA:TPU tiles an array's minor dimension to this many lanes


def equalized_scale(fan_in: int, gain: float, lrmul: float) -> float:
    """Run-time weight multiplier of an equalized-lr layer: ``gain / sqrt(fan_in) * lrmul``."""
    return gain / math.sqrt(fan_in) * lrmul


def _equalized_init(lrmul: float) -> nn.initializers.Initializer:
    """Stored weights are N(0, 1/lrmul) so that the runtime product has std he_std."""
    return nn.initializers.normal(stddev=1.0 / lrmul)


def width_minor_layout(x: jax.Array, min_resolution: int) -> jax.Array:
    """``x`` ``[N, H, W, C]`` with its width as the minor (lane) dimension in memory, where it
    has fewer than 128 channels and ``H >= min_resolution`` (0: never; else unchanged).

    XLA:TPU otherwise keeps the channels minor and pads them to 128 lanes: the 16 channels at
    1024x1024 take 8x their bytes, and the stored activations of the iteration no longer fit
    a 16 GB chip (BENCHMARKS.md, TPU). A layout is not a value: the function is the same."""
    if min_resolution and x.ndim == 4 and x.shape[-1] < TPU_LANES and \
            x.shape[1] >= min_resolution:
        return with_layout_constraint(x, Layout(major_to_minor=(0, 1, 3, 2)))
    return x


def lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with slope 0.2 (official ``leaky_relu``)."""
    return jax.nn.leaky_relu(x, LRELU_SLOPE)


def pixel_norm(x: jax.Array, eps: float = EPS) -> jax.Array:
    """Normalise each feature vector to unit RMS over the channel (last) axis."""
    x32 = x.astype(jnp.float32)
    return (x32 * jax.lax.rsqrt(jnp.mean(x32**2, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def instance_norm_stats(x: jax.Array, eps: float = EPS) -> tuple[jax.Array, jax.Array]:
    """Per-sample, per-channel spatial mean and ``1 / sqrt(biased var + eps)``, ``[N, 1, 1, C]``
    float32, from one pass over ``x`` (the sum and the sum of squares, which XLA computes as one
    multi-output reduction). The sums are taken about the first pixel of each channel, which
    keeps the variance exact to float32 rounding even when the mean dwarfs the spread."""
    x32 = x.astype(jnp.float32)
    shift = jax.lax.stop_gradient(x32[:, :1, :1, :])
    d = x32 - shift
    mean_d = jnp.mean(d, axis=(1, 2), keepdims=True)
    var = jnp.maximum(jnp.mean(d * d, axis=(1, 2), keepdims=True) - mean_d * mean_d, 0.0)
    return mean_d + shift, jax.lax.rsqrt(var + eps)


def instance_norm(x: jax.Array, eps: float = EPS) -> jax.Array:
    """Per-sample, per-channel spatial normalisation (biased variance, eps 1e-8), in float32."""
    mean, inv_std = instance_norm_stats(x, eps)
    return ((x.astype(jnp.float32) - mean) * inv_std).astype(x.dtype)


def _smooth_121(x: jax.Array, axis: int) -> jax.Array:
    """``[1, 2, 1] / 4`` along ``axis`` with zero padding, as shifted slices of a padded copy."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    padded = jnp.pad(x, pad)
    n = x.shape[axis]
    before, centre, after = (jax.lax.slice_in_dim(padded, s, s + n, axis=axis) for s in range(3))
    return 0.25 * before + 0.5 * centre + 0.25 * after


def blur(x: jax.Array) -> jax.Array:
    """Depthwise [1,2,1] x [1,2,1] / 16 filter, zero ('SAME') padding, stride 1 (official
    ``_blur2d``, a depthwise conv2d with that kernel), computed in float32.

    The kernel is separable, so it is applied as two ``[1, 2, 1] / 4`` passes of shifted
    slices, which XLA fuses into elementwise loops. The depthwise convolution it replaces was,
    on XLA's CPU backend, 20-30x slower (23.7 vs 1.1 ms for 32x32x32x16, forward) and about
    half of the 32x32 training iteration (BENCHMARKS.md); the result differs only by float
    rounding. The filter is symmetric, so its gradient is the same stencil.
    """
    y = _smooth_121(_smooth_121(x.astype(jnp.float32), 1), 2)
    return y.astype(x.dtype)


def upscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling by an integer factor (official ``upscale2d``)."""
    if factor == 1:
        return x
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return x.reshape(n, h * factor, w * factor, c)


def downscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Official ``downscale2d``: box-filter downsampling (:func:`stylegan_jax.images.box_mean`)."""
    return box_mean(x, factor)


def _conv(x: jax.Array, w: jax.Array, stride: int = 1, padding="SAME", lhs_dilation=None):
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=padding, lhs_dilation=lhs_dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _shifted_sum_kernel(w: jax.Array) -> jax.Array:
    """3x3 kernel -> 4x4: zero-pad to 5x5 and add its four 2x2-shifted copies (official)."""
    w = jnp.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def fused_upscale_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """Official ``upscale2d_conv2d`` (fused): transposed stride-2 conv with the 4x4 shifted-sum
    kernel (no x0.25), as TF ``conv2d_transpose(..., padding='SAME')`` computes it.

    It equals nearest upsampling followed by a SAME conv with the spatially flipped 3x3 kernel
    (tested); the fused form does the work of a 3x3 conv at low resolution only.
    """
    k = _shifted_sum_kernel(w)[::-1, ::-1]  # a transposed conv correlates with the flipped kernel
    return _conv(x, k, padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))


def fused_conv_downscale(x: jax.Array, w: jax.Array) -> jax.Array:
    """Official ``conv2d_downscale2d`` (fused): stride-2 conv with the 4x4 shifted-sum kernel x0.25.

    Equals a 3x3 SAME conv followed by 2x2 average pooling (tested), at a quarter of the cost.
    """
    k = _shifted_sum_kernel(w) * 0.25
    return _conv(x, k, stride=2, padding=((1, 1), (1, 1)))


def _stride2_conv(x: jax.Array, k: jax.Array) -> jax.Array:
    """Stride-2 correlation with a 4x4 HWIO kernel, padded 1 on each side (the official fused
    down-conv's op)."""
    return _conv(x, k, stride=2, padding=((1, 1), (1, 1)))


def _swap_io(k: jax.Array) -> jax.Array:
    return jnp.swapaxes(k, 2, 3)


def _stride2_weight_grad(x: jax.Array, g: jax.Array, k: jax.Array) -> jax.Array:
    """Weight gradient of :func:`_stride2_conv` at input ``x`` for output cotangent ``g``: a
    convolution of ``x`` with ``g`` as a 2-dilated window (cuDNN's backward-filter kernel)."""
    return jax.vjp(lambda kk: _stride2_conv(x, kk), k)[1](g)[0]


@jax.custom_vjp
def stride2_conv(x: jax.Array, k: jax.Array) -> jax.Array:
    """:func:`_stride2_conv` whose input gradient is :func:`stride2_transpose_conv` (so R1's
    double backward differentiates that op's stated gradients, not a zero-stuffed conv)."""
    return _stride2_conv(x, k)


def _stride2_conv_fwd(x, k):
    return _stride2_conv(x, k), (x, k)


def _stride2_conv_bwd(res, g):
    x, k = res
    return stride2_transpose_conv(g, _swap_io(k)), _stride2_weight_grad(x, g, k)


stride2_conv.defvjp(_stride2_conv_fwd, _stride2_conv_bwd)


def _stride2_transpose(x: jax.Array, k: jax.Array) -> jax.Array:
    n, h, w, _ = x.shape
    z = jax.ShapeDtypeStruct((n, 2 * h, 2 * w, k.shape[3]), x.dtype)
    return jax.linear_transpose(lambda zz: _stride2_conv(zz, _swap_io(k)), z)(x)[0]


@jax.custom_vjp
def stride2_transpose_conv(x: jax.Array, k: jax.Array) -> jax.Array:
    """TF ``conv2d_transpose(x, k, strides 2, 'SAME')`` with a 4x4 ``[k, k, C_in, C_out]``
    kernel: the adjoint of :func:`_stride2_conv` with the kernel's channel axes swapped.

    Its gradients are stated rather than derived: the input gradient is :func:`stride2_conv`
    and the weight gradient is the strided conv's backward-filter convolution (a 2-dilated
    window), where autodiff would convolve a 2x zero-stuffed input, which XLA's GPU compiler
    cannot map to cuDNN and pads 4x instead.
    """
    return _stride2_transpose(x, k)


def _stride2_transpose_fwd(x, k):
    return _stride2_transpose(x, k), (x, k)


def _stride2_transpose_bwd(res, g):
    x, k = res
    return stride2_conv(g, _swap_io(k)), _swap_io(_stride2_weight_grad(g, x, _swap_io(k)))


stride2_transpose_conv.defvjp(_stride2_transpose_fwd, _stride2_transpose_bwd)


def fused_upscale_conv_stated_grads(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`fused_upscale_conv` through :func:`stride2_transpose_conv` (same values; no
    gradient convolves a zero-stuffed input)."""
    return stride2_transpose_conv(x, _shifted_sum_kernel(w))


def fused_conv_downscale_stated_grads(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`fused_conv_downscale` through :func:`stride2_conv` (same values; R1's double
    backward differentiates the stated gradients)."""
    return stride2_conv(x, _shifted_sum_kernel(w) * 0.25)


def minibatch_stddev(x: jax.Array, group_size: int = 4, num_features: int = 1,
                     num_shards: int = 1) -> jax.Array:
    """Append the minibatch stddev as extra channels (official ``minibatch_stddev_layer``).

    Within each of ``num_shards`` contiguous chunks of the batch (one per device under
    data parallelism, so groups never span devices, as in the official per-GPU graph) the
    samples are grouped with the official *strided* grouping: with ``G = min(group_size, n)``
    and ``M = n // G``, group ``m`` holds samples ``m, m + M, m + 2M, ...``. Per group: biased
    variance over the group, ``sqrt(var + 1e-8)``, mean over H, W and the channels of each of the
    ``num_features`` channel splits; the result is tiled over the group's samples.
    """
    n, h, w, c = x.shape
    if n % num_shards:
        raise ValueError(f"batch {n} is not divisible by num_shards={num_shards}")
    local = n // num_shards
    g = min(group_size, local)
    if local % g:
        raise ValueError(f"per-shard batch {local} is not divisible by the mbstd group size {g}")
    f = num_features
    if c % f:
        raise ValueError(f"{c} channels are not divisible by mbstd num_features={f}")
    m = local // g
    y = x.astype(jnp.float32).reshape(num_shards, g, m, h, w, f, c // f)
    y = y - y.mean(axis=1, keepdims=True)
    y = jnp.sqrt((y**2).mean(axis=1) + EPS)  # [S, M, H, W, F, C/F]
    y = y.mean(axis=(2, 3, 5))  # [S, M, F]
    y = jnp.broadcast_to(y[:, None, :, None, None, :], (num_shards, g, m, h, w, f))
    return jnp.concatenate([x, y.reshape(n, h, w, f).astype(x.dtype)], axis=-1)


class Dense(nn.Module):
    """Equalized-lr fully-connected layer, optional bias (both scaled by ``lrmul``)."""

    features: int
    gain: float = SQRT2
    lrmul: float = 1.0
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _equalized_init(self.lrmul), (fan_in, self.features))
        scale = equalized_scale(fan_in, self.gain, self.lrmul)
        y = jnp.dot(x.astype(self.dtype), (kernel * scale).astype(self.dtype))
        if self.use_bias:
            y = Bias(lrmul=self.lrmul, dtype=self.dtype, name="bias")(y)
        return y


class Bias(nn.Module):
    """Per-channel bias, init 0, scaled by ``lrmul`` at run time (official ``apply_bias``).

    A module of its own (rather than a conv's built-in bias) because G adds it *after* the
    noise input, as the official layer epilogue does.
    """

    lrmul: float = 1.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return x + (b * self.lrmul).astype(x.dtype)


RESAMPLE_IMPLS = ("fused", "reference")


def check_resample_impl(impl: str) -> str:
    """``impl`` if it names a resampling implementation, else a ValueError naming the field."""
    if impl not in RESAMPLE_IMPLS:
        raise ValueError(f"resample_impl must be one of {RESAMPLE_IMPLS}, got {impl!r}")
    return impl


class Conv2D(nn.Module):
    """Equalized-lr KxK convolution without bias, optionally fused with 2x up- or downsampling.

    ``resample``: ``None``; ``'up'`` (nearest-up then conv, or the official fused transposed
    conv when ``fused``, which equals nearest-up then conv with the flipped kernel); ``'down'``
    (conv then 2x2 average, or the official fused stride-2 conv when ``fused``: the same
    function). ``fused`` selects the official layer, i.e. what the parameters mean; ``impl``
    selects how it is computed: ``'fused'`` (the fused ops at every resolution, whatever
    ``fused`` says, with stated gradients: see :func:`stride2_transpose_conv`) or
    ``'reference'`` (the official ops literally: upsample/pool around a full-resolution conv
    below 128, the transposed / strided conv with autodiff gradients above). The kernel is
    stored HWIO as ``[k, k, C_in, C_out]`` like the official one.
    """

    features: int
    kernel_size: int = 3
    gain: float = SQRT2
    resample: str | None = None
    fused: bool = False
    impl: str = "fused"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", _equalized_init(1.0), (k, k, cin, self.features))
        w = (kernel * equalized_scale(k * k * cin, self.gain, 1.0)).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {self.resample!r}")
        if self.resample is None:
            return _conv(x, w)
        if check_resample_impl(self.impl) == "fused" and k == 3:
            if self.resample == "up":  # nearest-up + conv(w) == fused up-conv(flipped w)
                return fused_upscale_conv_stated_grads(x, w if self.fused else w[::-1, ::-1])
            return fused_conv_downscale_stated_grads(x, w)
        if self.resample == "up":
            return fused_upscale_conv(x, w) if self.fused else _conv(upscale2d(x), w)
        return fused_conv_downscale(x, w) if self.fused else downscale2d(_conv(x, w))


class NoiseInput(nn.Module):
    """Add per-pixel noise scaled by a learned per-channel strength (init 0, no wscale).

    ``noise`` is ``[N or 1, H, W, 1]``; ``None`` draws a fresh N(0, 1) map from the ``'noise'``
    RNG stream on every call (the official ``randomize_noise=True``).
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, noise: jax.Array | None = None) -> jax.Array:
        strength = self.param("strength", nn.initializers.zeros, (x.shape[-1],))
        n, h, w, _ = x.shape
        if noise is None:
            noise = draw_noise(self, (n, h, w, 1))
        elif noise.ndim != 4 or noise.shape[1:] != (h, w, 1) or noise.shape[0] not in (1, n):
            raise ValueError(f"{self.name}: noise must have shape [{n} or 1, {h}, {w}, 1], "
                             f"got {tuple(noise.shape)}")
        return x + (noise.astype(jnp.float32) * strength).astype(x.dtype)


def draw_noise(module: nn.Module, shape: tuple[int, ...]) -> jax.Array:
    """N(0, 1) noise from the module's ``'noise'`` RNG stream (zeros while initialising)."""
    if module.is_initializing() and not module.has_rng("noise"):
        return jnp.zeros(shape, jnp.float32)
    if not module.has_rng("noise"):
        raise ValueError(
            "random noise inputs need an RNG: call apply(..., rngs={'noise': key}), or pass "
            "explicit noise=[...] (see networks.noise_shapes), or use_noise=False")
    return jax.random.normal(module.make_rng("noise"), shape, jnp.float32)


class StyleMod(nn.Module):
    """AdaIN style: an affine map of ``w`` (gain 1) to per-channel (scale, bias), then
    ``x * (scale + 1) + bias`` (official ``style_mod``).

    With ``norm_stats=(mean, inv_std)`` (from :func:`instance_norm_stats`) the instance norm
    that precedes it is folded in: ``x * a + b`` with per-(sample, channel) ``a = inv_std *
    (scale + 1)`` and ``b = bias - mean * a``, one pass over ``x`` instead of two.
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array,
                 norm_stats: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
        c = x.shape[-1]
        style = Dense(2 * c, gain=1.0, dtype=jnp.float32, name="affine")(w)
        scale, bias = style[:, None, None, :c] + 1, style[:, None, None, c:]
        if norm_stats is not None:
            mean, inv_std = norm_stats
            scale = inv_std * scale
            bias = bias - mean * scale
        return (x.astype(jnp.float32) * scale + bias).astype(x.dtype)


def resolution_log2(resolution: int) -> int:
    """log2 of a power-of-two resolution >= 4, with a clear error otherwise."""
    r = int(np.log2(resolution)) if resolution > 0 else 0
    if resolution < 4 or 2**r != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return r


def num_features(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """Official ``nf(stage) = min(int(fmap_base / 2**(stage * fmap_decay)), fmap_max)``."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)
