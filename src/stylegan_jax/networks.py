"""StyleGAN networks (official ``G_style`` = ``G_mapping`` + ``G_synthesis``, and ``D_basic``).

Images are NHWC in [-1, 1]. Defaults are the paper's config F. Progressive growing follows the
official ``lod`` semantics with a *static* current resolution and a *traced* ``fade`` factor
(= frac(lod)): ``fade=0`` shows only the newest block, ``fade=1`` only the previous one,
upsampled. One compiled function therefore serves a whole fade-in or stable phase. Networks
run at the current resolution natively (G returns, and D takes, ``[N, r, r, C]``).

Every module must be initialised at its full resolution so that all variables exist.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from stylegan_jax.layers import (
    SQRT2,
    Bias,
    Conv2D,
    Dense,
    Dtype,
    NoiseInput,
    StyleMod,
    blur,
    downscale2d,
    instance_norm,
    instance_norm_stats,
    lrelu,
    minibatch_stddev,
    num_features,
    pixel_norm,
    resolution_log2,
    upscale2d,
    width_minor_layout,
)


def num_style_layers(resolution: int) -> int:
    """Number of synthesis layers (and per-layer styles) up to ``resolution``: 18 at 1024."""
    return 2 * resolution_log2(resolution) - 2


def first_style_layer(resolution: int) -> int:
    """Index of the first of the two synthesis layers at ``resolution``: ``2r - 4`` for
    ``2**r`` (0 at 4x4, 16 at 1024x1024); the second is the next index."""
    return num_style_layers(resolution) - 2


def layer_resolution(layer: int) -> int:
    """The resolution synthesis layer ``layer`` runs at (layers 0, 1: 4; 2, 3: 8; ...)."""
    return 2 ** (layer // 2 + 2)


def noise_shapes(resolution: int) -> list[tuple[int, ...]]:
    """Shapes ``[1, h, w, 1]`` of the per-layer noise inputs of a synthesis network up to
    ``resolution`` (one per layer, at that layer's resolution)."""
    return [(1, layer_resolution(i), layer_resolution(i), 1)
            for i in range(num_style_layers(resolution))]


def _use_fused(fused_scale: bool | str, resolution: int) -> bool:
    """Official ``fused_scale='auto'``: fused resampling where the big side is >= 128."""
    if fused_scale == "auto":
        return resolution >= 128
    if isinstance(fused_scale, bool):
        return fused_scale
    raise ValueError(f"fused_scale must be 'auto', True or False, got {fused_scale!r}")


def _fields(module: nn.Module, holder: type[nn.Module]) -> dict:
    """``module``'s values of the settings ``holder`` declares, by name (so sub-networks are
    built from the Generator's fields without restating or reordering them)."""
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(holder)
            if f.name not in ("parent", "name")}


def _checkpointed(module: type[nn.Module], resolution: int, remat_resolution: int
                  ) -> type[nn.Module]:
    """``module`` wrapped in ``nn.remat`` at and above ``remat_resolution`` (0: never): its
    activations are recomputed in the backward passes instead of stored, which trades FLOPs
    for memory where the feature maps are largest. Parameters, their names and the function
    are unchanged."""
    return nn.remat(module) if 0 < remat_resolution <= resolution else module


def _lerp_clip(new: jax.Array, old: jax.Array, fade: jax.Array | float) -> jax.Array:
    """Official ``lerp_clip(new, old, t)`` with ``t`` clipped to [0, 1]."""
    t = jnp.clip(jnp.asarray(fade, jnp.float32), 0.0, 1.0)
    return new + (old - new) * t.astype(new.dtype)


class ConvLayer(nn.Module):
    """Equalized-lr conv (optionally resampling) + bias + optional lrelu: D layers, ToRGB."""

    features: int
    kernel_size: int = 3
    gain: float = SQRT2
    resample: str | None = None
    fused: bool = False
    activate: bool = True
    resample_impl: str = "fused"
    layout_resolution: int = 0  # see layers.width_minor_layout
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv2D(self.features, self.kernel_size, self.gain, self.resample, self.fused,
                   self.resample_impl, dtype=self.dtype, name="Conv")(x)
        x = Bias(dtype=self.dtype, name="Bias")(x)
        return width_minor_layout(lrelu(x) if self.activate else x, self.layout_resolution)


class MappingFields(nn.Module):
    """The mapping network's settings (official ``G_mapping`` kwargs), declared once: both
    :class:`MappingNetwork` and :class:`Generator` have them."""

    latent_size: int = 512
    label_size: int = 0
    dlatent_size: int = 512
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    normalize_latents: bool = True
    dtype: Dtype = jnp.float32


class MappingNetwork(MappingFields):
    """z (and optional one-hot label) -> w: pixel norm, then ``mapping_layers`` x (dense, lrelu).

    All dense layers, the last included, have lrelu, gain sqrt(2) and lr multiplier 0.01. With
    labels, a ``LabelConcat`` embedding (N(0, 1) init, no wscale) is concatenated to z first.
    """

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"z must have shape [N, {self.latent_size}], got {tuple(z.shape)}")
        x = z.astype(jnp.float32)
        if self.label_size:
            if labels is None or labels.shape != (z.shape[0], self.label_size):
                raise ValueError(f"a conditional mapping network needs one-hot labels of shape "
                                 f"[{z.shape[0]}, {self.label_size}]")
            embed = self.param("LabelConcat", nn.initializers.normal(1.0),
                               (self.label_size, self.latent_size))
            x = jnp.concatenate([x, labels.astype(jnp.float32) @ embed], axis=1)
        if self.normalize_latents:
            x = pixel_norm(x)
        for i in range(self.mapping_layers):
            features = self.dlatent_size if i == self.mapping_layers - 1 else self.mapping_fmaps
            x = lrelu(Dense(features, lrmul=self.mapping_lrmul, dtype=self.dtype,
                            name=f"Dense{i}")(x))
        if x.shape[1] != self.dlatent_size:
            raise ValueError(f"mapping output has {x.shape[1]} dims but dlatent_size is "
                             f"{self.dlatent_size} (mapping_layers=0 needs equal sizes)")
        return x.astype(jnp.float32)


class SynthesisLayer(nn.Module):
    """One synthesis layer: its input op, then the official epilogue
    noise -> bias -> lrelu -> [pixel norm] -> [instance norm] -> style modulation.

    ``op``: ``'const'`` (learned 4x4 constant, init ones), ``'dense'`` (the "traditional"
    input: dense from w, gain sqrt(2)/4, reshaped NCHW like the official graph), ``'conv'``
    (3x3) or ``'conv_up'`` (2x upsampling 3x3 conv, fused when ``fused``, then blur).
    """

    features: int
    op: str = "conv"
    fused: bool = False
    use_blur: bool = True
    use_noise: bool = True
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    use_styles: bool = True
    resample_impl: str = "fused"
    layout_resolution: int = 0  # see layers.width_minor_layout
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array | None, w: jax.Array,
                 noise: jax.Array | None = None) -> jax.Array:
        n = w.shape[0]
        if self.op == "const":
            const = self.param("const", nn.initializers.ones, (1, 4, 4, self.features))
            x = jnp.broadcast_to(const, (n, 4, 4, self.features)).astype(self.dtype)
        elif self.op == "dense":
            x = Dense(self.features * 16, gain=SQRT2 / 4, use_bias=False, dtype=self.dtype,
                      name="Dense")(w)
            x = x.reshape(n, self.features, 4, 4).transpose(0, 2, 3, 1)
        elif self.op in ("conv", "conv_up"):
            up = self.op == "conv_up"
            x = Conv2D(self.features, resample="up" if up else None, fused=self.fused,
                       impl=self.resample_impl, dtype=self.dtype, name="Conv")(x)
            if up and self.use_blur:
                x = blur(x)
        else:
            raise ValueError(f"unknown synthesis layer op {self.op!r}")
        if self.use_noise:
            x = NoiseInput(dtype=self.dtype, name="Noise")(x, noise)
        x = lrelu(Bias(dtype=self.dtype, name="Bias")(x))
        if self.use_pixel_norm:
            x = pixel_norm(x)
        if self.use_instance_norm and self.use_styles:  # one pass for both (StyleMod docs)
            x = StyleMod(dtype=self.dtype, name="StyleMod")(x, w, instance_norm_stats(x))
        else:
            if self.use_instance_norm:
                x = instance_norm(x)
            if self.use_styles:
                x = StyleMod(dtype=self.dtype, name="StyleMod")(x, w)
        return width_minor_layout(x, self.layout_resolution)


class SynthesisFields(nn.Module):
    """The synthesis network's settings (official ``G_synthesis`` kwargs), declared once: both
    :class:`SynthesisNetwork` and :class:`Generator` have them."""

    resolution: int = 1024
    num_channels: int = 3
    dlatent_size: int = 512
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_styles: bool = True
    const_input_layer: bool = True
    use_noise: bool = True
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    fused_scale: bool | str = "auto"
    use_blur: bool = True
    resample_impl: str = "fused"
    remat_resolution: int = 0
    layout_resolution: int = 0
    dtype: Dtype = jnp.float32


class SynthesisNetwork(SynthesisFields):
    """Per-layer w ``[N, num_layers, D]`` -> image ``[N, r, r, C]`` at the current resolution r.

    4x4: a learned constant (init ones; or, for the "traditional" input, a dense layer from
    w of layer 0) and a 3x3 conv. Each higher block: upsample-conv (fused at >= 128) + blur,
    then a 3x3 conv. Every layer ends with the epilogue. ToRGB (1x1, gain 1) at every resolution.
    """

    def nf(self, stage: int) -> int:
        return num_features(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    def _layer(self, features: int, op: str, name: str, resolution: int,
               fused: bool = False) -> SynthesisLayer:
        layer = _checkpointed(SynthesisLayer, resolution, self.remat_resolution)
        return layer(features=features, op=op, fused=fused, use_blur=self.use_blur,
                              use_noise=self.use_noise, use_pixel_norm=self.use_pixel_norm,
                              use_instance_norm=self.use_instance_norm,
                              use_styles=self.use_styles, resample_impl=self.resample_impl,
                              layout_resolution=self.layout_resolution, dtype=self.dtype,
                              name=name)

    def _to_rgb_layers(self, full_log2: int, cur_log2: int) -> dict[int, ConvLayer]:
        """ToRGB layers (1x1, gain 1, no activation) by log2 resolution: the two the current
        phase blends, or all of them while initialising so later phases find their parameters."""
        levels = range(2, full_log2 + 1) if self.is_initializing() else \
            range(max(cur_log2 - 1, 2), cur_log2 + 1)
        return {r: ConvLayer(self.num_channels, kernel_size=1, gain=1.0, activate=False,
                             layout_resolution=self.layout_resolution, dtype=self.dtype,
                             name=f"ToRGB_{2**r}x{2**r}") for r in levels}

    @nn.compact
    def __call__(self, dlatents: jax.Array, *, current_resolution: int | None = None,
                 fade: jax.Array | float = 0.0,
                 noise: Sequence[jax.Array | None] | None = None) -> jax.Array:
        full_log2 = resolution_log2(self.resolution)
        cur = current_resolution or self.resolution
        cur_log2 = resolution_log2(cur)
        if not 2 <= cur_log2 <= full_log2:
            raise ValueError(f"current_resolution {cur} is outside [4, {self.resolution}]")
        if self.is_initializing() and cur != self.resolution:
            raise ValueError("initialise SynthesisNetwork at its full resolution")
        n_layers = num_style_layers(cur)
        if dlatents.ndim != 3 or dlatents.shape[1] < n_layers:
            raise ValueError(f"dlatents must be [N, >= {n_layers}, {self.dlatent_size}], "
                             f"got {tuple(dlatents.shape)}")
        if noise is None:
            noise = [None] * n_layers
        elif len(noise) != n_layers:
            raise ValueError(f"noise must list {n_layers} arrays (one per layer up to "
                             f"{cur}x{cur}), got {len(noise)}")
        w = dlatents.astype(jnp.float32)

        if self.const_input_layer:
            x = self._layer(self.nf(1), "const", "4x4_Const", 4)(None, w[:, 0], noise[0])
        else:
            x = self._layer(self.nf(1), "dense", "4x4_Dense", 4)(None, w[:, 0], noise[0])
        x = self._layer(self.nf(1), "conv", "4x4_Conv", 4)(x, w[:, 1], noise[1])
        features = {2: x}
        for r in range(3, cur_log2 + 1):
            res, i = 2**r, first_style_layer(2**r)
            x = self._layer(self.nf(r - 1), "conv_up", f"{res}x{res}_Conv0_up", res,
                            fused=_use_fused(self.fused_scale, res))(x, w[:, i], noise[i])
            x = self._layer(self.nf(r - 1), "conv", f"{res}x{res}_Conv1", res)(
                x, w[:, i + 1], noise[i + 1])
            features[r] = x

        to_rgb = self._to_rgb_layers(full_log2, cur_log2)
        for r, layer in to_rgb.items():  # only while initialising: create unused ToRGBs
            if r < cur_log2 - 1:
                layer(jnp.zeros((1, 1, 1, self.nf(r - 1)), self.dtype))
        images = to_rgb[cur_log2](features[cur_log2])
        if cur_log2 > 2:
            previous = upscale2d(to_rgb[cur_log2 - 1](features[cur_log2 - 1]))
            images = _lerp_clip(images, previous, fade)
        return images.astype(jnp.float32)


class Generator(SynthesisFields, MappingFields):
    """The style-based generator: mapping, tracked average w, style mixing, truncation, synthesis.

    Settings: every field of :class:`MappingFields` and :class:`SynthesisFields` (passed on by
    name to the two sub-networks) plus ``truncation_cutoff``, ``dlatent_avg_beta`` and
    ``style_mixing_prob`` (official ``G_style`` kwargs).

    Call ``G.apply(variables, z, labels=None, *, w=None, current_resolution=None, fade=0.0,
    truncation_psi=None, truncation_cutoff=None, noise=None, train=False, rngs=...)``:

    - ``z``: latents ``[N, latent_size]``; or give ``w`` instead, either ``[N, dlatent_size]``
      (one w for every layer) or ``[N, num_layers, dlatent_size]`` (W+, a w per layer).
    - ``current_resolution`` (static) and ``fade`` (traced, = frac(lod)): progressive growing.
    - ``truncation_psi``: ``None`` (default, as for metrics) disables truncation; a value psi
      gives ``w_avg + psi * (w - w_avg)`` on layers ``< truncation_cutoff`` (default
      ``self.truncation_cutoff``; the official sampling default is psi 0.7 on layers 0-7).
    - ``noise``: ``None`` draws fresh noise from ``rngs={'noise': key}`` on every call; or a list
      of per-layer arrays (:func:`noise_shapes`) for deterministic output.
    - ``train=True``: updates ``w_avg`` (collection ``'stats'``, pass ``mutable=['stats']``)
      from the batch mean of the pre-mixing w, and mixes styles with probability
      ``style_mixing_prob`` using ``rngs={'mixing': key}``.

    Returns images ``[N, r, r, num_channels]`` (float32, nominally in [-1, 1]).
    """

    truncation_cutoff: int = 8
    dlatent_avg_beta: float = 0.995
    style_mixing_prob: float = 0.9
    style_mixing_groups: int = 1

    @property
    def num_layers(self) -> int:
        return num_style_layers(self.resolution)

    def setup(self) -> None:
        self.mapping = MappingNetwork(**_fields(self, MappingFields))
        self.synthesis = SynthesisNetwork(**_fields(self, SynthesisFields))
        self.w_avg = self.variable("stats", "w_avg", jnp.zeros, (self.dlatent_size,), jnp.float32)

    def map(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """z -> w ``[N, dlatent_size]`` (no truncation, no mixing)."""
        return self.mapping(z, labels)

    def broadcast(self, w: jax.Array) -> jax.Array:
        """``[N, D]`` -> ``[N, num_layers, D]``; W+ input ``[N, num_layers, D]`` is checked."""
        if w.ndim == 2:
            w = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.num_layers, w.shape[1]))
        if w.ndim != 3 or w.shape[1:] != (self.num_layers, self.dlatent_size):
            raise ValueError(f"w must be [N, {self.dlatent_size}] or "
                             f"[N, {self.num_layers}, {self.dlatent_size}], got {tuple(w.shape)}")
        return w

    def truncate(self, w: jax.Array, psi: jax.Array | float,
                 cutoff: int | None = None) -> jax.Array:
        """Official truncation trick on per-layer w: layers ``< cutoff`` move toward ``w_avg``."""
        cutoff = self.truncation_cutoff if cutoff is None else cutoff
        if not 0 <= cutoff <= self.num_layers:
            raise ValueError(f"truncation_cutoff {cutoff} is outside [0, {self.num_layers}]")
        layer = jnp.arange(self.num_layers)[None, :, None]
        coef = jnp.where(layer < cutoff, jnp.asarray(psi, jnp.float32), 1.0)
        avg = self.w_avg.value
        return avg + (w - avg) * coef

    def synthesize(self, w: jax.Array, *, current_resolution: int | None = None,
                   fade: jax.Array | float = 0.0,
                   noise: Sequence[jax.Array | None] | None = None) -> jax.Array:
        """Per-layer (or single) w -> images, with no truncation or mixing."""
        return self.synthesis(self.broadcast(w), current_resolution=current_resolution,
                              fade=fade, noise=noise)

    def __call__(self, z: jax.Array | None = None, labels: jax.Array | None = None, *,
                 w: jax.Array | None = None, current_resolution: int | None = None,
                 fade: jax.Array | float = 0.0, truncation_psi: jax.Array | float | None = None,
                 truncation_cutoff: int | None = None,
                 noise: Sequence[jax.Array | None] | None = None,
                 train: bool = False) -> jax.Array:
        if (z is None) == (w is None):
            raise ValueError("pass exactly one of z and w")
        if w is None:
            w0 = self.mapping(z, labels)
            if train:
                self._update_w_avg(w0)
            w = self.broadcast(w0)
            if train and self.style_mixing_prob > 0:
                w = self._mix_styles(w, z, labels, current_resolution or self.resolution)
        else:
            w = self.broadcast(w.astype(jnp.float32))
        if truncation_psi is not None:
            w = self.truncate(w, truncation_psi, truncation_cutoff)
        return self.synthesis(w, current_resolution=current_resolution, fade=fade, noise=noise)

    def _update_w_avg(self, w: jax.Array) -> None:
        if not self.is_mutable_collection("stats"):
            raise ValueError("train=True updates w_avg: call apply(..., mutable=['stats'])")
        batch_avg = jnp.mean(w, axis=0)
        self.w_avg.value = batch_avg + (self.w_avg.value - batch_avg) * self.dlatent_avg_beta

    def _mix_styles(self, w: jax.Array, z: jax.Array, labels: jax.Array | None,
                    current_resolution: int) -> jax.Array:
        """Official style mixing: one coin flip and one crossover layer per group.

        With probability ``style_mixing_prob`` a second latent is mapped and layers
        ``>= cutoff`` take it, ``cutoff ~ U{1, ..., cur_layers - 1}`` over the layers active at
        the current resolution; otherwise nothing changes. The batch is split into
        ``style_mixing_groups`` contiguous groups with one draw each: the official code draws
        once per GPU sub-batch (8 groups in the paper's 8-GPU runs); 1 group is one draw per
        minibatch.
        """
        if self.is_initializing() and not self.has_rng("mixing"):
            return w
        if not self.has_rng("mixing"):
            raise ValueError("train=True mixes styles: pass rngs={'mixing': key, ...}")
        k_z, k_coin, k_cut = jax.random.split(self.make_rng("mixing"), 3)
        w2 = self.broadcast(self.mapping(jax.random.normal(k_z, z.shape, z.dtype), labels))
        cur_layers = num_style_layers(current_resolution)
        groups, n = self.style_mixing_groups, z.shape[0]
        if groups < 1 or n % groups:
            raise ValueError(f"minibatch {n} does not split into style_mixing_groups={groups} "
                             "equal groups")
        shape = () if groups == 1 else (groups,)  # () keeps one-group draws as they were
        cutoff = jnp.where(jax.random.uniform(k_coin, shape) < self.style_mixing_prob,
                           jax.random.randint(k_cut, shape, 1, cur_layers), cur_layers)
        cutoff = jnp.repeat(jnp.reshape(cutoff, (-1,)), n // groups)[:, None, None]
        layer = jnp.arange(self.num_layers)[None, :, None]
        return jnp.where(layer < cutoff, w, w2)


class Discriminator(nn.Module):
    """Official ``D_basic``: FromRGB + lrelu, blocks (conv, blur, conv-down), minibatch stddev,
    3x3 conv, dense to 512, dense to the score (or a label projection when conditioned).

    Call ``D.apply(variables, images, labels=None, *, fade=0.0)`` with images ``[N, r, r, C]``
    in [-1, 1] at the current resolution r (static, read from the shape); ``fade`` blends in
    the newest block from the input side. Returns raw logits ``[N]`` (float32).
    ``mbstd_num_shards`` keeps minibatch-stddev groups inside each device's share of the batch
    (set it to the number of data-parallel devices).
    """

    resolution: int = 1024
    num_channels: int = 3
    label_size: int = 0
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    mbstd_num_shards: int = 1
    fused_scale: bool | str = "auto"
    use_blur: bool = True
    resample_impl: str = "fused"
    remat_resolution: int = 0
    layout_resolution: int = 0
    dtype: Dtype = jnp.float32

    def nf(self, stage: int) -> int:
        return num_features(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    def _from_rgb_layers(self, full_log2: int, cur_log2: int) -> dict[int, ConvLayer]:
        """FromRGB layers (1x1 + lrelu) by log2 resolution: the two the current phase blends,
        or all of them while initialising so later phases find their parameters."""
        levels = range(2, full_log2 + 1) if self.is_initializing() else \
            range(max(cur_log2 - 1, 2), cur_log2 + 1)
        return {r: ConvLayer(self.nf(r - 1), kernel_size=1,
                             layout_resolution=self.layout_resolution, dtype=self.dtype,
                             name=f"FromRGB_{2**r}x{2**r}") for r in levels}

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, *,
                 fade: jax.Array | float = 0.0) -> jax.Array:
        full_log2 = resolution_log2(self.resolution)
        if images.ndim != 4 or images.shape[1] != images.shape[2] or \
                images.shape[3] != self.num_channels:
            raise ValueError(f"images must be [N, r, r, {self.num_channels}], "
                             f"got {tuple(images.shape)}")
        cur = images.shape[1]
        cur_log2 = resolution_log2(cur)
        if cur_log2 > full_log2:
            raise ValueError(f"images of {cur}x{cur} exceed the resolution {self.resolution}")
        if self.is_initializing() and cur != self.resolution:
            raise ValueError("initialise the Discriminator with full-resolution images")
        from_rgb = self._from_rgb_layers(full_log2, cur_log2)
        for r, layer in from_rgb.items():  # only while initialising: create unused FromRGBs
            if r < cur_log2 - 1:
                layer(jnp.zeros((1, 1, 1, self.num_channels), self.dtype))

        img = images.astype(self.dtype)
        x = from_rgb[cur_log2](img)
        for r in range(cur_log2, 2, -1):
            res = 2**r
            conv = functools.partial(_checkpointed(ConvLayer, res, self.remat_resolution),
                                     layout_resolution=self.layout_resolution,
                                     dtype=self.dtype)
            x = conv(self.nf(r - 1), name=f"{res}x{res}_Conv0")(x)
            if self.use_blur:
                x = blur(x)
            x = conv(self.nf(r - 2), resample="down", fused=_use_fused(self.fused_scale, res),
                     resample_impl=self.resample_impl, name=f"{res}x{res}_Conv1_down")(x)
            if r == cur_log2:
                x = _lerp_clip(x, from_rgb[r - 1](downscale2d(img)), fade)

        if self.mbstd_group_size > 1:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_features,
                                 self.mbstd_num_shards)
        x = ConvLayer(self.nf(1), dtype=self.dtype, name="4x4_Conv")(x)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # NCHW flatten, as the official Dense0
        x = lrelu(Dense(self.nf(0), dtype=self.dtype, name="4x4_Dense0")(x))
        out = Dense(max(self.label_size, 1), gain=1.0, dtype=self.dtype, name="4x4_Dense1")(x)
        out = out.astype(jnp.float32)
        if self.label_size:
            if labels is None or labels.shape != (images.shape[0], self.label_size):
                raise ValueError(f"a conditional discriminator needs one-hot labels of shape "
                                 f"[{images.shape[0]}, {self.label_size}]")
            return jnp.sum(out * labels.astype(jnp.float32), axis=1)
        return out[:, 0]
