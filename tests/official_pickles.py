"""Official-format StyleGAN pickles built in the tests, from our own networks' variables.

The conversion here is written independently of ``stylegan_jax.official``: it walks the
official graph code (``training/networks_stylegan.py``: ``G_mapping``, ``G_synthesis``,
``D_basic``) scope by scope, in the order the official code creates its variables, and writes
the exact ``dnnlib.tflib.network.Network.__getstate__`` layout (version 3, or 2 without
``components``) through a stand-in class whose import path is ``dnnlib.tflib.network.Network``.
``numpy_style='old'`` makes the arrays name ``numpy.core.multiarray`` as 2019 pickles do.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import sys
import types

import numpy as np

BUILD_MODULE_SRC = "raise SystemExit('build_module_src must never run')\n"


class Network:
    """Pickles as the official ``Network.__getstate__`` dict."""

    def __init__(self, state: dict):
        self.state = state

    def __getstate__(self) -> dict:
        return self.state

    def __setstate__(self, state: dict) -> None:
        self.state = state


Network.__module__ = "dnnlib.tflib.network"


def network(name: str, func: str, static_kwargs: dict, variables: list, components=None,
            version: int = 3) -> Network:
    state = {"version": version, "name": name, "static_kwargs": dict(static_kwargs)}
    if version >= 3:
        state["components"] = dict(components or {})
    state.update(build_module_src=BUILD_MODULE_SRC, build_func_name=func,
                 variables=list(variables))
    return Network(state)


@contextlib.contextmanager
def _fake_modules(numpy_style: str):
    """Registers ``dnnlib.tflib.network`` (and, for old numpy names, a ``numpy.core.multiarray``
    whose reconstructors are named so) in ``sys.modules`` while pickling."""
    saved = {}
    fakes = {}
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        fakes[name] = types.ModuleType(name)
    fakes["dnnlib.tflib.network"].Network = Network
    if numpy_style == "old":
        old = types.ModuleType("numpy.core.multiarray")
        for fn in (_old_reconstruct, _old_scalar):
            setattr(old, fn.__qualname__, fn)
        fakes["numpy.core.multiarray"] = old
    for name, module in fakes.items():
        saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _old_reconstruct(*args):  # only its name is pickled
    raise AssertionError("never called")


def _old_scalar(*args):
    raise AssertionError("never called")


for _fn, _name in ((_old_reconstruct, "_reconstruct"), (_old_scalar, "scalar")):
    _fn.__module__, _fn.__qualname__, _fn.__name__ = "numpy.core.multiarray", _name, _name


class _OldNumpyPickler(pickle.Pickler):
    """Writes arrays and scalars with numpy 1.x's ``numpy.core.multiarray`` names."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            _, args, state = obj.__reduce__()
            return _old_reconstruct, args, state
        if isinstance(obj, np.generic):
            _, args = obj.__reduce__()
            return _old_scalar, args
        return NotImplemented


def dumps(obj, protocol: int = 4, numpy_style: str = "new") -> bytes:
    import io

    buffer = io.BytesIO()
    with _fake_modules(numpy_style):
        pickler = (_OldNumpyPickler if numpy_style == "old" else pickle.Pickler)(
            buffer, protocol=protocol)
        pickler.dump(obj)
    return buffer.getvalue()


def _np(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def _nchw(x) -> np.ndarray:
    return _np(x).transpose(0, 3, 1, 2)


def official_generator(kwargs: dict, variables: dict, noise, *, name: str = "G",
                       version: int = 3, lod: float = 0.0) -> Network:
    """G_style with components G_synthesis and G_mapping, variables taken from our
    Generator's ``{'params', 'stats'}`` and per-layer noise ``[1, h, w, 1]``."""
    p = variables["params"]
    g = dict(kwargs)
    label_size = g.get("label_size", 0)
    use_noise, use_styles = g.get("use_noise", True), g.get("use_styles", True)
    res_log2 = int(math.log2(g["resolution"]))
    num_layers = 2 * res_log2 - 2

    synth = [("lod", np.float32(lod))]
    if use_noise:
        synth += [(f"noise{i}", _nchw(noise[i])) for i in range(num_layers)]

    def layer(scope: str, ours: dict, weight_key: tuple | None):
        if weight_key is not None:
            node = ours
            for k in weight_key:
                node = node[k]
            synth.append((f"{scope}/weight", _np(node)))
        if use_noise:
            synth.append((f"{scope}/Noise/weight", _np(ours["Noise"]["strength"])))
        synth.append((f"{scope}/bias", _np(ours["Bias"]["bias"])))
        if use_styles:
            synth.append((f"{scope}/StyleMod/weight", _np(ours["StyleMod"]["affine"]["kernel"])))
            synth.append((f"{scope}/StyleMod/bias",
                          _np(ours["StyleMod"]["affine"]["bias"]["bias"])))

    s = p["synthesis"]
    if g.get("const_input_layer", True):
        synth.append(("4x4/Const/const", _nchw(s["4x4_Const"]["const"])))
        layer("4x4/Const", s["4x4_Const"], None)
    else:
        layer("4x4/Dense", s["4x4_Dense"], ("Dense", "kernel"))
    layer("4x4/Conv", s["4x4_Conv"], ("Conv", "kernel"))
    for res in range(3, res_log2 + 1):
        r = 2**res
        layer(f"{r}x{r}/Conv0_up", s[f"{r}x{r}_Conv0_up"], ("Conv", "kernel"))
        layer(f"{r}x{r}/Conv1", s[f"{r}x{r}_Conv1"], ("Conv", "kernel"))
    for res in range(2, res_log2 + 1):
        ours = s[f"ToRGB_{2**res}x{2**res}"]
        synth += [(f"ToRGB_lod{res_log2 - res}/weight", _np(ours["Conv"]["kernel"])),
                  (f"ToRGB_lod{res_log2 - res}/bias", _np(ours["Bias"]["bias"]))]

    m = p["mapping"]
    mapping = [("LabelConcat/weight", _np(m["LabelConcat"]))] if label_size else []
    for i in range(g.get("mapping_layers", 8)):
        mapping += [(f"Dense{i}/weight", _np(m[f"Dense{i}"]["kernel"])),
                    (f"Dense{i}/bias", _np(m[f"Dense{i}"]["bias"]["bias"]))]

    sub = {k: v for k, v in g.items()
           if k not in ("truncation_psi", "truncation_cutoff", "dlatent_avg_beta",
                        "style_mixing_prob")}
    num_styles = num_layers if use_styles else 1
    components = {
        "synthesis": network("G_synthesis", "G_synthesis", sub, synth, version=version),
        "mapping": network("G_mapping", "G_mapping", {"dlatent_broadcast": num_styles, **sub},
                           mapping, version=version),
    }
    own = [("lod", np.float32(lod)), ("dlatent_avg", _np(variables["stats"]["w_avg"]))]
    return network(name, "G_style", g, own, components, version=version)


def official_discriminator(kwargs: dict, variables: dict, *, version: int = 3,
                           func: str = "D_basic", name: str = "D") -> Network:
    """D_basic (or D_paper, whose fused variables have the same names) with variables taken
    from our Discriminator's ``{'params'}``."""
    p = variables["params"]
    res_log2 = int(math.log2(kwargs["resolution"]))
    out = [("lod", np.float32(0.0))]

    def conv(scope: str, ours: dict):
        out.extend([(f"{scope}/weight", _np(ours["Conv"]["kernel"])),
                    (f"{scope}/bias", _np(ours["Bias"]["bias"]))])

    # The linear structure's creation order: fromrgb(R), then per block Conv0, Conv1_down and
    # the next fromrgb, then the 4x4 block.
    conv("FromRGB_lod0", p[f"FromRGB_{2**res_log2}x{2**res_log2}"])
    for res in range(res_log2, 2, -1):
        r = 2**res
        conv(f"{r}x{r}/Conv0", p[f"{r}x{r}_Conv0"])
        conv(f"{r}x{r}/Conv1_down", p[f"{r}x{r}_Conv1_down"])
        conv(f"FromRGB_lod{res_log2 - res + 1}", p[f"FromRGB_{r // 2}x{r // 2}"])
    conv("4x4/Conv", p["4x4_Conv"])
    for i in (0, 1):
        ours = p[f"4x4_Dense{i}"]
        out.extend([(f"4x4/Dense{i}/weight", _np(ours["kernel"])),
                    (f"4x4/Dense{i}/bias", _np(ours["bias"]["bias"]))])
    return network(name, func, kwargs, out, version=version)
