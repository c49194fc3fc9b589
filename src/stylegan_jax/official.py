"""NVIDIA's original StyleGAN network pickles (``karras2019stylegan-*.pkl``), read without
TensorFlow and without running anything from the file.

An official network pickle is ``pickle.dump((G, D, Gs))`` of three
``dnnlib.tflib.network.Network`` objects. Each pickles as its ``__getstate__`` dict (official
``dnnlib/tflib/network.py``, state version 2 or 3): ``name``, ``static_kwargs`` (the build
kwargs), ``components`` (sub-networks: G's ``mapping`` and ``synthesis``, themselves
Networks), ``build_module_src`` (the network module's source, which the official loader
``exec``\\ s and we ignore), ``build_func_name`` (``G_style``, ``D_basic``) and ``variables``
(``(local name, numpy array)`` pairs of the network's own variables, sub-networks excluded).

:func:`load_pickle` reads such a file with the project's restricted unpickler
(:mod:`stylegan_jax.safe_pickle`), in which the Network class is a stand-in that only keeps its
state dict, and converts the variables to our modules: names (``G_synthesis/8x8/Conv0_up/
weight`` -> ``params/synthesis/8x8_Conv0_up/Conv/kernel``), the learned constant and the noise
inputs from NCHW to NHWC, every shape checked. Conv (HWIO) and dense (``[in, out]``) weights
are stored exactly as our equalized-lr layers store them (official ``get_weight`` with
``use_wscale``: raw N(0, 1/lrmul) values scaled at run time), so they are copied unchanged.

What the build kwargs mean in our config is :mod:`stylegan_jax.official_config`; starting a
training run from a pickle (``stylegan-jax import``) is :func:`stylegan_jax.runs.import_run`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import safe_pickle
from stylegan_jax.layers import downscale2d
from stylegan_jax.models import build_networks
from stylegan_jax.official_config import (
    D_BASIC_DEFAULTS,
    D_PAPER_DEFAULTS,
    G_DEFAULTS,
    G_MAPPING_DEFAULTS,
    G_STYLE_DEFAULTS,
    G_SYNTHESIS_DEFAULTS,
    KNOWN_OTHERS,
    KWARG_CHECKS,
    config_from_kwargs,
)


class OfficialPickleError(ValueError):
    """A file is not an official StyleGAN network pickle this reader supports."""


class NetworkState:
    """Stand-in for ``dnnlib.tflib.network.Network``: keeps the pickled state dict, builds and
    runs nothing (the official ``__setstate__`` execs ``build_module_src``)."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = {
    **safe_pickle.NUMPY_GLOBALS,
    ("dnnlib.tflib.network", "Network"): NetworkState,
}

@dataclasses.dataclass(frozen=True)
class Network:
    """One pickled Network, as plain data: ``variables`` holds its own variables and, as the
    official ``Network.vars`` names them, its components' (``G_mapping/Dense0/weight``)."""

    name: str
    build_func_name: str
    static_kwargs: dict
    components: dict[str, Network]
    variables: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class OfficialNetworks:
    """An official ``(G, D, Gs)`` pickle converted to our networks.

    ``config``: our config (``paper_config`` at the pickle's resolution with its kwargs);
    ``G``, ``Gs``: Flax variables ``{'params', 'stats': {'w_avg'}}`` of our ``Generator`` (Gs
    is the EMA generator every official figure and metric uses); ``D``: ``{'params'}`` of our
    ``Discriminator``; ``noise``: Gs's stored noise inputs as per-layer ``[1, h, w, 1]``
    arrays (``None`` without noise inputs); ``lod``: G's level of detail when it was saved (0 =
    full resolution, the case of every released network).
    """

    path: Path
    config: ml_collections.ConfigDict
    G: dict
    D: dict
    Gs: dict
    noise: list[np.ndarray] | None
    lod: float


def _fail(path: os.PathLike | str, message: str) -> OfficialPickleError:
    return OfficialPickleError(f"{os.fspath(path)}: {message}")


def read_pickle(path: str | os.PathLike) -> Any:
    """The unpickled object of ``path`` with official Networks as :class:`Network` data;
    refuses any global but numpy's reconstructors and the Network class."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such network pickle")
    with open(path, "rb") as f:
        # latin1, as the official misc.load_pkl: Python 2 numpy arrays hold their bytes in str.
        obj = safe_pickle.load(f, ALLOWED_GLOBALS, source=path,
                               what="StyleGAN network pickle", encoding="latin1")
    return _convert_tree(obj, path)


def _convert_tree(obj: Any, path: Path) -> Any:
    if isinstance(obj, NetworkState):
        return _network(obj.state, path)
    if isinstance(obj, tuple):
        return tuple(_convert_tree(o, path) for o in obj)
    return obj


def _network(state: Any, path: Path, where: str = "") -> Network:
    """Validates one ``Network.__getstate__`` dict (versions 2 and 3) into a :class:`Network`."""
    if not isinstance(state, dict):
        raise _fail(path, f"a network has no state dict (got {type(state).__name__})")
    what = "network " + "/".join(str(p) for p in (where, state.get("name", "?")) if p)
    if state.get("version") not in (2, 3):
        raise _fail(path, f"{what} has state version {state.get('version')!r}; "
                          "StyleGAN pickles have 2 or 3")
    missing = [k for k in ("name", "static_kwargs", "build_func_name", "variables")
               if k not in state]
    if missing:
        raise _fail(path, f"{what} lacks {missing} in its state")
    name, func = state["name"], state["build_func_name"]
    where = f"{where}/{name}" if where else str(name)
    if not isinstance(name, str) or not isinstance(func, str):
        raise _fail(path, f"network {where}: name and build_func_name must be strings")
    kwargs = state["static_kwargs"]
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise _fail(path, f"network {where}: static_kwargs is not a dict of names")
    components = {}
    if not isinstance(state.get("components", {}), dict):
        raise _fail(path, f"network {where}: components is not a dict")
    for key, comp in state.get("components", {}).items():
        if not isinstance(comp, NetworkState):
            raise _fail(path, f"network {where}: component {key!r} is not a Network")
        components[key] = _network(comp.state, path, where)
    variables: dict[str, np.ndarray] = {}
    try:
        pairs = list(state["variables"])
        for var_name, value in pairs:
            if not isinstance(var_name, str):
                raise TypeError(f"variable name {var_name!r} is not a string")
            if var_name in variables:
                raise TypeError(f"variable {var_name!r} appears twice")
            value = np.asarray(value)
            if value.dtype.kind != "f":
                raise TypeError(f"variable {var_name!r} has dtype {value.dtype}, not float")
            variables[var_name] = value
    except (TypeError, ValueError) as e:
        raise _fail(path, f"network {where}: bad variables ({e})") from None
    for comp in components.values():
        for var_name, value in comp.variables.items():
            full = f"{comp.name}/{var_name}"
            if full in variables:
                raise _fail(path, f"network {where}: variable {full!r} appears twice")
            variables[full] = value
    return Network(name, func, dict(kwargs), components, variables)


# ---- build kwargs, checked against what our networks implement (official_config) ---------
# ---- build kwargs, checked against what our networks implement (official_config) ---------
def _kwargs(net: Network, defaults: dict, path: Path, role: str) -> dict:
    """The network's build kwargs over the official defaults; unknown ones refused by name."""
    unknown = sorted(set(net.static_kwargs) - set(defaults))
    if unknown:
        raise _fail(path, f"{role} ({net.build_func_name}) has build kwargs {unknown} that "
                          "this reader does not support")
    kwargs = {**defaults, **net.static_kwargs}
    for key, ok in KWARG_CHECKS.items():
        if key in kwargs and not ok(kwargs[key]):
            raise _fail(path, f"{role} ({net.build_func_name}) has {key}={kwargs[key]!r}, "
                              "which our networks do not implement")
    return kwargs


def _check_func(net: Any, expected: str, path: Path, role: str) -> None:
    if not isinstance(net, Network):
        raise _fail(path, f"{role} is not a Network (got {type(net).__name__})")
    if net.build_func_name != expected:
        kind = KNOWN_OTHERS.get(net.build_func_name)
        detail = f", {kind}" if kind else ""
        raise _fail(path, f"{role} is built by {net.build_func_name!r}{detail}; only original "
                          f"StyleGAN networks ({expected}) are supported")


def _check_generator(net: Any, path: Path, role: str) -> dict:
    _check_func(net, "G_style", path, role)
    comps = {k: v.build_func_name for k, v in net.components.items()}
    if comps != {"mapping": "G_mapping", "synthesis": "G_synthesis"}:
        raise _fail(path, f"{role} has components {comps}; G_style has mapping (G_mapping) "
                          "and synthesis (G_synthesis)")
    kwargs = _kwargs(net, G_DEFAULTS, path, role)
    for comp, defaults in (("mapping", G_MAPPING_DEFAULTS), ("synthesis", G_SYNTHESIS_DEFAULTS)):
        sub = net.components[comp]
        sub_kwargs = _kwargs(sub, {**G_DEFAULTS, **defaults}, path, f"{role}/{sub.name}")
        differ = sorted(k for k in net.static_kwargs
                        if k not in G_STYLE_DEFAULTS and k in sub.static_kwargs
                        and sub_kwargs[k] != kwargs[k])
        if differ:
            raise _fail(path, f"{role}/{sub.name} disagrees with {role} on {differ}")
    return kwargs


# ---- variable names and layouts -------------------------------------------------------------

# Our parameter path suffix -> the official variable name suffix.
_SUFFIXES = {
    ("Conv", "kernel"): "weight",
    ("Dense", "kernel"): "weight",
    ("kernel",): "weight",
    ("Bias", "bias"): "bias",
    ("bias", "bias"): "bias",
    ("Noise", "strength"): "Noise/weight",
    ("StyleMod", "affine", "kernel"): "StyleMod/weight",
    ("StyleMod", "affine", "bias", "bias"): "StyleMod/bias",
    ("const",): "const",
}


def _official_layer(block: str, full_log2: int) -> str:
    """Our layer module name -> the official variable scope: ``8x8_Conv0_up`` ->
    ``8x8/Conv0_up``, ``ToRGB_16x16`` -> ``ToRGB_lod{log2(R) - 4}``, ``Dense3`` unchanged."""
    for prefix in ("ToRGB_", "FromRGB_"):
        if block.startswith(prefix):
            res = int(block[len(prefix):].split("x")[0])
            return f"{prefix}lod{full_log2 - int(math.log2(res))}"
    head, sep, tail = block.partition("_")
    if sep and "x" in head and head.replace("x", "").isdigit():
        return f"{head}/{tail}"
    return block


def official_name(path: tuple[str, ...], full_log2: int) -> str:
    """The official local variable name of one of our parameters (path below ``params``):
    ``('synthesis', '4x4_Const', 'const')`` -> ``G_synthesis/4x4/Const/const``,
    ``('8x8_Conv1_down', 'Conv', 'kernel')`` (D) -> ``8x8/Conv1_down/weight``."""
    prefix = ""
    if path[0] in ("mapping", "synthesis"):
        prefix, path = f"G_{path[0]}/", path[1:]
    if path == ("LabelConcat",):
        return f"{prefix}LabelConcat/weight"
    suffix = _SUFFIXES.get(path[1:])
    if suffix is None:
        raise KeyError(f"no official name for parameter {'/'.join(path)}")
    return f"{prefix}{_official_layer(path[0], full_log2)}/{suffix}"


NCHW_TO_NHWC = (0, 2, 3, 1)  # the learned constant and the noise inputs


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where one official variable goes: our path and shape, and the axis permutation that
    turns the official array into ours (``None``: same layout)."""

    path: tuple[str, ...]
    shape: tuple[int, ...]
    to_ours: tuple[int, ...] | None = None

    @property
    def official_shape(self) -> tuple[int, ...]:
        if self.to_ours is None:
            return self.shape
        return tuple(self.shape[self.to_ours.index(i)] for i in range(len(self.shape)))

    def convert(self, value: np.ndarray) -> np.ndarray:
        value = value if self.to_ours is None else np.transpose(value, self.to_ours)
        return np.array(value, np.float32, order="C")


def _param_slots(abstract_params: dict, full_log2: int) -> dict[str, _Slot]:
    slots = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_params)[0]:
        keys = tuple(k.key for k in path)
        slots[official_name(keys, full_log2)] = _Slot(
            ("params", *keys), tuple(leaf.shape), NCHW_TO_NHWC if keys[-1] == "const" else None)
    return slots


def generator_slots(config: ml_collections.ConfigDict) -> dict[str, _Slot]:
    """Every variable of an official G_style for ``config`` (components included, as
    ``Network.vars`` names them) and where it goes in our Generator's variables."""
    G, _ = build_networks(config)
    z = jnp.zeros((1, G.latent_size))
    labels = jnp.zeros((1, G.label_size)) if G.label_size else None
    abstract = jax.eval_shape(G.init, jax.random.key(0), z, labels)
    full_log2 = int(math.log2(config.resolution))
    slots = _param_slots(abstract["params"], full_log2)
    slots["dlatent_avg"] = _Slot(("stats", "w_avg"), (G.dlatent_size,))
    slots["lod"] = _Slot(("lod",), ())
    slots["G_synthesis/lod"] = _Slot(("synthesis_lod",), ())
    if G.use_noise:
        for i in range(G.num_layers):
            size = 2 ** (i // 2 + 2)
            slots[f"G_synthesis/noise{i}"] = _Slot(("noise", str(i)), (1, size, size, 1),
                                                   NCHW_TO_NHWC)
    return slots


def discriminator_slots(config: ml_collections.ConfigDict) -> dict[str, _Slot]:
    """Every variable of an official D_basic for ``config`` and where it goes in ours."""
    _, D = build_networks(config)
    images = jnp.zeros((1, config.resolution, config.resolution, config.num_channels))
    labels = jnp.zeros((1, D.label_size)) if D.label_size else None
    abstract = jax.eval_shape(D.init, jax.random.key(0), images, labels)
    slots = _param_slots(abstract["params"], int(math.log2(config.resolution)))
    slots["lod"] = _Slot(("lod",), ())
    return slots


def _convert(net: Network, slots: dict[str, _Slot], path: Path, role: str) -> dict:
    """The network's variables as a nested dict of our paths; every name and shape checked."""
    missing = [n for n in slots if n not in net.variables]
    extra = [n for n in net.variables if n not in slots]
    if missing or extra:
        parts = ([f"lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}"] if missing else [])
        parts += [f"has unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"] if extra else []
        raise _fail(path, f"{role}: variables do not match its kwargs: " + "; ".join(parts))
    out: dict = {}
    for name, slot in slots.items():
        value = net.variables[name]
        if value.shape != slot.official_shape:
            raise _fail(path, f"{role}: variable {name} has shape {value.shape}, expected "
                              f"{slot.official_shape}")
        node = out
        for key in slot.path[:-1]:
            node = node.setdefault(key, {})
        node[slot.path[-1]] = slot.convert(value)
    return out


def _length(obj: Any) -> str:
    return f" of {len(obj)}" if isinstance(obj, tuple | list | dict) else ""


def load_pickle(path: str | os.PathLike) -> OfficialNetworks:
    """Reads an official ``(G, D, Gs)`` StyleGAN pickle into our config and Flax variables
    (see :class:`OfficialNetworks`). Nothing in the file is executed; any refusal is an
    :class:`OfficialPickleError` (or :class:`~stylegan_jax.safe_pickle.UnsafePickleError`)
    naming the file and the problem."""
    path = Path(path)
    obj = read_pickle(path)
    if isinstance(obj, Network):
        raise _fail(path, f"holds one network ({obj.build_func_name} {obj.name!r}), not the "
                          "(G, D, Gs) triple of a StyleGAN training snapshot")
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise _fail(path, f"holds a {type(obj).__name__}{_length(obj)}, not the (G, D, Gs) "
                          "triple of an official StyleGAN pickle")
    g_net, d_net, gs_net = obj
    g = _check_generator(g_net, path, "G")
    gs = _check_generator(gs_net, path, "Gs")
    if g != gs:
        differ = sorted(k for k in g if g[k] != gs[k])
        raise _fail(path, f"G and Gs disagree on {differ}")
    _check_func(d_net, "D_basic", path, "D")
    d = _kwargs(d_net, D_BASIC_DEFAULTS, path, "D")
    differ = [k for k in ("resolution", "num_channels", "label_size") if g[k] != d[k]]
    if differ:
        raise _fail(path, "G and D disagree on " + ", ".join(
            f"{k} ({g[k]!r} vs {d[k]!r})" for k in differ))
    try:
        config = config_from_kwargs(g, d)
    except (TypeError, ValueError) as e:
        raise _fail(path, f"unusable build kwargs ({e})") from None
    try:
        g_slots, d_slots = generator_slots(config), discriminator_slots(config)
    except ValueError as e:
        raise _fail(path, f"build kwargs our networks cannot build ({e})") from None
    g_vars = _convert(g_net, g_slots, path, "G")
    gs_vars = _convert(gs_net, g_slots, path, "Gs")
    d_vars = _convert(d_net, d_slots, path, "D")
    noise = gs_vars.pop("noise", None)
    noise = None if noise is None else [noise[str(i)] for i in range(len(noise))]
    lod = float(g_vars["lod"])
    for variables in (g_vars, gs_vars):
        for key in ("lod", "synthesis_lod", "noise"):
            variables.pop(key, None)
    d_vars.pop("lod")
    return OfficialNetworks(path, config, g_vars, d_vars, gs_vars, noise, lod)


# ---- attribute classifiers (official metrics/linear_separability.py) -------------------------

CLASSIFIER_GLOB = "celebahq-classifier-*.pkl"
# The official ls metric runs the classifiers on minibatches of 4 images per GPU
# (metric_base.py: ls ... minibatch_per_gpu=4), so their minibatch-stddev groups are those 4.
LS_MINIBATCH_PER_GPU = 4


def load_classifier(path: str | os.PathLike) -> tuple[Any, dict]:
    """One official attribute classifier pickle (a single ``D_basic`` or ``D_paper`` network
    with one output logit) as our ``Discriminator`` module and its variables."""
    from stylegan_jax.networks import Discriminator

    path = Path(path)
    net = read_pickle(path)
    if not isinstance(net, Network):
        raise _fail(path, f"holds a {type(net).__name__}{_length(net)}, not the single network "
                          "of an attribute classifier")
    if net.build_func_name == "D_paper":
        kwargs = _kwargs(net, D_PAPER_DEFAULTS, path, "classifier")
        if kwargs["fused_scale"] is not True:  # unfused D_paper names its layers Conv1
            raise _fail(path, f"classifier (D_paper) has fused_scale={kwargs['fused_scale']!r}; "
                              "only fused_scale=True is supported")
        use_blur, fused, mbstd_features = False, True, 1
    else:
        _check_func(net, "D_basic", path, "classifier")
        kwargs = _kwargs(net, D_BASIC_DEFAULTS, path, "classifier")
        use_blur, fused = bool(kwargs["blur_filter"]), kwargs["fused_scale"]
        mbstd_features = int(kwargs["mbstd_num_features"])
    if kwargs["label_size"]:
        raise _fail(path, f"classifier has label_size={kwargs['label_size']}; attribute "
                          "classifiers have one output")
    try:
        D = Discriminator(
            resolution=int(kwargs["resolution"]), num_channels=int(kwargs["num_channels"]),
            fmap_base=int(kwargs["fmap_base"]), fmap_decay=float(kwargs["fmap_decay"]),
            fmap_max=int(kwargs["fmap_max"]), mbstd_group_size=int(kwargs["mbstd_group_size"]),
            mbstd_num_features=mbstd_features, fused_scale=fused, use_blur=use_blur)
        images = jnp.zeros((1, D.resolution, D.resolution, D.num_channels))
        abstract = jax.eval_shape(D.init, jax.random.key(0), images)
    except (TypeError, ValueError) as e:
        raise _fail(path, f"build kwargs our networks cannot build ({e})") from None
    slots = _param_slots(abstract["params"], int(math.log2(D.resolution)))
    slots["lod"] = _Slot(("lod",), ())
    variables = _convert(net, slots, path, "classifier")
    if float(variables.pop("lod")) != 0:
        raise _fail(path, "classifier was saved while growing (lod != 0)")
    return D, variables


def attribute_classifier(directory: str | os.PathLike) -> Callable[[jax.Array], jax.Array]:
    """Every ``celebahq-classifier-*.pkl`` in ``directory`` (sorted by name) as one
    linear-separability classifier: images ``[N, r, r, C]`` in [-1, 1] are box-downsampled
    to the classifiers' resolution (official: to 256x256) and each attribute's probability is
    ``softmax([logit, -logit])[0]``; returns ``[N, num_attributes]``. Minibatch-stddev groups
    are consecutive runs of :data:`LS_MINIBATCH_PER_GPU` images, as in the official metric
    (``N`` must be a multiple of it)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such classifier directory")
    paths = sorted(directory.glob(CLASSIFIER_GLOB))
    if not paths:
        raise FileNotFoundError(f"{directory}: no {CLASSIFIER_GLOB} files")
    nets = [load_classifier(p) for p in paths]
    modules = {(D.resolution, D.num_channels) for D, _ in nets}
    if len(modules) != 1:
        raise ValueError(f"{directory}: the classifiers disagree on resolution/channels "
                         f"{sorted(modules)}")
    (resolution, channels), = modules

    @jax.jit
    def classify(params: list, images: jax.Array) -> jax.Array:
        if images.shape[1] % resolution or images.shape[3] != channels:
            raise ValueError(f"{directory}: classifiers take {resolution}x{resolution}x"
                             f"{channels} images, got {images.shape[1:]}")
        if images.shape[0] % LS_MINIBATCH_PER_GPU:
            raise ValueError(f"the ls batch size must be a multiple of {LS_MINIBATCH_PER_GPU} "
                             f"for the official classifiers, got {images.shape[0]}")
        x = downscale2d(images.astype(jnp.float32), images.shape[1] // resolution)
        shards = images.shape[0] // LS_MINIBATCH_PER_GPU
        logits = [D.clone(mbstd_num_shards=shards).apply(v, x)
                  for (D, _), v in zip(nets, params, strict=True)]
        return jax.nn.softmax(jnp.stack([jnp.stack(logits, 1), -jnp.stack(logits, 1)]),
                              axis=0)[0]

    params = [v for _, v in nets]
    return lambda images: classify(params, images)
