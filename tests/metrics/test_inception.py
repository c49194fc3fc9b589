"""The Flax FID Inception vs pytorch-fid's (random weights, no download); resize modes;
weight files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.metrics import inception, weights


def random_inception(torch, torchvision):
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                          init_weights=False)
    g = torch.Generator().manual_seed(0)
    for m in net.modules():  # He init keeps activations O(1); non-trivial batch norm
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data.normal_(0, (2 / fan_in) ** 0.5, generator=g)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return net.eval()


def test_pool3_matches_pytorch_fid(torch_refs, tmp_path):
    torch, torchvision, pfi, _ = torch_refs
    net = random_inception(torch, torchvision)
    state_dict = net.state_dict()
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict  # its only network access
    ref_net = pfi.InceptionV3(output_blocks=[3]).eval()
    images = np.random.default_rng(0).integers(0, 256, (2, 80, 80, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = ref_net(x)[0][:, :, 0, 0].numpy()
        pooled = {}
        net.avgpool.register_forward_hook(lambda m, i, o: pooled.update(out=o))
        # Negative control: torchvision's own forward on the same input and weights.
        net(torch.nn.functional.interpolate(x, (299, 299), mode="bilinear",
                                            align_corners=False) * 2 - 1)
        plain = pooled["out"][:, :, 0, 0].numpy()

    path = tmp_path / inception.INCEPTION_FILE
    torch.save(state_dict, path)
    extractor = inception.InceptionFeatures(inception.load_inception(path), "pytorch_fid")
    ours = np.asarray(jax.jit(extractor.apply)(extractor.params, jnp.asarray(images)))
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, atol=1e-4 * scale, rtol=0)
    # The FID quirks (pool counts, Mixed_7c max pool) matter: torchvision's forward differs.
    assert np.abs(plain - ref).max() > 1e-2 * scale


@pytest.mark.parametrize("size", [32, 128, 299, 512, 97])
def test_half_pixel_resize_matches_torch(torch_refs, size):
    torch = torch_refs[0]
    x = np.random.default_rng(size).uniform(0, 255, (2, size, size + 3, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), (299, 299), mode="bilinear",
        align_corners=False).permute(0, 2, 3, 1).numpy()
    ours = inception.resize_bilinear(jnp.asarray(x), 299, half_pixel=True)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-3)  # float32 rounding on 0..255


def tf1_legacy_resize(x, size):
    """TF1 ResizeBilinear(align_corners=False, half_pixel_centers=False) as in TF's
    resize_bilinear_op.cc: float32 ``in = out * (in_size / out_size)``, upper = ceil(in)."""
    def along(a, axis):
        n = a.shape[axis]
        src = np.arange(size, dtype=np.float32) * (np.float32(n) / np.float32(size))
        lo = np.floor(src).astype(int)
        hi = np.minimum(np.ceil(src).astype(int), n - 1)
        shape = [1] * a.ndim
        shape[axis] = size
        frac = (src - lo).reshape(shape)
        return np.take(a, lo, axis) * (1 - frac) + np.take(a, hi, axis) * frac
    return along(along(x.astype(np.float64), 1), 2)


@pytest.mark.parametrize("size", [32, 256, 299, 1024])
def test_nvidia_mode_is_tf1_legacy_resize_and_128_scaling(size):
    images = np.random.default_rng(size).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    expected = (tf1_legacy_resize(images, 299) - 128) / 128
    ours = inception.preprocess(jnp.asarray(images), "nvidia")
    np.testing.assert_allclose(np.asarray(ours), expected, atol=2e-6)


def test_pytorch_fid_mode_scaling_and_grey():
    grey = np.full((1, 299, 299, 1), 255, np.uint8)
    out = np.asarray(inception.preprocess(jnp.asarray(grey), "pytorch_fid"))
    assert out.shape == (1, 299, 299, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        inception.preprocess(jnp.asarray(grey), "bicubic")


def test_torch_file_formats(torch_refs, tmp_path):
    torch = torch_refs[0]
    tensors = {"a.weight": torch.randn(3, 4).t(),  # non-contiguous
               "b.running_var": torch.rand(5, dtype=torch.float64),
               "b.num_batches_tracked": torch.tensor(7),
               "c": torch.nn.Parameter(torch.randn(2, 2, 3)[:, 1])}
    for zip_format in (True, False):
        path = tmp_path / f"w{zip_format}.pth"
        torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
        arrays = weights.read_weights(path, "test weights", "")
        assert set(arrays) == set(tensors)
        for k, v in tensors.items():
            np.testing.assert_array_equal(arrays[k], v.detach().numpy())
            assert arrays[k].dtype == v.detach().numpy().dtype
        npz = weights.convert_to_npz(path, tmp_path / f"w{zip_format}")
        np.testing.assert_array_equal(weights.read_weights(npz, "t", "")["a.weight"],
                                      arrays["a.weight"])


def test_missing_and_wrong_inception_files(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.INCEPTION_ENV, raising=False)
    with pytest.raises(weights.WeightsError, match="STYLEGAN_JAX_INCEPTION"):
        inception.load_inception()
    with pytest.raises(weights.WeightsError, match=inception.INCEPTION_FILE):
        inception.load_inception(tmp_path / "nope.pth")
    np.savez(tmp_path / "other.npz", **{"fc.weight": np.zeros((1008, 2048))})
    with pytest.raises(weights.WeightsError, match="lacks .* expected arrays.*pytorch-fid"):
        inception.load_inception(tmp_path / "other.npz")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(weights.WeightsError, match="cannot read"):
        inception.load_inception(tmp_path / "junk.pth")
