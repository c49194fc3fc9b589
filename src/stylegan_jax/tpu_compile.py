"""Every program of a run compiled for a named Cloud TPU slice on a machine without a TPU:
what ``stylegan-jax tpu-compile`` runs.

libtpu (the XLA:TPU compiler, a wheel on PyPI) describes any slice by name (``v5e:4x4``,
``v4:4x4x4``) as compile-only devices. ``jit(f).lower(abstract arguments sharded over a mesh
of them).compile()`` then runs the real TPU compiler: its buffer assignment says whether the
program fits a chip's HBM, and its cost analysis gives the FLOPs and bytes per chip. So a
user learns before renting a pod whether each phase fits, the least time an iteration can
take, how long every compile will be, and which collectives XLA put in (MaxText's
``train_compile.py`` checks pod configs the same way).

Each program becomes one JSON line (:func:`compile_rows`) the moment it is compiled: every
training-phase program of the config's schedule at the per-chip batch that schedule gives on
the slice (or ``per_chip_batch``), then the FID, PPL and projection programs. A phase whose
global batch does not split over the slice gets a ``does_not_split`` row naming a slice and a
batch that work. Nothing here runs a program or allocates device memory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import bench, generate, parallel, projection
from stylegan_jax.errors import UsageError
from stylegan_jax.metrics import frechet, inception, lpips, path_length
from stylegan_jax.models import build_networks
from stylegan_jax.sampling import at_phase
from stylegan_jax.schedule import phase_programs

GiB = 2**30
PROGRAMS = ("phases", "fid", "ppl", "projection")
PROJECTION_CHUNK = 100  # steps per projection dispatch (`project`'s progress interval)


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU generation's per-chip figures (Google Cloud TPU documentation, the system
    architecture pages ``cloud.google.com/tpu/docs/{v4,v5e,v5p,v6e}``)."""

    name: str
    hbm_bytes: int
    peak_bf16_flops: float  # per second
    hbm_bytes_per_s: float
    megacore: bool  # two TensorCores shown as one device (chip_config_name="megacore")
    accelerator_type: str  # the smallest slice's name, which libtpu asks the host for


CHIPS = {
    "v4": Chip("v4", 32 * GiB, 275e12, 1200e9, True, "v4-8"),
    "v5e": Chip("v5e", 16 * GiB, 197e12, 819e9, False, "v5litepod-4"),
    "v5p": Chip("v5p", 95 * GiB, 459e12, 2765e9, True, "v5p-8"),
    "v6e": Chip("v6e", 32 * GiB, 918e12, 1640e9, False, "v6e-4"),
}
_TOPOLOGY = re.compile(r"^(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")
_OOM = re.compile(r"required for HLO temporaries \(([\d.]+)([KMGT]?)\) exceeds available HBM "
                  r"\(([\d.]+)([KMGT]?)\)")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all",
                "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8}


def parse_topology(name: str) -> tuple[Chip, int]:
    """``'v5e:4x4'`` -> (the v5e chip, 16 chips); a clear error for anything else."""
    match = _TOPOLOGY.match(name)
    if not match:
        raise UsageError(f"--topology {name!r} is not GENERATION:SHAPE with GENERATION one of "
                         f"{sorted(CHIPS)} (e.g. v5e:4x4, v4:2x2x4, v5p:2x2x1, v6e:2x2)")
    return CHIPS[match.group(1)], math.prod(int(d) for d in match.group(2).split("x"))


def libtpu_path() -> str | None:
    """Where libtpu is: ``$TPU_LIBRARY_PATH``, the installed ``libtpu`` package, or
    ``<venv>/libtpu`` (where ``make tpu-tools`` puts it, off the import path so that CPU runs
    never load it)."""
    env = os.environ.get("TPU_LIBRARY_PATH")
    if env:
        return env if os.path.isfile(env) else None
    try:
        import libtpu  # noqa: PLC0415 (optional: present only where jax[tpu] is installed)

        return libtpu.get_library_path()
    except ImportError:
        beside = Path(sys.prefix) / "libtpu" / "libtpu" / "libtpu.so"
        return str(beside) if beside.is_file() else None


def topology_mesh(name: str) -> tuple[jax.sharding.Mesh, Chip]:
    """A ``'data'`` mesh over the compile-only devices of the named slice, one per chip."""
    chip, _ = parse_topology(name)
    path = libtpu_path()
    if path is None:
        raise UsageError("tpu-compile needs libtpu (the XLA:TPU compiler): run `make "
                         "tpu-tools`, `pip install 'stylegan-jax[tpu]'`, or set "
                         "TPU_LIBRARY_PATH to a libtpu.so")
    # libtpu on a machine without a TPU: one host of a small slice (else it warns that it
    # cannot tell), no hostnames to look up, and other processes (a second compile, the test
    # suite) may load it too.
    os.environ.setdefault("TPU_LIBRARY_PATH", path)
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", chip.accelerator_type)
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies  # noqa: PLC0415 (loads libtpu: only here)

    options = {"chip_config_name": "megacore"} if chip.megacore else {}
    try:
        devices = topologies.get_topology_desc(name, "tpu", **options).devices
    except Exception as e:  # libtpu's INVALID_ARGUMENT for a shape it does not offer
        raise UsageError(f"--topology {name}: {str(e).splitlines()[0]}") from e
    mesh = jax.sharding.Mesh(np.array(devices), (parallel.DATA_AXIS,),
                             axis_types=(jax.sharding.AxisType.Auto,))
    return mesh, chip


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * _UNITS[unit])


def parse_oom(message: str) -> tuple[int, int] | None:
    """(bytes needed, bytes available) from XLA:TPU's RESOURCE_EXHAUSTED message, if it is one."""
    match = _OOM.search(message)
    return None if match is None else (_bytes(*match.group(1, 2)), _bytes(*match.group(3, 4)))


def collectives(hlo_text: str) -> dict[str, dict[str, int]]:
    """Count and result bytes of each collective in a compiled HLO module (an async pair is
    counted once, at its ``-start``, whose result of an all-gather or a collective-permute is
    the pair (operand, output): the output is counted)."""
    found: dict[str, dict[str, int]] = {}
    pattern = re.compile(r"= (.*?) (" + "|".join(_COLLECTIVES) + r")(-start)?\(")
    for line in hlo_text.splitlines():
        match = pattern.search(re.sub(r"/\*.*?\*/", "", line))
        if match is None:
            continue
        shapes = re.findall(r"(\w+)\[([\d,]*)\]", match.group(1))
        op, start = match.group(2), match.group(3)
        if start and op != "all-reduce" and len(shapes) == 2:
            shapes = shapes[1:]
        size = sum(_DTYPE_BYTES.get(dtype, 4) * math.prod(int(d) for d in dims.split(",") if d)
                   for dtype, dims in shapes)
        entry = found.setdefault(op, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += size
    return found


def roofline_seconds(flops: float, bytes_accessed: float, chip: Chip) -> float:
    """The least time per call the chip's peak rates allow: max(FLOPs / peak bf16 FLOP/s,
    bytes / HBM bandwidth)."""
    return max(flops / chip.peak_bf16_flops, bytes_accessed / chip.hbm_bytes_per_s)


def compile_row(lower: Callable[[], jax.stages.Lowered], chip: Chip,
                compiler_options: dict[str, str] | None = None) -> dict[str, Any]:
    """Lowers and compiles one program; its HBM per chip, cost, roofline bound, collectives and
    seconds, or (``fits: False``) what the compiler said it needs."""
    start = time.perf_counter()
    lowered = lower()
    lowered_at = time.perf_counter()
    row: dict[str, Any] = {"lower_s": round(lowered_at - start, 2)}
    try:
        compiled = lowered.compile(compiler_options=compiler_options or None)
    except Exception as e:  # XLA's errors are a runtime class jax does not export
        needs = parse_oom(str(e))
        if needs is None:
            raise
        row.update(compile_s=round(time.perf_counter() - lowered_at, 2), fits=False,
                   needs_gib=round(needs[0] / GiB, 3), available_gib=round(needs[1] / GiB, 3))
        return row
    row["compile_s"] = round(time.perf_counter() - lowered_at, 2)
    memory = compiled.memory_analysis()
    need = bench.device_bytes(compiled)
    cost = compiled.cost_analysis()
    flops, accessed = bench.cost_total(cost, "flops"), bench.cost_total(cost, "bytes accessed")
    text = compiled.as_text() or ""
    row.update(
        fits=True, needs_gib=round(need / GiB, 3), hbm_gib=round(chip.hbm_bytes / GiB, 3),
        argument_gib=round(memory.argument_size_in_bytes / GiB, 3),
        temp_gib=round(memory.temp_size_in_bytes / GiB, 3),
        output_gib=round(memory.output_size_in_bytes / GiB, 3),
        alias_gib=round(memory.alias_size_in_bytes / GiB, 3),
        flops=flops, bytes_accessed=accessed,
        roofline_ms=round(1e3 * roofline_seconds(flops, accessed, chip), 3),
        collectives=collectives(text), hlo_instructions=bench.hlo_instructions(text))
    return row


def split_advice(global_batch: int, chips: int, chip: Chip) -> str:
    """What to do when a phase's global batch does not split over ``chips``."""
    fitting = max(n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256)
                  if n <= global_batch and global_batch % n == 0)
    larger = -(-global_batch // chips) * chips
    return (f"a global batch of {global_batch} gives no whole image per chip on {chips} chips: "
            f"use a slice of at most {fitting} {chip.name} chips, or raise the phase's "
            f"config.sched.minibatch_base/minibatch_dict to {larger} (a multiple of {chips}; "
            "a larger batch than the paper's)")


def _phase_rows(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, chip: Chip,
                per_chip_batch: int | None, resolutions: Sequence[int] | None,
                compiler_options: dict[str, str] | None) -> Iterator[dict]:
    chips = mesh.size
    step = batch_step(config, chips)
    if per_chip_batch and per_chip_batch % step:
        raise UsageError(f"--per_chip_batch {per_chip_batch} on {chips} chips gives a global "
                         f"batch the minibatch-stddev and style-mixing groups do not divide: "
                         f"use a multiple of {step}")
    programs = phase_programs(config, 1)
    missing = sorted(set(resolutions or ()) - {r for r, _ in programs})
    if missing:
        raise UsageError(f"--resolutions {missing}: not phases of the config's schedule "
                         f"({[r for r, _ in programs]})")
    for resolution, global_batch in programs:
        if resolutions and resolution not in resolutions:
            continue
        batch = per_chip_batch * chips if per_chip_batch else global_batch - global_batch % chips
        row = {"kind": "phase", "resolution": resolution, "schedule_batch": global_batch,
               "global_batch": batch, "per_chip_batch": batch // chips}
        if batch == 0:
            yield {**row, "kind": "does_not_split",
                   "advice": split_advice(global_batch, chips, chip)}
            continue
        yield {**row, **compile_row(
            lambda r=resolution, b=batch: bench.lower_iteration(config, r, b, mesh), chip,
            compiler_options)}


def _abstract(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        tree)


def _abstract_lpips(sharding: jax.sharding.Sharding) -> Any:
    """LPIPS-VGG16 parameters as abstract arrays (shapes only: nothing is loaded)."""
    x = jnp.zeros((1, 16, 16, 3))
    return _abstract(jax.eval_shape(lpips.LPIPS().init, jax.random.key(1), x, x)["params"],
                     sharding)


def _metric_rows(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, chip: Chip,
                 programs: Sequence[str], compiler_options: dict[str, str] | None
                 ) -> Iterator[dict]:
    """FID's two programs (fakes from the float32 generator; Inception features and moments),
    PPL's step (pairs of images in W + LPIPS) and the projector's, at
    ``config.eval.batch_size`` rounded up to a multiple of the chips, on abstract weights."""
    rep, data = parallel.replicated_sharding(mesh), parallel.data_sharding(mesh)
    eval_config = ml_collections.ConfigDict(config.to_dict())
    eval_config.compute_dtype = "float32"  # metrics sample in float32
    G = at_phase(build_networks(eval_config)[0])
    labels = jnp.zeros((1, G.label_size)) if G.label_size else None
    g_vars = _abstract(jax.eval_shape(G.init, jax.random.key(0),
                                      jnp.zeros((1, G.latent_size)), labels), rep)
    batch = -(-config.eval.batch_size // mesh.size) * mesh.size
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=rep)
    base = {"resolution": config.resolution, "global_batch": batch,
            "per_chip_batch": batch // mesh.size}
    if "fid" in programs:
        generate = frechet.generate_step(G, mesh, batch)
        yield {"kind": "fid_generate", **base,
               **compile_row(lambda: generate.lower(g_vars, key), chip, compiler_options)}
        size = inception.INPUT_SIZE
        params = _abstract(jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                                          jnp.zeros((1, size, size, 3)))["params"], rep)
        _, accumulate = frechet.image_steps(inception.InceptionFeatures(params), mesh)
        dim = inception.InceptionFeatures.dim
        pair = (jax.ShapeDtypeStruct((dim,), jnp.float32, sharding=rep),) * 2
        sums = {"s1": pair, "s2": (jax.ShapeDtypeStruct((dim, dim), jnp.float32,
                                                        sharding=rep),) * 2}
        images = jax.ShapeDtypeStruct((batch, config.resolution, config.resolution, 3),
                                      jnp.uint8, sharding=data)
        valid = jax.ShapeDtypeStruct((batch,), jnp.bool_, sharding=data)
        yield {"kind": "fid_inception", **base, **compile_row(
            lambda: accumulate.lower(sums, params, images, valid, pair[0]), chip,
            compiler_options)}
    if "ppl" in programs:
        lp = _abstract_lpips(rep)
        step = path_length.ppl_step(G, mesh, batch, "w", "end", 1e-4, True,
                                    lpips.distance_255)
        yield {"kind": "ppl", **base,
               **compile_row(lambda: step.lower(g_vars, lp, key), chip, compiler_options)}
    if "projection" in programs:
        yield from _projection_rows(eval_config, mesh, chip, G, g_vars, key, base,
                                    compiler_options)


def _sharded_like(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Abstract arrays of ``tree``'s shapes: batched ones along ``'data'``, scalars replicated
    (as the projector constrains its state)."""
    data, rep = parallel.data_sharding(mesh), parallel.replicated_sharding(mesh)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                                       sharding=data if a.ndim else rep), tree)


def _projection_rows(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, chip: Chip,
                     G: Any, g_vars: Any, key: jax.ShapeDtypeStruct, base: dict,
                     compiler_options: dict[str, str] | None) -> Iterator[dict]:
    """The projector's programs (StyleGAN2's recipe): its start (target features, initial w
    and noise) and one chunk of ``PROJECTION_CHUNK`` optimisation steps, for a batch of
    ``base['global_batch']`` targets."""
    rep, data = parallel.replicated_sharding(mesh), parallel.data_sharding(mesh)
    model = generate.from_variables(config, G, g_vars)
    start, run, _ = projection.programs(model, projection.Recipe(), mesh)
    batch, r = base["global_batch"], config.resolution
    lp = _abstract_lpips(rep)
    targets = jax.ShapeDtypeStruct((batch, r, r, config.num_channels), jnp.float32,
                                   sharding=data)
    w_avg = jax.ShapeDtypeStruct((batch, G.dlatent_size), jnp.float32, sharding=data)
    w_std = jax.ShapeDtypeStruct((batch,), jnp.float32, sharding=data)
    yield {"kind": "projection_start", **base, **compile_row(
        lambda: start.lower(lp, targets, w_avg, key), chip, compiler_options)}
    features, params, opt_state, _ = _sharded_like(
        jax.eval_shape(start, lp, targets, w_avg, key), mesh)
    first = jax.ShapeDtypeStruct((), jnp.int32, sharding=rep)
    yield {"kind": "projection_steps", **base, "steps": PROJECTION_CHUNK, **compile_row(
        lambda: run.lower(params, opt_state, [], g_vars, lp, targets, features, w_std, key,
                          first, length=PROJECTION_CHUNK), chip, compiler_options)}


def batch_step(config: ml_collections.ConfigDict, chips: int) -> int:
    """The smallest per-chip batch step whose global batch the iteration takes: a multiple of
    the minibatch-stddev group and of the style-mixing groups."""
    whole = math.lcm(config.D.mbstd_group_size, config.G.style_mixing_groups)
    return whole // math.gcd(whole, chips)


def max_batch_rows(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, chip: Chip,
                   resolution: int, compiler_options: dict[str, str] | None = None,
                   start: int = 4, cap: int = 256) -> Iterator[dict]:
    """``batch_probe`` rows toward the largest per-chip batch whose ``resolution`` iteration
    the TPU compiler fits in a chip (doubling from ``start``, then bisecting), then one
    ``max_batch`` row. A failure is quick (the compiler stops at buffer assignment); a fit is
    a whole compile."""
    from stylegan_jax.bench_suite import search_batches  # noqa: PLC0415 (its batch search)

    step = batch_step(config, mesh.size)
    start = max(step, start // step * step)
    rows: dict[int, dict] = {}

    def needed(per_chip: int) -> int:
        rows[per_chip] = compile_row(lambda: bench.lower_iteration(
            config, resolution, per_chip * mesh.size, mesh), chip, compiler_options)
        need = int(rows[per_chip]["needs_gib"] * GiB)
        return need if rows[per_chip]["fits"] else max(need, chip.hbm_bytes + 1)

    largest = smallest_failure = None
    for per_chip, _, fits in search_batches(needed, chip.hbm_bytes, start, step, cap,
                                            time_left=lambda: True):
        yield {"kind": "batch_probe", "resolution": resolution, "per_chip_batch": per_chip,
               "global_batch": per_chip * mesh.size, **rows[per_chip]}
        if fits:
            largest = max(largest or 0, per_chip)
        else:
            smallest_failure = min(smallest_failure or per_chip, per_chip)
    yield {"kind": "max_batch", "resolution": resolution, "largest_fitting": largest,
           "smallest_failing": smallest_failure, "step": step}


def compile_rows(config: ml_collections.ConfigDict, topology: str, *,
                 programs: Sequence[str] = PROGRAMS, per_chip_batch: int | None = None,
                 resolutions: Sequence[int] | None = None, max_batch: bool = False,
                 compiler_options: dict[str, str] | None = None) -> Iterator[dict]:
    """One row per program of ``config``'s run compiled for ``topology`` (first an ``env`` row:
    the slice, the chip's figures, jax and libtpu), each as soon as it is compiled; with
    ``max_batch``, last, the search for the largest per-chip batch at full resolution."""
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        raise UsageError(f"--programs: unknown {unknown}; choose from {list(PROGRAMS)}")
    mesh, chip = topology_mesh(topology)
    device = mesh.devices.flat[0]
    yield {"kind": "env", "topology": topology, "chips": mesh.size,
           "device_kind": device.device_kind, "hbm_gib_per_chip": chip.hbm_bytes / GiB,
           "peak_bf16_tflops": chip.peak_bf16_flops / 1e12,
           "hbm_gb_per_s": chip.hbm_bytes_per_s / 1e9, "compute_dtype": config.compute_dtype,
           "remat_resolution": config.get("remat_resolution", 0),
           "layout_resolution": config.get("layout_resolution", 0),
           "compiler_options": compiler_options or {}, "jax": jax.__version__,
           "libtpu": os.environ.get("TPU_LIBRARY_PATH")}
    if "phases" in programs:
        yield from _phase_rows(config, mesh, chip, per_chip_batch, resolutions,
                               compiler_options)
    yield from _metric_rows(config, mesh, chip, programs, compiler_options)
    if max_batch:
        yield from max_batch_rows(config, mesh, chip, config.resolution, compiler_options)


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)


def markdown(rows: Sequence[dict]) -> str:
    """The rows of one or more calls as markdown: a table of the compiled programs per slice
    (HBM per chip, work per chip, roofline bound, collectives, compile seconds), then the
    batch searches and the phases that do not split."""
    lines: list[str] = []
    header = ("program", "resolution", "per chip (global)", "fits", "HBM need GiB",
              "temp GiB", "GFLOP/chip", "GB/chip", "roofline ms", "all-reduce (count, MB)",
              "compile s")
    for row in rows:
        if row["kind"] == "env":
            lines += ["", f"**{row['topology']}** ({row['chips']} chips, {row['device_kind']}, "
                      f"{row['hbm_gib_per_chip']:g} GiB HBM each), {row['compute_dtype']}, "
                      f"layout_resolution {row.get('layout_resolution', '?')}, remat_resolution "
                      f"{row['remat_resolution']}, options {row['compiler_options'] or 'none'}, "
                      f"jax {row['jax']}", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)]
        elif row["kind"] == "does_not_split":
            lines.append(f"| phase | {row['resolution']} | - ({row['schedule_batch']}) | "
                         f"does not split: {row['advice']} |" + " |" * (len(header) - 4))
        elif row["kind"] == "max_batch":
            lines.append(f"| largest per-chip batch | {row['resolution']} | "
                         f"{row['largest_fitting']} (first failing: {row['smallest_failing']},"
                         f" step {row['step']}) |" + " |" * (len(header) - 3))
        elif "fits" in row:
            reduce = row.get("collectives", {}).get("all-reduce")
            cells = (
                row["kind"], row["resolution"],
                f"{row['per_chip_batch']} ({row['global_batch']})",
                "yes" if row["fits"] else f"no (available {row['available_gib']:g})",
                row["needs_gib"], row.get("temp_gib"),
                row["flops"] / 1e9 if "flops" in row else None,
                row["bytes_accessed"] / 1e9 if "bytes_accessed" in row else None,
                row.get("roofline_ms"),
                None if reduce is None else f"{reduce['count']}, {reduce['bytes'] / 1e6:,.1f}",
                row["compile_s"])
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines).strip() + "\n"
