"""Test-wide setup, done before JAX initialises its backend: 8 simulated CPU devices, and a
persistent compilation cache shared by the test process and the training subprocesses it
starts (the loop tests compile the same programs several times)."""

import os
import tempfile

os.environ["JAX_PLATFORMS"] = "cpu"
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "stylegan-jax-test-compile-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402  (after the environment above is set)
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402
from tiny_digits import TINY_G, tiny_digits_config  # noqa: E402

from stylegan_jax.data.prepare import prepare_dataset  # noqa: E402
from stylegan_jax.networks import Generator  # noqa: E402

# Tests that need these fixtures run a reference in PyTorch: slow (see pytest_collection_...).
SLOW_FIXTURES = ("torch_refs",)


def pytest_collection_modifyitems(items):
    """Marks every test that compares against PyTorch (uses ``torch_refs``) as ``slow``;
    training runs and subprocess tests carry ``pytestmark = pytest.mark.slow`` themselves."""
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """The bundled digits prepared once per session (``digits/32``); tests only read it."""
    root = tmp_path_factory.mktemp("digits")
    prepare_dataset("digits", root)
    return root


@pytest.fixture
def tiny_config(digits_dir):
    """A fresh tiny digits training config (``tests/tiny_digits.py``) on the session's digits."""
    return tiny_digits_config(digits_dir)


@pytest.fixture(scope="session")
def tiny_generator():
    """An 8x8 Generator with the tiny widths of ``TINY_G`` and its initial variables."""
    g = Generator(resolution=8, **TINY_G)
    return g, g.init(jax.random.key(0), jnp.zeros((1, g.latent_size)))


class PixelFeatures:
    """A cheap stand-in for the Inception network in FID tests: per-channel means and three
    pixels of the centre column, on uint8 images scaled by ``params['scale']``."""

    dim = 12
    params = {"scale": jnp.float32(1 / 255)}

    def apply(self, params, images):
        x = images.astype(jnp.float32) * params["scale"]
        h, w = x.shape[1:3]
        column = x[:, h // 4:h // 4 + 3, w // 2]
        return jnp.concatenate([x.mean((1, 2)), column.reshape(x.shape[0], -1)], -1)


@pytest.fixture
def pixel_features():
    return PixelFeatures()
