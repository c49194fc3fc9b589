"""The FID Inception-v3 (TF graph ``inception-2015-12-05``) in Flax: pool3 2048-d features.

Architecture as ported by pytorch-fid (torchvision's Inception3 with 1008 classes and the TF
graph's quirks): batch norm with eps 1e-3 in inference mode, average pools in Mixed_5b..7b
that exclude padding from the count, and a *max* pool in Mixed_7c's pool branch. Weights come
from pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (read without torch) or an ``.npz``
with the same keys.

Two preprocessing modes, both taking uint8-range images of any size:

* ``"nvidia"``: TF1 legacy bilinear resize to 299 (``src = dst * in / out``, no half-pixel
  offset, no antialiasing), then ``(x - 128) / 128``. This is what the TF graph, and therefore
  StyleGAN's and NVIDIA's published FIDs, use.
* ``"pytorch_fid"``: ``x / 255``, half-pixel bilinear (``align_corners=False``) to 299, then
  ``2x - 1``, as ``pytorch_fid.InceptionV3`` does.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.metrics import weights as weights_lib

INCEPTION_ENV = "STYLEGAN_JAX_INCEPTION"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
HOW_TO_GET_INCEPTION = (
    f"Download {INCEPTION_FILE} from https://github.com/mseitzer/pytorch-fid/releases/download/"
    f"fid_weights/{INCEPTION_FILE} (or torch-fidelity's identical weights-inception-2015-12-05-"
    f"6726825d.pth) and pass its path or set ${INCEPTION_ENV}; an .npz with the same keys "
    "(`stylegan_jax.metrics.weights.convert_to_npz`) works too.")
MODES = ("nvidia", "pytorch_fid")
INPUT_SIZE = 299
_BN_EPS = 1e-3


def resize_bilinear(images: jax.Array, size: int, half_pixel: bool) -> jax.Array:
    """Bilinear resize of NHWC images to ``size`` x ``size`` without antialiasing.

    ``half_pixel=False`` is TF1's legacy ``ResizeBilinear`` (``src = dst * in / out``);
    ``True`` is ``align_corners=False`` sampling (``src = (dst + .5) * in / out - .5``,
    clamped at 0) as in PyTorch's ``F.interpolate``. The upper neighbour is clamped at the edge.
    Source coordinates are computed in float32, as both TF and PyTorch do for float images.
    """
    def along(x: jax.Array, axis: int) -> jax.Array:
        n_in = x.shape[axis]
        scale = np.float32(n_in) / np.float32(size)
        dst = np.arange(size, dtype=np.float32)
        src = scale * (dst + np.float32(0.5)) - np.float32(0.5) if half_pixel else dst * scale
        src = np.maximum(src, np.float32(0))
        lo = np.floor(src).astype(np.int32)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = jnp.asarray(src - lo, x.dtype).reshape([-1] + [1] * (x.ndim - axis - 1))
        a, b = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
        return a + (b - a) * frac

    return along(along(images, 1), 2)


def preprocess(images: jax.Array, mode: str) -> jax.Array:
    """uint8-range NHWC images (RGB; grey is repeated) -> Inception input ``[N, 299, 299, 3]``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x = images.astype(jnp.float32)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    if mode == "nvidia":
        return (resize_bilinear(x, INPUT_SIZE, half_pixel=False) - 128.0) / 128.0
    return resize_bilinear(x / 255.0, INPUT_SIZE, half_pixel=True) * 2.0 - 1.0


class BasicConv(nn.Module):
    """Conv (no bias) -> batch norm (inference, eps 1e-3) -> ReLU."""

    features: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (*self.kernel, x.shape[-1], self.features))
        ones, zeros = nn.initializers.ones, nn.initializers.zeros
        scale = self.param("scale", ones, (self.features,))
        bias = self.param("bias", zeros, (self.features,))
        mean = self.param("mean", zeros, (self.features,))
        var = self.param("var", ones, (self.features,))
        ph, pw = self.padding
        y = jax.lax.conv_general_dilated(
            x, kernel, (self.stride, self.stride), ((ph, ph), (pw, pw)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision)
        y = (y - mean) * (scale * jax.lax.rsqrt(var + _BN_EPS)) + bias
        return nn.relu(y)


def _avg_pool(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x: jax.Array, stride: int = 2, pad: int = 0) -> jax.Array:
    return nn.max_pool(x, (3, 3), (stride, stride), ((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv(64, name="branch1x1")(x)
        b5 = BasicConv(48, name="branch5x5_1")(x)
        b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = BasicConv(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = BasicConv(64, name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1 = BasicConv(192, name="branch1x1")(x)
        b7 = BasicConv(c7, name="branch7x7_1")(x)
        b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv(c7, name="branch7x7dbl_1")(x)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv(192, name="branch3x3_1")(x)
        b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv(192, name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool) and Mixed_7c (``max_pool=True``, the TF graph's quirk)."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv(320, name="branch1x1")(x)
        b3 = BasicConv(384, name="branch3x3_1")(x)
        b3 = jnp.concatenate([
            BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
            BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = BasicConv(448, name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([
            BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
            BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        pooled = _max_pool(x, stride=1, pad=1) if self.max_pool else _avg_pool(x)
        bp = BasicConv(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """Preprocessed ``[N, 299, 299, 3]`` images -> pool3 features ``[N, 2048]``."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool(x)
        x = BasicConv(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                         ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


def _expected_torch_shapes() -> dict[str, tuple[int, ...]]:
    shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                            jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))["params"]
    expected = {}
    for name, shape in weights_lib.flatten(
            jax.tree.map(lambda s: np.empty(s.shape, np.uint8), shapes)).items():
        prefix, leaf = name.rsplit(".", 1)
        if leaf == "kernel":
            kh, kw, cin, cout = shape.shape
            expected[f"{prefix}.conv.weight"] = (cout, cin, kh, kw)
            for bn in ("weight", "bias", "running_mean", "running_var"):
                expected[f"{prefix}.bn.{bn}"] = (cout,)
    return expected


def params_from_state_dict(state_dict: dict[str, np.ndarray],
                           source: str = "state dict") -> dict:
    """pytorch-fid / torchvision Inception3 state-dict arrays -> :class:`InceptionV3` params
    (``fc.*``, ``AuxLogits.*`` and ``num_batches_tracked`` are ignored)."""
    expected = _expected_torch_shapes()
    weights_lib.expect_keys(state_dict, expected, source, "FID Inception weights",
                            HOW_TO_GET_INCEPTION)
    params: dict = {}
    for key in expected:
        if not key.endswith(".conv.weight"):
            continue
        prefix = key[: -len(".conv.weight")]
        node = params
        for part in prefix.split("."):
            node = node.setdefault(part, {})
        f32 = {k: np.asarray(state_dict[f"{prefix}.{k}"], np.float32)
               for k in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                         "bn.running_var")}
        node.update(kernel=f32["conv.weight"].transpose(2, 3, 1, 0), scale=f32["bn.weight"],
                    bias=f32["bn.bias"], mean=f32["bn.running_mean"], var=f32["bn.running_var"])
    return params


def load_inception(path: str | os.PathLike | None = None) -> dict:
    """:class:`InceptionV3` params from ``path`` or ``$STYLEGAN_JAX_INCEPTION``."""
    path = weights_lib.resolve_path(path, INCEPTION_ENV, "FID Inception weights",
                                    HOW_TO_GET_INCEPTION)
    state_dict = weights_lib.read_weights(path, "FID Inception weights", HOW_TO_GET_INCEPTION)
    return params_from_state_dict(state_dict, str(path))


class InceptionFeatures:
    """The FID feature extractor: ``apply(params, images)`` maps uint8-range NHWC images of any
    size to pool3 features ``[N, 2048]`` (float32) with the given preprocessing ``mode``.
    ``params`` travel as a jit argument so that compiled programs do not embed the weights."""

    dim = 2048

    def __init__(self, params: dict, mode: str = "nvidia"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.params, self.mode = params, mode

    def apply(self, params: dict, images: jax.Array) -> jax.Array:
        return InceptionV3().apply({"params": params}, preprocess(images, self.mode))
