"""Image conventions (``stylegan_jax.images``) against the official formulas, for numpy and
JAX inputs, and the training reals' downsampler on a sharded batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from official import official_box

from stylegan_jax import images
from stylegan_jax.parallel import data_sharding, make_mesh


@pytest.mark.parametrize("xp", [np, jnp])
def test_uint8_conversions_follow_the_official_formulas(xp):
    # tflib.convert_images_to_uint8: x * 127.5 + 128, saturate_cast (clip, then truncate).
    x = xp.asarray([-1.5, -1.0, -0.003, 0.0, 0.999, 2.0], np.float32)
    np.testing.assert_array_equal(np.asarray(images.to_uint8(x)), [0, 0, 127, 128, 255, 255])
    assert images.to_uint8(x).dtype == np.uint8
    # drange_data -> drange_net: every uint8 value maps to 2 * v / 255 - 1 (float32).
    v = xp.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(images.from_uint8(v)),
                               np.arange(256) * 2 / 255 - 1, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(images.to_uint8(images.from_uint8(v))),
                                  np.arange(256))
    np.testing.assert_allclose(np.asarray(images.to_255(xp.asarray([-1.0, 0.0, 1.0]))),
                               [0, 127.5, 255])


def test_box_downsample_uint8_matches_dataset_tool():
    faces = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    for r in (64, 32, 8, 1):
        np.testing.assert_array_equal(images.box_downsample_uint8(faces, r),
                                      official_box(faces, r))
    np.testing.assert_array_equal(images.box_downsample_uint8(faces[0], 16),
                                  official_box(faces[0], 16))  # one HWC image
    with pytest.raises(ValueError, match="cannot box-downsample"):
        images.box_downsample_uint8(faces, 48)


@pytest.mark.parametrize("resolution", [64, 32, 8, 4])
def test_downsample_to_matches_official_levels_and_keeps_sharding(resolution):
    mesh = make_mesh()
    host = np.random.default_rng(resolution).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    batch = jax.device_put(host, data_sharding(mesh))
    out = jax.jit(images.downsample_to, static_argnums=1)(batch, resolution)
    assert out.shape == (16, resolution, resolution, 3) and out.dtype == jnp.float32
    assert out.sharding.is_equivalent_to(data_sharding(mesh), 4)
    expected = official_box(host, resolution).astype(np.float32) * (2 / 255) - 1
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-6)


def test_downsample_to_float_is_plain_box_average():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    expected = x.reshape(2, 4, 4, 4, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(images.downsample_to(jnp.asarray(x), 4)), expected,
                               atol=1e-6)
    with pytest.raises(ValueError, match="cannot box-downsample"):
        images.downsample_to(x, 6)
