"""Layer tables with parameter counts, like the official ``tflib.Network.print_layers``.

Shapes come from ``jax.eval_shape``, so even the 1024x1024 networks are summarised in
seconds without allocating or computing anything. Like ``print_layers``, totals count
trainable parameters only (collection ``params``); ``w_avg`` is listed separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax.models import build_networks

_RANK = {"FromRGB": 0, "Const": 1, "Dense": 1, "Conv": 2, "Conv0_up": 2, "Conv0": 2, "Conv1": 3,
         "Conv1_down": 3, "Dense0": 3, "Dense1": 4, "ToRGB": 5}
_BATCH = 4


@dataclass(frozen=True)
class LayerRow:
    name: str
    params: int
    output_shape: tuple[int | str, ...]
    weight_shape: tuple[int, ...]


def _layer_order(name: str) -> tuple[int, int, str]:
    """Sort key (resolution, position in block, name) from names such as ``8x8_Conv0_up``,
    ``ToRGB_8x8`` or ``Dense3``."""
    if m := re.fullmatch(r"(\d+)x\d+_(\w+)", name):
        return int(m.group(1)), _RANK.get(m.group(2), 9), name
    if m := re.fullmatch(r"(ToRGB|FromRGB)_(\d+)x\d+", name):
        return int(m.group(2)), _RANK[m.group(1)], name
    if m := re.fullmatch(r"Dense(\d+)", name):
        return int(m.group(1)), 0, name
    return -1, 0, name


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _weight_shape(tree) -> tuple[int, ...]:
    """Shape of a layer's main weight (conv/dense kernel or constant), as print_layers shows."""
    for path in (("Conv", "kernel"), ("Dense", "kernel"), ("const",), ("kernel",)):
        node = tree
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return tuple(node.shape)
    leaves = jax.tree.leaves(tree)
    return tuple(max(leaves, key=lambda x: np.prod(x.shape)).shape) if leaves else ()


def _output_shape(intermediates: dict) -> tuple[int | str, ...]:
    out = intermediates.get("__call__", ((),))[0]
    shape = tuple(out.shape) if hasattr(out, "shape") else ()
    return ("?", *shape[1:]) if shape else ()


def layer_table(module: nn.Module, *args, rngs: dict | None = None, descending: bool = False,
                **kwargs) -> tuple[list[LayerRow], dict]:
    """Rows for every layer of ``module`` (applied to ``args``), grouped two levels deep for
    composite networks (``mapping/Dense0``), and the abstract variables."""
    key = jax.random.key(0)
    variables = jax.eval_shape(lambda: module.init(key, *args, **kwargs))
    _, state = jax.eval_shape(lambda v: module.apply(
        v, *args, rngs={"noise": key, **(rngs or {})}, capture_intermediates=True,
        mutable=["intermediates"], **kwargs), variables)
    inter = state["intermediates"]
    params = variables["params"]
    rows = []

    def add(prefix: str, tree: dict, inter_tree: dict) -> None:
        def order(name: str) -> tuple[int, int, str]:
            res, rank, _ = _layer_order(name)
            return (-res if descending else res), rank, name

        names = sorted(tree, key=order)
        for name in names:
            sub = tree[name]
            rows.append(LayerRow(f"{prefix}{name}", _count(sub),
                                 _output_shape(inter_tree.get(name, {})), _weight_shape(sub)))

    subnets = {k: v for k, v in params.items() if isinstance(v, dict) and k in inter
               and all(isinstance(c, dict) for c in v.values())
               and k in ("mapping", "synthesis")}
    if subnets:
        for net_name, tree in subnets.items():
            add(f"{net_name}/", tree, inter[net_name])
    else:
        add("", params, inter)
    return rows, variables


def format_table(title: str, rows: list[LayerRow], total: int, extra: str = "") -> str:
    width = max(len(r.name) for r in rows) + 2
    lines = [title, f"{'Name':<{width}}{'Params':>12}  {'OutputShape':<22}WeightShape",
             f"{'---':<{width}}{'---':>12}  {'---':<22}---"]
    for r in rows:
        out = "(" + ", ".join(map(str, r.output_shape)) + ")" if r.output_shape else "-"
        lines.append(f"{r.name:<{width}}{r.params:>12,}  {out:<22}{r.weight_shape}")
    lines += [f"{'---':<{width}}{'---':>12}", f"{'Total':<{width}}{total:>12,}"]
    if any(not r.output_shape for r in rows):
        lines.append("(OutputShape '-': a layer only earlier progressive-growing phases use)")
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def network_summary(config: ml_collections.ConfigDict) -> str:
    """The layer tables of the config's G and D, with per-network and per-sub-network totals."""
    g, d = build_networks(config)
    z = jnp.zeros((_BATCH, g.latent_size))
    labels = jnp.zeros((_BATCH, config.label_size)) if config.label_size else None
    g_rows, g_vars = layer_table(g, z, labels)
    images = jnp.zeros((_BATCH, config.resolution, config.resolution, config.num_channels))
    d_rows, d_vars = layer_table(d, images, labels, descending=True)
    g_params = g_vars["params"]
    per_net = ", ".join(f"{k} {_count(v):,}" for k, v in g_params.items())
    non_trainable = ", ".join(f"{c}/{k} {_count(v):,}" for c in g_vars if c != "params"
                              for k, v in g_vars[c].items())
    return "\n\n".join([
        format_table(f"G ({config.resolution}x{config.resolution})", g_rows, _count(g_params),
                     f"({per_net}; not trainable, not counted: {non_trainable})"),
        format_table(f"D ({config.resolution}x{config.resolution})", d_rows,
                     _count(d_vars["params"])),
    ])
