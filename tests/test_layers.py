"""Layers against independent numpy/scipy references written from the official definitions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from stylegan_jax import layers as L  # noqa: N812

RNG = np.random.default_rng(0)


def np_conv_same(x, w):
    """Reference 'SAME' cross-correlation, NHWC x HWIO, by explicit sums over kernel taps."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, k - 1 - p), (p, k - 1 - p), (0, 0)))
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[3]))
    for a in range(k):
        for b in range(k):
            out += xp[:, a:a + h, b:b + wd, :] @ w[a, b]
    return out


def np_shifted_sum(w):
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def np_tf_conv2d_transpose_same_stride2(x, k4):
    """TF ``conv2d_transpose(x, k, [N,2H,2W,C], strides 2, 'SAME')`` modelled as the adjoint of
    the stride-2 SAME correlation with the 4x4 kernel (pad 1 before, 1 after): every input pixel
    (i, j) scatters ``x[i, j] @ k[a, b]`` to output pixel (2i + a - 1, 2j + b - 1)."""
    n, h, w, _ = x.shape
    out = np.zeros((n, 2 * h + 2, 2 * w + 2, k4.shape[3]))  # padded by 1 on each side
    for a in range(4):
        for b in range(4):
            out[:, a:a + 2 * h:2, b:b + 2 * w:2, :] += x @ k4[a, b]
    return out[:, 1:2 * h + 1, 1:2 * w + 1, :]


def np_nearest_up(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def np_avg_pool2(x):
    n, h, w, c = x.shape
    out = np.zeros((n, h // 2, w // 2, c))
    for i in range(h // 2):
        for j in range(w // 2):
            out[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2))
    return out


def test_equalized_scale_formula():
    assert L.equalized_scale(512, math.sqrt(2), 0.01) == pytest.approx(math.sqrt(2 / 512) * 0.01)
    assert L.equalized_scale(3 * 3 * 64, 1.0, 1.0) == pytest.approx(1 / 24)


@pytest.mark.parametrize("gain,lrmul", [(math.sqrt(2), 1.0), (1.0, 1.0), (math.sqrt(2), 0.01)])
def test_dense_equalized_lr(gain, lrmul):
    layer = L.Dense(64, gain=gain, lrmul=lrmul)
    x = RNG.normal(size=(5, 256)).astype(np.float32)
    params = layer.init(jax.random.key(0), x)["params"]
    kernel = np.asarray(params["kernel"])
    # stored weights are N(0, 1/lrmul); the bias starts at zero
    assert kernel.std() == pytest.approx(1 / lrmul, rel=0.05)
    assert abs(kernel.mean()) < 0.05 / lrmul
    assert not np.any(params["bias"]["bias"])
    bias = RNG.normal(size=64).astype(np.float32)
    params = {"kernel": params["kernel"], "bias": {"bias": jnp.asarray(bias)}}
    y = layer.apply({"params": params}, x)
    expected = x @ (kernel * gain / math.sqrt(256) * lrmul) + bias * lrmul
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_conv_equalized_lr_matches_numpy_correlation():
    layer = L.Conv2D(6, kernel_size=3)
    x = RNG.normal(size=(2, 8, 8, 5)).astype(np.float32)
    params = layer.init(jax.random.key(1), x)["params"]
    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (3, 3, 5, 6)
    expected = np_conv_same(x, kernel * math.sqrt(2) / math.sqrt(45))
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-4, atol=1e-5)


def scipy_blur(x: np.ndarray, op=ndimage.correlate) -> np.ndarray:
    """The [1,2,1] x [1,2,1] / 16 filter applied per image and channel by scipy, zero padded."""
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    return np.stack([np.stack([op(image[:, :, c], f, mode="constant")
                               for c in range(x.shape[-1])], -1) for image in x])


def test_blur_matches_scipy():
    x = RNG.normal(size=(2, 9, 7, 3))
    expected = scipy_blur(x)
    np.testing.assert_allclose(L.blur(jnp.asarray(x, jnp.float32)), expected, atol=1e-6)


def test_blur_gradient_is_the_adjoint_stencil():
    """The input gradient of the blur is the correlation with the flipped filter (scipy)."""
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.normal(size=(2, 8, 5, 3)), jnp.float32)
    g = rng.normal(size=(2, 8, 5, 3))
    expected = scipy_blur(g, ndimage.convolve)
    grad = jax.grad(lambda x: jnp.sum(L.blur(x) * g))(x)
    np.testing.assert_allclose(grad, expected, atol=1e-6)
    assert L.blur(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_upscale_and_downscale_match_numpy():
    x = RNG.normal(size=(2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(L.upscale2d(x), np_nearest_up(x))
    np.testing.assert_allclose(L.downscale2d(x), np_avg_pool2(x), atol=1e-6)
    np.testing.assert_allclose(L.downscale2d(L.upscale2d(x)), x, atol=1e-6)


def test_fused_upscale_conv_is_tf_transpose_conv_and_flipped_nearest_conv():
    x = RNG.normal(size=(2, 5, 4, 3))
    w = RNG.normal(size=(3, 3, 3, 4))
    fused = np.asarray(L.fused_upscale_conv(jnp.asarray(x), jnp.asarray(w)))
    np.testing.assert_allclose(fused, np_tf_conv2d_transpose_same_stride2(x, np_shifted_sum(w)),
                               rtol=1e-5, atol=1e-5)
    flipped = w[::-1, ::-1]
    np.testing.assert_allclose(fused, np_conv_same(np_nearest_up(x), flipped), rtol=1e-5,
                               atol=1e-5)


def test_fused_conv_downscale_is_conv_then_average():
    x = RNG.normal(size=(2, 8, 6, 3))
    w = RNG.normal(size=(3, 3, 3, 4))
    fused = L.fused_conv_downscale(jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_allclose(fused, np_avg_pool2(np_conv_same(x, w)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("resample", ["up", "down"])
def test_conv_layer_fused_equals_unfused(resample):
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    fused = L.Conv2D(4, resample=resample, fused=True)
    plain = L.Conv2D(4, resample=resample, fused=False)
    params = fused.init(jax.random.key(2), x)
    y_fused = fused.apply(params, x)
    if resample == "up":  # a fused up-conv equals the plain one with the flipped kernel
        params = jax.tree.map(lambda k: k[::-1, ::-1], params)
    np.testing.assert_allclose(y_fused, plain.apply(params, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_fused_impl_resampling_convs_match_the_official_ops(fused):
    x = RNG.normal(size=(2, 6, 4, 3)).astype(np.float32)
    up = L.Conv2D(5, resample="up", fused=fused)
    params = up.init(jax.random.key(3), x)
    w = np.asarray(params["params"]["kernel"]) * math.sqrt(2) / math.sqrt(27)
    expected = np_tf_conv2d_transpose_same_stride2(x, np_shifted_sum(w)) if fused else \
        np_conv_same(np_nearest_up(x), w)
    np.testing.assert_allclose(up.apply(params, x), expected, rtol=1e-4, atol=1e-5)
    down = L.Conv2D(5, resample="down", fused=fused)
    params = down.init(jax.random.key(4), x)
    w = np.asarray(params["params"]["kernel"]) * math.sqrt(2) / math.sqrt(27)
    np.testing.assert_allclose(down.apply(params, x), np_avg_pool2(np_conv_same(x, w)),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("resample", ["up", "down"])
def test_stated_gradients_equal_the_reference_ops(resample, fused):
    """First and second derivatives (as R1 takes them) agree with the literal official ops."""
    x = jnp.asarray(RNG.normal(size=(2, 4, 6, 3)), jnp.float32)
    layers = {impl: L.Conv2D(4, resample=resample, fused=fused, impl=impl)
              for impl in ("fused", "reference")}
    params = layers["reference"].init(jax.random.key(5), x)

    def loss(p, img, impl):
        return jnp.sum(jnp.sin(layers[impl].apply(p, img)))

    def r1(p, impl):
        return jnp.sum(jax.grad(loss, argnums=1)(p, x, impl) ** 2)

    for fn in (lambda p, impl: loss(p, x, impl), r1):
        grads = {impl: jax.grad(fn)(params, impl) for impl in layers}
        reference = grads["reference"]["params"]["kernel"]
        # float32 sums of terms up to ~100x an entry: absolute tolerance on the array's scale
        np.testing.assert_allclose(grads["fused"]["params"]["kernel"], reference, rtol=1e-4,
                                   atol=1e-6 * float(jnp.abs(reference).max()))


def test_pixel_and_instance_norm_match_numpy():
    x = RNG.normal(size=(3, 5, 4, 6)) * 3 + 1
    pn = x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(L.pixel_norm(jnp.asarray(x, jnp.float32)), pn, rtol=1e-5)
    centered = x - x.mean(axis=(1, 2), keepdims=True)
    inorm = centered / np.sqrt((centered**2).mean(axis=(1, 2), keepdims=True) + 1e-8)
    np.testing.assert_allclose(L.instance_norm(jnp.asarray(x, jnp.float32)), inorm, rtol=1e-4,
                               atol=1e-5)


def test_one_pass_instance_norm_keeps_precision_when_the_mean_dominates():
    x = (RNG.normal(size=(2, 8, 8, 3)) + 300.0).astype(np.float32)  # mean 300, std 1
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=(1, 2), keepdims=True)
    expected = centered / np.sqrt((centered**2).mean(axis=(1, 2), keepdims=True) + 1e-8)
    np.testing.assert_allclose(L.instance_norm(jnp.asarray(x)), expected, rtol=1e-4, atol=1e-4)


def test_style_mod_with_instance_norm_stats_equals_norm_then_style():
    x = (RNG.normal(size=(2, 5, 5, 4)) * 2 + 0.5).astype(np.float32)
    w = RNG.normal(size=(2, 8)).astype(np.float32)
    layer = L.StyleMod()
    params = layer.init(jax.random.key(0), x, w)["params"]
    b = RNG.normal(size=8).astype(np.float32)
    params = {"affine": {"kernel": params["affine"]["kernel"], "bias": {"bias": b}}}
    style = w @ (np.asarray(params["affine"]["kernel"]) / math.sqrt(8)) + b
    centered = x - x.mean(axis=(1, 2), keepdims=True)
    normed = centered / np.sqrt((centered**2).mean(axis=(1, 2), keepdims=True) + 1e-8)
    expected = normed * (style[:, None, None, :4] + 1) + style[:, None, None, 4:]
    got = layer.apply({"params": params}, x, w, L.instance_norm_stats(jnp.asarray(x)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def np_minibatch_stddev_official(x_nhwc, group_size=4, num_new_features=1):
    """Direct transcription of the official NCHW ``minibatch_stddev_layer`` in numpy."""
    x = x_nhwc.transpose(0, 3, 1, 2)
    n, c, h, w = x.shape
    g = min(group_size, n)
    f = num_new_features
    y = x.reshape(g, -1, f, c // f, h, w)
    y = y - y.mean(axis=0)
    y = (y**2).mean(axis=0)
    y = np.sqrt(y + 1e-8)
    y = y.mean(axis=(2, 3, 4))  # [M, F]
    y = y.reshape(-1, f, 1, 1)
    y = np.tile(y, (g, 1, h, w))
    return np.concatenate([x, y], axis=1).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("n,group,features", [(8, 4, 1), (4, 4, 1), (12, 4, 2), (3, 4, 1)])
def test_minibatch_stddev_matches_official(n, group, features):
    x = RNG.normal(size=(n, 4, 4, 6))
    got = L.minibatch_stddev(jnp.asarray(x, jnp.float32), group, features)
    np.testing.assert_allclose(got, np_minibatch_stddev_official(x, group, features), rtol=1e-5,
                               atol=1e-6)


def test_minibatch_stddev_strided_grouping_and_shards():
    x = RNG.normal(size=(16, 2, 2, 3))
    got = np.asarray(L.minibatch_stddev(jnp.asarray(x, jnp.float32), 4, 1, num_shards=2))
    # each half of the batch (one device's share) is grouped on its own, as per-GPU in TF
    for half in (slice(0, 8), slice(8, 16)):
        np.testing.assert_allclose(got[half], np_minibatch_stddev_official(x[half]), rtol=1e-5)
    # strided grouping: within a shard of 8 with groups of 4, samples 0, 2, 4, 6 share a value
    stat = got[:8, 0, 0, -1]
    assert np.allclose(stat[0::2], stat[0]) and np.allclose(stat[1::2], stat[1])
    assert not np.isclose(stat[0], stat[1])
    with pytest.raises(ValueError, match="divisible"):
        L.minibatch_stddev(jnp.zeros((6, 2, 2, 3)), 4)


def test_noise_input_strength_and_explicit_noise():
    layer = L.NoiseInput()
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    params = layer.init(jax.random.key(0), x)
    assert not np.any(params["params"]["strength"])  # init 0
    strength = np.array([0.5, -1.0, 2.0], np.float32)
    noise = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    y = layer.apply({"params": {"strength": strength}}, x, noise)
    np.testing.assert_allclose(y, x + noise * strength, rtol=1e-6)
    a = layer.apply({"params": {"strength": strength}}, x, rngs={"noise": jax.random.key(1)})
    b = layer.apply({"params": {"strength": strength}}, x, rngs={"noise": jax.random.key(2)})
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="rngs"):
        layer.apply({"params": {"strength": strength}}, x)
    with pytest.raises(ValueError, match="shape"):
        layer.apply({"params": {"strength": strength}}, x, noise[:, :2])


def test_style_mod_formula():
    layer = L.StyleMod()
    x = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    w = RNG.normal(size=(2, 8)).astype(np.float32)
    params = layer.init(jax.random.key(0), x, w)["params"]
    kernel = np.asarray(params["affine"]["kernel"])
    b = RNG.normal(size=8).astype(np.float32)
    params = {"affine": {"kernel": kernel, "bias": {"bias": b}}}
    style = w @ (kernel / math.sqrt(8)) + b  # gain 1, wscale
    expected = x * (style[:, None, None, :4] + 1) + style[:, None, None, 4:]
    np.testing.assert_allclose(layer.apply({"params": params}, x, w), expected, rtol=1e-5,
                               atol=1e-5)


def test_feature_widths_follow_official_nf():
    widths = [L.num_features(r - 1, 8192, 1.0, 512) for r in range(2, 11)]
    assert widths == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    with pytest.raises(ValueError, match="power of two"):
        L.resolution_log2(48)
