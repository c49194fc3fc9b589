"""No code runs from a pickle: the restricted unpickler, and weight files carrying a payload
in every format and every pickle position (the payload's side effect must never happen).

The torch files are written here without torch, opcode for opcode as ``torch.save`` writes
them (protocol 2, ``torch._utils._rebuild_tensor_v2`` globals, storages as persistent ids), so
a clean file is checked to load before each poisoned variant is checked to be refused.
"""

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from stylegan_jax import safe_pickle
from stylegan_jax.metrics import weights


class Global:
    """Pickles as a reference to ``module.name`` without importing it (torch is not needed)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self):  # pickle insists that a reduce function is callable
        raise AssertionError("never called")


class _Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[Global] = lambda self, obj: self.write(
        pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def __init__(self, file, storages):
        super().__init__(file, protocol=2)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", Global("torch", "FloatStorage"), obj.key, "cpu", obj.data.size)
        return None


class Storage:
    def __init__(self, key, data):
        self.key, self.data = key, np.ascontiguousarray(data, np.float32).ravel()


class Tensor:
    """A contiguous float32 tensor as torch pickles it."""

    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        strides = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, 0, self.shape, strides, False, OrderedDict()))


class Payload:
    """Unpickling this creates ``marker``: the side effect that must never happen."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def dumps(obj):
    buf = io.BytesIO()
    _Pickler(buf, {}).dump(obj)
    return buf.getvalue()


ARRAY = np.arange(6, dtype=np.float32).reshape(2, 3)


def state_dict(payload=None):
    tree = {"conv.weight": Tensor(Storage("0", ARRAY), (2, 3))}
    if payload is not None:
        tree["evil"] = payload
    return tree


LEGACY_PARTS = ("magic", "protocol", "sys_info", "main", "keys")


def legacy_torch(path, payload=None, where=None):
    """``torch.save(..., _use_new_zipfile_serialization=False)``: five pickles, then each
    storage as an int64 element count and its bytes; ``payload`` replaces or joins part
    ``where``."""
    parts = {"magic": 0x1950A86A20F9469CFC6C, "protocol": 1001,
             "sys_info": dict(protocol_version=1001, little_endian=True,
                              type_sizes=dict(short=2, int=4, long=4)),
             "main": state_dict(), "keys": ["0"]}
    if where == "main":
        parts["main"] = state_dict(payload)
    elif where == "keys":
        parts["keys"] = ["0", payload]
    elif where is not None:
        parts[where] = payload
    data = b"".join(dumps(parts[k]) for k in LEGACY_PARTS)
    path.write_bytes(data + np.int64(ARRAY.size).tobytes() + ARRAY.tobytes())
    return path


def zip_torch(path, payload=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", dumps(state_dict(payload)))
        z.writestr("archive/data/0", ARRAY.tobytes())
        z.writestr("archive/version", "3\n")
    return path


def numpy_ckpt(path, payload=None):
    tree = {"layer": {"kernel": ARRAY}}
    if payload is not None:
        tree["layer"]["bias"] = payload
    path.write_bytes(pickle.dumps(tree, protocol=4))
    return path


def npz(path, payload=None):
    arrays = {"layer.kernel": ARRAY}
    if payload is not None:
        arrays["layer.bias"] = np.array([payload, 1], dtype=object)
    np.savez(path, **arrays)
    return path


CLEAN = {"conv.weight": ARRAY}
FORMATS = {
    **{f"legacy_{where}": (lambda p, x, w=where: legacy_torch(p / "w.pth", x, w if x else None),
                           CLEAN) for where in LEGACY_PARTS},
    "zip_torch": (lambda p, x: zip_torch(p / "w.pth", x), CLEAN),
    "numpy_ckpt": (lambda p, x: numpy_ckpt(p / "vgg16.ckpt", x), {"layer.kernel": ARRAY}),
    "npz": (lambda p, x: npz(p / "w.npz", x), {"layer.kernel": ARRAY}),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_clean_file_loads(tmp_path, fmt):
    write, expected = FORMATS[fmt]
    arrays = weights.read_weights(write(tmp_path, None), "test weights", "")
    assert arrays.keys() == expected.keys()
    for k, v in expected.items():
        np.testing.assert_array_equal(arrays[k], v)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("suffix", [None, ".pth", ".ckpt", ".npz", ".pkl"])
def test_payload_is_refused_and_never_runs(tmp_path, fmt, suffix):
    """Whatever the file is called (the format is sniffed, not taken from the suffix)."""
    marker = tmp_path / "pwned"
    path = FORMATS[fmt][0](tmp_path, Payload(marker))
    if suffix is not None:
        path = path.rename(path.with_name("weights" + suffix))
    with pytest.raises(weights.WeightsError) as e:
        weights.read_weights(path, "Test weights", "Get the real file.")
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "Get the real file." in message
    assert "exec" in message or "allow_pickle" in message  # names what was refused
    assert not marker.exists()


def test_legacy_payload_in_each_header_names_that_header(tmp_path):
    marker = tmp_path / "pwned"
    for where, what in [("protocol", "protocol version"), ("sys_info", "sys info"),
                        ("keys", "storage-key list"), ("main", "tensor pickle")]:
        path = legacy_torch(tmp_path / "w.pth", Payload(marker), where)
        refused = f"refusing (__builtin__|builtins).exec in a PyTorch {what}"
        with pytest.raises(weights.WeightsError, match=refused):
            weights.read_weights(path, "t", "")
    assert not marker.exists()


def test_tensor_outside_its_storage_is_refused(tmp_path):
    """A crafted shape/stride must not make as_strided read memory past the storage."""
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", dumps({"w": Tensor(Storage("0", ARRAY), (1000, 1000))}))
        z.writestr("archive/data/0", ARRAY.tobytes())
    with pytest.raises(weights.WeightsError, match="outside its storage"):
        weights.read_weights(path, "t", "")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_values_load_with_every_protocol(protocol):
    values = {"f32": np.arange(12, dtype=np.float32).reshape(3, 4),
              "f64t": np.arange(6.0).reshape(2, 3).T, "u8": np.arange(5, dtype=np.uint8),
              "bool": np.array([True, False]), "i64": np.int64(-7), "f32s": np.float32(0.5),
              "dtype": np.dtype("float16"), "nested": [(1, 2.5, "x", b"y", None)]}
    out = safe_pickle.loads(pickle.dumps(values, protocol=protocol), source="mem")
    for k in ("f32", "f64t", "u8", "bool"):
        np.testing.assert_array_equal(out[k], values[k])
        assert out[k].dtype == values[k].dtype
    assert out["i64"] == -7 and type(out["i64"]) is np.int64
    assert out["f32s"] == 0.5 and type(out["f32s"]) is np.float32
    assert out["dtype"] == np.float16 and out["nested"] == values["nested"]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_is_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"

    class System:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    data = pickle.dumps(System(), protocol=protocol)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil\.pkl: refusing "
                                                            r"(os|posix|nt)\.system"):
        safe_pickle.loads(data, source="evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("where", ["sys_info", "main"])
def test_metric_weight_loaders_refuse_payloads(tmp_path, monkeypatch, where):
    """--inception_weights / --lpips_weights and their environment variables."""
    from stylegan_jax.metrics import inception, lpips

    marker = tmp_path / "pwned"
    path = legacy_torch(tmp_path / "w.pth", Payload(marker), where)
    for load, env in ((inception.load_inception, inception.INCEPTION_ENV),
                      (lpips.load_lpips, lpips.LPIPS_ENV)):
        with pytest.raises(weights.WeightsError, match="refusing"):
            load(path)
        monkeypatch.setenv(env, str(path))
        with pytest.raises(weights.WeightsError, match="refusing"):
            load()
    assert not marker.exists()
