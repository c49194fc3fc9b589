"""The training loop moves nothing from the device to the host between ticks (issue 12): its
minibatch path only enqueues transfers to the device and jitted steps.

JAX's ``transfer_guard_device_to_host`` is only enforced where a fetch is a real copy (GPU,
TPU); on the CPU backend device buffers are host memory and the guard lets every fetch through.
So the guard here is twofold: JAX's own guard (effective on accelerators) and, for the CPU
test machine, a wrapper around ``jax.Array``'s one host-value accessor (``_value``: behind
``np.asarray``, ``float``, ``int``, ``bool``, ``tolist``, ``jax.device_get``) that fails when
the main thread fetches inside the guarded scope. Background threads (an asynchronous
checkpoint save of the previous tick) are allowed.
"""

import contextlib
import threading

import jax
import jax.numpy as jnp
import pytest
from jax._src import array as jax_array

from stylegan_jax import training_loop
from stylegan_jax.checkpoint import Checkpointer

pytestmark = pytest.mark.slow  # a real training run


class DeviceToHostError(AssertionError):
    """The main thread fetched a device value inside the guarded scope."""


@pytest.fixture
def no_device_to_host(monkeypatch):
    """A context manager under which the main thread may not fetch any device value."""
    guarded = threading.local()
    fetch = jax_array.ArrayImpl._value

    def checked_value(self):
        if getattr(guarded, "on", False):
            raise DeviceToHostError(f"device-to-host transfer of {self.aval} in the "
                                    "training loop's minibatch path")
        return fetch.fget(self)

    monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(checked_value))

    @contextlib.contextmanager
    def scope():
        guarded.on = True
        try:
            with jax.transfer_guard_device_to_host("disallow_explicit"):
                yield
        finally:
            guarded.on = False

    return scope


def test_the_guard_catches_a_fetch(no_device_to_host):
    x = jnp.arange(4.0) + 1  # computed before the scope, fetched inside it
    for fetch in (float, lambda a: jax.device_get(a).tolist()):
        with no_device_to_host(), pytest.raises((DeviceToHostError, RuntimeError)):
            fetch(x.sum())
    assert float(x.sum()) == 10.0  # allowed again outside the scope


def test_minibatch_repeats_transfer_nothing_to_the_host(tiny_config, tmp_path, monkeypatch,
                                                        no_device_to_host):
    calls = {"repeats": 0, "phases": 0}

    def guarded(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            with no_device_to_host():
                return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(training_loop, "_minibatch_repeats",
                        guarded("repeats", training_loop._minibatch_repeats))
    monkeypatch.setattr(training_loop, "_enter_phase",
                        guarded("phases", training_loop._enter_phase))
    tiny_config.total_kimg = 0.256  # 16x16, fade to 32x32, 32x32: an optimizer reset included
    training_loop.train(tiny_config, tmp_path)
    assert calls["repeats"] == calls["phases"] == 8  # 16 iterations, 2 per repeat
    ckpt = Checkpointer(tmp_path)
    try:
        assert ckpt.latest_step() == 256
    finally:
        ckpt.close()
