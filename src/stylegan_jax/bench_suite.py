"""Every accelerator figure of ``BENCHMARKS.md`` from one budgeted call: what
``stylegan-jax bench-suite`` runs.

Accelerator time comes rarely and in short leases, start-up included, so the suite is one
command worth running blind:

- the first row is the machine (device, jax/jaxlib/flax versions, XLA flags);
- the items (:func:`suite_items`) run in priority order, each in a fresh child process with
  its own time limit, under one wall-clock budget: a child that runs over is killed and leaves a
  ``timeout`` row, one that fails leaves an ``error`` row, and the next item starts. A fresh
  process per item keeps each item's peak device memory its own, and a crash (out of memory,
  an XLA abort) loses only that item;
- every result is one JSON line appended to the output the moment it exists (one ``write``
  per line), so a budget or lease that runs out still leaves every finished row;
- the phase programs of the FFHQ-1024 schedule compile in a background child from the start;
  the foreground's timed loops pause it (SIGSTOP/SIGCONT) so that its compiles (and their
  autotuning on the device) do not disturb them, and its compile seconds leave the pauses
  out;
- all children share JAX's persistent compilation cache (``cache_dir``), so nothing compiles
  twice within the call and a rerun on the same machine reuses what the last one compiled.

Row kinds: ``env``, ``train``, ``memory_probe`` and ``max_batch``, ``fid``, ``ppl``,
``projection``, ``phase_compile``, ``skipped``, ``timeout``, ``error``, ``done``.
:func:`markdown` turns them into the tables of ``BENCHMARKS.md``. ``Settings(smoke=True)``
runs the same code at tiny widths and resolutions (the test suite does, on the CPU). Networks
have the official widths and random weights; Inception and LPIPS have random weights too,
which is all a timing needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import bench, generate, parallel
from stylegan_jax.config import paper_config
from stylegan_jax.metrics import frechet, inception, lpips, path_length
from stylegan_jax.models import build_networks
from stylegan_jax.projection import project_batches
from stylegan_jax.sampling import at_phase
from stylegan_jax.schedule import phase_programs

DEFAULT_CACHE = Path("/tmp/stylegan-jax-bench-cache")
CACHE_HITS_EVENT = "/jax/compilation_cache/cache_hits"
FID_IMAGES, PPL_SAMPLES = 50_000, 100_000  # fid50k and ppl_wend's official sample counts
# Issue 24's targets on one GPU: the 1024/b16 bf16 iteration at 10x rosinality's PyTorch
# port (6.4 images/s on one H100), fid50k under 2 and ppl_wend under 5 minutes at 1024.
ROSINALITY_1024_B16_IMAGES_PER_S, TARGET_SPEEDUP = 6.4, 10.0
TARGET_FID50K_S, TARGET_PPL100K_S = 120.0, 300.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one suite call measures and within what time.

    ``budget_s``: wall clock for the whole call; ``item_limit_s``: the most one item may
    take; ``cache_dir``: JAX's persistent compilation cache; ``memory_limit_bytes``: the
    batch search's limit where the device reports none (the CPU; default there: what the
    first probe needs, a stand-in that makes the search end); ``timing_s``: seconds each
    throughput measurement aims at. Batches are per device: on n devices every item runs n
    times the batch (the official recipe likewise fixes the minibatch per GPU)."""

    smoke: bool = False
    budget_s: float = 540.0
    item_limit_s: float = 240.0
    cache_dir: str = os.fspath(DEFAULT_CACHE)
    memory_limit_bytes: int | None = None
    timing_s: float = 20.0

    @property
    def big(self) -> tuple[int, int]:
        """(resolution, batch) of the paper's setting: 1024/b16 (smoke: 16/b4)."""
        return (16, 4) if self.smoke else (1024, 16)

    @property
    def small(self) -> tuple[int, int] | None:
        """(resolution, batch) of the second training setting: 256/b32 (smoke: none, its code
        is the first setting's)."""
        return None if self.smoke else (256, 32)

    @property
    def metric_batch(self) -> int:
        return 4 if self.smoke else 64

    @property
    def projection_batches(self) -> tuple[int, int]:
        return (1, 4) if self.smoke else (1, 32)


def suite_config(settings: Settings, resolution: int, dtype: str = "float32"
                 ) -> ml_collections.ConfigDict:
    """Config F at ``resolution`` with the official widths (smoke: tiny ones, two mixing
    groups, and a schedule of minibatch 4 per device that starts at the full resolution, so
    that its one phase program is the smoke's float32 iteration: a persistent-cache hit)."""
    config = paper_config(resolution)
    config.compute_dtype = dtype
    if settings.smoke:
        config.G.update(dict(latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2,
                             fmap_base=64, fmap_max=8, style_mixing_groups=2))
        config.D.update(dict(fmap_base=64, fmap_max=8))
        config.sched.minibatch_base, config.sched.minibatch_dict = _global(4), {}
        config.sched.lod_initial_resolution = resolution
    return config


# ---- the child's side: rows, pauses, deadlines ------------------------------------------------

class RowWriter:
    """Appends rows to a JSONL file, one ``write`` per line (rows of concurrent children do
    not interleave), each stamped with its item and the seconds since the suite started."""

    def __init__(self, path: str | os.PathLike, item: str, suite_start: float,
                 label: str = "bench-suite"):
        self.path, self.item, self.suite_start, self.label = Path(path), item, suite_start, label

    def write(self, row: dict) -> dict:
        row = {"item": self.item, **row, "t": round(time.time() - self.suite_start, 1)}
        line = json.dumps(row, default=_plain) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        print(f"{self.label}: {line.strip()}", flush=True)
        return row


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into a row")


@dataclasses.dataclass
class Context:
    """What an item sees: the settings, its deadline (``time.time()`` seconds), and
    :meth:`quiet` to pause the background compiles around timed loops."""

    settings: Settings
    deadline: float
    background_pid: int | None = None
    pause_ledger: Path | None = None
    cache_hits: int = 0

    def left(self) -> float:
        return self.deadline - time.time()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Stops the background child for the duration (its compile seconds leave it out:
        the interval goes to the pause ledger)."""
        pid = self.background_pid
        if pid is None:
            yield
            return
        start = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            if self.pause_ledger is not None:
                with open(self.pause_ledger, "a") as f:
                    f.write(f"{start} {time.time()}\n")


def paused_seconds(ledger: Path | None, start: float, end: float) -> float:
    """Seconds of ``[start, end]`` that the ledger's pauses cover."""
    if ledger is None or not ledger.exists():
        return 0.0
    total = 0.0
    for line in ledger.read_text().splitlines():
        a, b = map(float, line.split())
        total += max(0.0, min(b, end) - max(a, start))
    return total


def _count_cache_hits(ctx: Context) -> None:
    def listener(event: str, **kwargs: Any) -> None:
        if event == CACHE_HITS_EVENT:
            ctx.cache_hits += 1

    jax.monitoring.register_event_listener(listener)


@contextlib.contextmanager
def _cache_hits(ctx: Context, row: dict) -> Iterator[None]:
    """Sets ``row['cache_hits']``: programs loaded from the persistent cache meanwhile."""
    before = ctx.cache_hits
    yield
    row["cache_hits"] = ctx.cache_hits - before


def _global(batch: int) -> int:
    """A per-device batch as the global batch of every device of every process."""
    return batch * jax.device_count()


def _gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def _steady_rate(run_once: Callable[[], None], ctx: Context, count_per_call: int,
                 max_calls: int = 1000) -> tuple[float, int, float]:
    """``(per second, counted, seconds)`` of ``run_once`` (already compiled, blocking),
    called as often as ``timing_s`` and the deadline allow (at least twice, the first
    untimed, as a warm-up)."""
    run_once()
    with ctx.quiet():
        start = time.perf_counter()
        calls = 0
        budget = min(ctx.settings.timing_s, ctx.left() - 5)
        while calls < max_calls:
            run_once()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed + elapsed / calls > budget:
                break
        elapsed = time.perf_counter() - start
    return calls * count_per_call / elapsed, calls * count_per_call, elapsed


# ---- items ---------------------------------------------------------------------------------

def env_rows(ctx: Context) -> Iterator[dict]:
    """The machine: device kind and count, versions, XLA and JAX flags."""
    import flax
    import jaxlib

    devices = jax.local_devices()
    stats = devices[0].memory_stats() or {}
    yield {"kind": "env", "platform": devices[0].platform,
           "device_kind": devices[0].device_kind, "devices": len(devices),
           "processes": jax.process_count(), "memory_limit_gib": _gib(stats.get("bytes_limit")),
           "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
           "python": platform.python_version(), "host": platform.node(),
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
           "JAX_env": {k: v for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_P"))},
           "smoke": ctx.settings.smoke, "cache_dir": ctx.settings.cache_dir,
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def train_rows(resolution: int, batch: int, dtype: str) -> Callable[[Context], Iterator[dict]]:
    """The full training iteration (``bench.bench_train``) at one setting."""

    def rows(ctx: Context) -> Iterator[dict]:
        config = suite_config(ctx.settings, resolution, dtype)
        row: dict[str, Any] = {}
        with _cache_hits(ctx, row):
            result = bench.bench_train(config, resolution, _global(batch), steps=30, warmup=3,
                                       deadline=ctx.deadline - 5, timing=ctx.quiet)
        yield {"kind": "train", "resolution": resolution, "batch": result.batch, "dtype": dtype,
               "devices": result.devices, "images_per_s": round(result.images_per_second, 2),
               "ms_per_iteration": round(result.step_seconds * 1000, 2),
               "timed_steps": result.timed_steps, "lower_s": round(result.lower_seconds, 2),
               "compile_s": round(result.compile_seconds, 2),
               "needs_gib": _gib(result.device_bytes),
               "peak_gib": _gib(result.peak_bytes_in_use), **row}

    return rows


def search_batches(needed: Callable[[int], int], limit: int, start: int, step: int,
                   cap: int, time_left: Callable[[], bool]) -> Iterator[tuple[int, int, bool]]:
    """Probes ``(batch, bytes needed, fits)`` toward the largest batch (a multiple of
    ``step``, at most ``cap``) whose ``needed(batch) <= limit``: doubling from ``start``,
    then, after two fits, straight to the batch a line through the last two predicts, then
    bisecting between the largest fit and the smallest failure until they are one ``step``
    apart. Stops early when ``time_left()`` is false."""
    fits: dict[int, int] = {}
    lower, upper = None, None
    batch = start
    while batch is not None and time_left():
        need = needed(batch)
        ok = need <= limit
        yield batch, need, ok
        if ok:
            fits[batch] = need
            lower = batch
        else:
            upper = batch
        batch = _next_batch(fits, lower, upper, limit, start, step, cap)


def _next_batch(fits: dict[int, int], lower: int | None, upper: int | None, limit: int,
                start: int, step: int, cap: int) -> int | None:
    if lower is None:  # even the first probe failed: halve toward step
        smaller = (upper // 2) // step * step
        return smaller if smaller >= step and smaller < upper else None
    if upper is None:
        if lower >= cap:
            return None
        if len(fits) >= 2:
            (b0, m0), (b1, m1) = sorted(fits.items())[-2:]
            slope = (m1 - m0) / (b1 - b0)
            guess = b1 + (limit - m1) / slope if slope > 0 else 2 * b1
            guess = int(guess) // step * step
            return min(cap, max(guess, lower + step))
        return min(cap, 2 * lower)
    if upper - lower <= step:
        return None
    return max((lower + upper) // 2 // step * step, lower + step)


def max_batch_rows(ctx: Context) -> Iterator[dict]:
    """The largest bfloat16 batch whose 1024 iteration fits the device's memory, by XLA's
    buffer assignment of the ahead-of-time compiled program (nothing runs)."""
    resolution, per_device = ctx.settings.big
    start = _global(per_device)
    config = suite_config(ctx.settings, resolution, "bfloat16")
    stats = jax.local_devices()[0].memory_stats() or {}
    limit = stats.get("bytes_limit") or ctx.settings.memory_limit_bytes
    source = "device bytes_limit" if stats.get("bytes_limit") else "memory_limit_bytes"
    # a batch the step takes: each device's share splits into minibatch-stddev groups, the
    # whole batch into style-mixing groups
    step = math.lcm(jax.device_count() * config.D.mbstd_group_size,
                    config.G.style_mixing_groups)
    cap = 4 * start if ctx.settings.smoke else 1024
    probes: dict[int, dict] = {}

    def needed(batch: int) -> int:
        row: dict[str, Any] = {}
        with _cache_hits(ctx, row):
            _, report = bench.compile_iteration(config, resolution, batch)
        probes[batch] = {**row, "compile_s": round(report.compile_seconds, 2)}
        if report.device_bytes is None:
            raise RuntimeError("this backend reports no memory analysis of a compiled program")
        return report.device_bytes

    if limit is None:  # no device limit and none given: a stand-in from the first probe
        limit = needed(start)
        source = f"stand-in: batch {start}'s need"
    largest, smallest_failure = None, None
    for batch, need, fits in search_batches(needed, int(limit), start, step, cap,
                                            time_left=lambda: ctx.left() > 30):
        yield {"kind": "memory_probe", "resolution": resolution, "dtype": "bfloat16",
               "batch": batch, "needs_gib": _gib(need), "limit_gib": _gib(int(limit)),
               "fits": fits, **probes.get(batch, {})}
        if fits:
            largest = batch if largest is None else max(largest, batch)
        else:
            smallest_failure = batch if smallest_failure is None else min(smallest_failure,
                                                                           batch)
    exact = (largest is not None and smallest_failure is not None
             and smallest_failure - largest <= step)
    yield {"kind": "max_batch", "resolution": resolution, "dtype": "bfloat16",
           "largest_fitting": largest, "smallest_failing": smallest_failure, "step": step,
           "exact": exact, "limit_gib": _gib(int(limit)), "limit_source": source}


def _random_generator(ctx: Context, resolution: int) -> tuple[Any, dict]:
    """A float32 generator of the official widths (metrics sample in float32), random."""
    G = at_phase(build_networks(suite_config(ctx.settings, resolution))[0])
    variables = jax.jit(G.init)(jax.random.key(0), jnp.zeros((1, G.latent_size)))
    return G, variables


def _random_like(shapes: Any, scale: float = 0.05) -> Any:
    """Gaussian arrays of the given shapes, drawn on the host (nothing to compile)."""
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: jnp.asarray(
        scale * rng.standard_normal(s.shape, dtype=np.float32), s.dtype), shapes)


def random_lpips() -> dict:
    """LPIPS-VGG16 parameters with random weights (timing needs no real ones)."""
    x = jnp.zeros((1, 16, 16, 3))
    return _random_like(jax.eval_shape(lpips.LPIPS().init, jax.random.key(1), x, x)["params"])


def fid_rows(ctx: Context) -> Iterator[dict]:
    """Throughput of FID's fake side (generate + Inception + moments) at the big resolution,
    and the projected time of fid50k (real statistics are cached, so they do not count)."""
    resolution, _ = ctx.settings.big
    batch = _global(ctx.settings.metric_batch)
    G, variables = _random_generator(ctx, resolution)
    size = inception.INPUT_SIZE
    params = _random_like(jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                                         jnp.zeros((1, size, size, 3)))["params"])
    extractor = inception.InceptionFeatures(params)

    def once() -> None:
        frechet.generator_stats(G, variables, extractor, num_images=2 * batch,
                                batch_size=batch)

    row: dict[str, Any] = {}
    start = time.perf_counter()
    with _cache_hits(ctx, row):
        once()
    first = time.perf_counter() - start
    rate, images, _ = _steady_rate(once, ctx, 2 * batch)
    yield {"kind": "fid", "resolution": resolution, "batch": batch,
           "images_per_s": round(rate, 2), "images_timed": images,
           "first_call_s": round(first, 2), f"projected_{FID_IMAGES // 1000}k_s":
           round(FID_IMAGES / rate, 1), **row}


def ppl_rows(ctx: Context) -> Iterator[dict]:
    """Throughput of ppl_wend (pairs of images in W at t in {0, 1}, FFHQ crop, LPIPS) at the
    big resolution, and the projected time of its 100k pairs."""
    resolution, _ = ctx.settings.big
    batch = _global(ctx.settings.metric_batch)
    G, variables = _random_generator(ctx, resolution)
    params = random_lpips()

    def once() -> None:
        path_length.ppl_distances(G, variables, params, space="w", sampling="end",
                                  num_samples=2 * batch, crop=True, batch_size=batch)

    row: dict[str, Any] = {}
    start = time.perf_counter()
    with _cache_hits(ctx, row):
        once()
    first = time.perf_counter() - start
    rate, pairs, _ = _steady_rate(once, ctx, 2 * batch)
    yield {"kind": "ppl", "resolution": resolution, "batch": batch,
           "pairs_per_s": round(rate, 2), "images_per_s": round(2 * rate, 2),
           "pairs_timed": pairs, "first_call_s": round(first, 2),
           f"projected_{PPL_SAMPLES // 1000}k_s": round(PPL_SAMPLES / rate, 1), **row}


def projection_rows(ctx: Context) -> Iterator[dict]:
    """Projection steps per second at batch 1 and batch 32 (smoke: 4) at the big resolution:
    the time between two progress callbacks of one call, after a warm-up call."""
    resolution, _ = ctx.settings.big
    G, variables = _random_generator(ctx, resolution)
    model = generate.from_variables(suite_config(ctx.settings, resolution), G, variables)
    params = random_lpips()
    chunk = 5 if ctx.settings.smoke else 25
    knobs = dict(steps=2 * chunk, callback_every=chunk,
                 w_avg_samples=100 if ctx.settings.smoke else 10_000)
    for batch in ctx.settings.projection_batches:
        if ctx.left() < 20:
            yield {"kind": "skipped", "what": f"projection batch {batch}",
                   "reason": f"{ctx.left():.0f} s left in the item"}
            continue
        targets = np.random.default_rng(batch).integers(
            0, 256, (batch, resolution, resolution, G.num_channels)).astype(np.uint8)
        marks: list[float] = []

        def mark(progress: Any, marks: list[float] = marks) -> None:
            progress.loss  # a host copy: the chunk has finished  # noqa: B018
            marks.append(time.perf_counter())

        row: dict[str, Any] = {}
        start = time.perf_counter()
        with _cache_hits(ctx, row):
            for _ in project_batches(model, targets, params, batch_size=batch,
                                     callback=lambda p: None, **knobs):
                pass
        first = time.perf_counter() - start
        with ctx.quiet():
            for _ in project_batches(model, targets, params, batch_size=batch,
                                     callback=mark, **knobs):
                pass
        rate = batch * chunk / (marks[1] - marks[0])
        yield {"kind": "projection", "resolution": resolution, "batch": batch,
               "target_steps_per_s": round(rate, 2),
               "seconds_per_1000_steps_per_target": round(1000 / rate, 1),
               "first_call_s": round(first, 2), **row}


def phase_compile_rows(ctx: Context) -> Iterator[dict]:
    """Lower and compile seconds of every phase program of config F's schedule (float32,
    the local devices' minibatch), ahead of time, lowest resolution first."""
    full, _ = ctx.settings.big
    config = suite_config(ctx.settings, full)
    mesh = parallel.make_mesh()
    for resolution, batch in phase_programs(config, mesh.size):
        row: dict[str, Any] = {}
        start = time.time()
        with _cache_hits(ctx, row):
            _, report = bench.compile_iteration(config, resolution, batch, mesh)
        paused = paused_seconds(ctx.pause_ledger, start, time.time())
        lower_share = report.lower_seconds / max(report.lower_seconds
                                                 + report.compile_seconds, 1e-9)
        yield {"kind": "phase_compile", "resolution": resolution, "batch": batch,
               "dtype": config.compute_dtype,
               "lower_s": round(report.lower_seconds - paused * lower_share, 2),
               "compile_s": round(report.compile_seconds - paused * (1 - lower_share), 2),
               "paused_s": round(paused, 2), "hlo_instructions": report.hlo_instructions,
               "stablehlo_chars": report.stablehlo_chars,
               "needs_gib": _gib(report.device_bytes), **row}


BACKGROUND = "phase-compile"


@dataclasses.dataclass(frozen=True)
class Item:
    """One measurement: its name, how many seconds it needs at least to be worth starting,
    and the function yielding its rows."""

    name: str
    min_s: float
    rows: Callable[[Context], Iterator[dict]]


def suite_items(settings: Settings) -> list[Item]:
    """The items in priority order. The 1024 rows come first (the paper's setting; none was
    ever measured), then fid/ppl, the batch search and projection; the 256 rows, already in
    ``BENCHMARKS.md`` for an H200, come last. ``phase_compile`` runs in the background."""
    big, big_batch = settings.big

    def need(seconds: float) -> float:  # the smoke's items take seconds on any machine
        return 0.0 if settings.smoke else seconds

    items = [
        Item("env", 0, env_rows),
        *(Item(f"train-{big}-b{big_batch}-{dtype}", need(60), train_rows(big, big_batch, dtype))
          for dtype in ("bfloat16", "float32")),
        Item("fid", need(40), fid_rows),
        Item("ppl", need(40), ppl_rows),
        Item("max-batch", need(60), max_batch_rows),
        Item("projection", need(40), projection_rows),
    ]
    if settings.small is not None:
        small, small_batch = settings.small
        items += [Item(f"train-{small}-b{small_batch}-{dtype}", need(60),
                       train_rows(small, small_batch, dtype))
                  for dtype in ("bfloat16", "float32")]
    return [*items, Item(BACKGROUND, 0, phase_compile_rows)]


def item_names(settings: Settings) -> list[str]:
    return [item.name for item in suite_items(settings)]


# ---- the parent: budget, children, background -----------------------------------------------

def child_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of one item's child process: ``argv = [item, json of the call]``."""
    name, call = (sys.argv[1:] if argv is None else argv)
    call = json.loads(call)
    settings = Settings(**call["settings"])
    jax.config.update("jax_compilation_cache_dir", settings.cache_dir)
    if settings.smoke:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    ctx = Context(settings, call["deadline"], call.get("background_pid"),
                  Path(call["ledger"]) if call.get("ledger") else None)
    _count_cache_hits(ctx)
    writer = RowWriter(call["out"], name, call["suite_start"])
    item = {item.name: item for item in suite_items(settings)}[name]
    try:
        for row in item.rows(ctx):
            writer.write(row)
    except Exception as e:  # the row says what failed; the parent goes on with the next item
        writer.write({"kind": "error", "error": f"{type(e).__name__}: {e}"[:2000]})
        raise SystemExit(1) from e


def _spawn(name: str, call: dict, env: dict | None = None) -> subprocess.Popen:
    code = "from stylegan_jax.bench_suite import child_main; child_main()"
    return subprocess.Popen([sys.executable, "-c", code, name, json.dumps(call)],
                            env={**os.environ, **(env or {})})


def _finish(proc: subprocess.Popen, timeout: float) -> bool:
    """Waits up to ``timeout`` seconds; kills the child (and returns False) past it."""
    try:
        proc.wait(timeout=max(timeout, 0.1))
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        return False


# Children neither grab 75% of the device's memory up front (the default) nor leave less for
# one another: the background compiles beside the foreground item.
CHILD_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "1"}


def run_suite(settings: Settings, out: str | os.PathLike, items: Sequence[str] | None = None,
              background: bool = True) -> Path:
    """Runs the suite into the JSONL file ``out`` (appending) and returns its path.
    ``items`` selects items by name (default all, in priority order); ``background=False``
    runs ``phase-compile`` in the foreground, last, so that nothing runs beside the timed
    items."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = item_names(settings)
    chosen = list(names if items is None else items)
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(f"unknown bench-suite items {unknown}; choose from {names}")
    if "env" not in chosen:
        chosen.insert(0, "env")
    by_name = {item.name: item for item in suite_items(settings)}
    start = time.time()
    deadline = start + settings.budget_s
    Path(settings.cache_dir).mkdir(parents=True, exist_ok=True)
    ledger = out.with_name(out.name + f".pauses-{os.getpid()}")
    writer = RowWriter(out, "suite", start)
    base = {"settings": dataclasses.asdict(settings), "out": os.fspath(out),
            "suite_start": start}
    bg = None
    foreground = [n for n in chosen if n != BACKGROUND or not background]
    if background and BACKGROUND in chosen:
        bg = _spawn(BACKGROUND, {**base, "deadline": deadline}, CHILD_ENV)
    ran = []
    try:
        for name in foreground:
            left = deadline - time.time()
            if left < by_name[name].min_s or left < 1:
                writer.write({"kind": "skipped", "what": name,
                              "reason": f"{left:.0f} s of the budget left, the item needs "
                                        f"{by_name[name].min_s:.0f} s"})
                continue
            limit = min(settings.item_limit_s, left)
            call = {**base, "deadline": time.time() + limit - 2,
                    "background_pid": bg.pid if bg is not None and bg.poll() is None else None,
                    "ledger": os.fspath(ledger)}
            if not _finish(_spawn(name, call, CHILD_ENV), limit):
                writer.write({"kind": "timeout", "what": name, "limit_s": round(limit, 1)})
            if bg is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(bg.pid, signal.SIGCONT)  # in case a killed child had paused it
            ran.append(name)
        if bg is not None:
            if not _finish(bg, deadline - time.time()):
                writer.write({"kind": "timeout", "what": BACKGROUND,
                              "limit_s": round(settings.budget_s, 1)})
            ran.append(BACKGROUND)
    finally:
        if bg is not None and bg.poll() is None:
            _finish(bg, 0)
        ledger.unlink(missing_ok=True)
    writer.write({"kind": "done", "items": ran, "elapsed_s": round(time.time() - start, 1),
                  "budget_s": settings.budget_s})
    return out


# ---- the tables ------------------------------------------------------------------------------

def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a suite's JSONL output (a torn last line, from a killed call, is skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows), ""]


def markdown(rows: Sequence[dict]) -> str:
    """The suite's rows as the markdown of ``BENCHMARKS.md``: the machine, then one table per
    kind of measurement, the 1024 figures against their targets, then what was skipped, timed
    out or failed."""
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    lines = []
    for env in by_kind.get("env", [])[:1]:
        memory = ("no memory limit reported" if env["memory_limit_gib"] is None
                  else f"memory limit {env['memory_limit_gib']} GiB")
        lines += [f"{env['devices']} x {env['device_kind']} ({env['platform']}), "
                  f"{memory}; jax {env['jax']}, jaxlib "
                  f"{env['jaxlib']}, flax {env['flax']}, Python {env['python']}; XLA_FLAGS "
                  f"`{env['XLA_FLAGS'] or 'unset'}`; {env['date']}"
                  f"{' (smoke: tiny widths)' if env['smoke'] else ''}.", ""]
    sections = [
        ("train", "Training iteration",
         ["resolution", "batch", "dtype", "images/s", "ms/iteration", "timed", "lower s",
          "compile s", "XLA needs GiB", "peak GiB"],
         ["resolution", "batch", "dtype", "images_per_s", "ms_per_iteration", "timed_steps",
          "lower_s", "compile_s", "needs_gib", "peak_gib"]),
        ("memory_probe", "Batch search at the full resolution, bfloat16 (compile only)",
         ["batch", "XLA needs GiB", "limit GiB", "fits", "compile s"],
         ["batch", "needs_gib", "limit_gib", "fits", "compile_s"]),
        ("max_batch", "Largest bfloat16 batch",
         ["resolution", "largest fitting", "smallest failing", "exact", "limit"],
         ["resolution", "largest_fitting", "smallest_failing", "exact", "limit_source"]),
        ("fid", "FID throughput (generator + Inception, random weights)",
         ["resolution", "batch", "images/s", "fid50k projected s", "first call s"],
         ["resolution", "batch", "images_per_s", "projected_50k_s", "first_call_s"]),
        ("ppl", "PPL (ppl_wend) throughput (generator + LPIPS, random weights)",
         ["resolution", "batch", "pairs/s", "ppl 100k projected s", "first call s"],
         ["resolution", "batch", "pairs_per_s", "projected_100k_s", "first_call_s"]),
        ("projection", "Projection throughput",
         ["resolution", "batch", "target-steps/s", "s per target at 1,000 steps",
          "first call s"],
         ["resolution", "batch", "target_steps_per_s", "seconds_per_1000_steps_per_target",
          "first_call_s"]),
        ("phase_compile", "Compile time per phase program (config F schedule, float32)",
         ["resolution", "batch", "lower s", "compile s", "paused s", "HLO instructions",
          "cache hits"],
         ["resolution", "batch", "lower_s", "compile_s", "paused_s", "hlo_instructions",
          "cache_hits"]),
    ]
    for kind, title, header, keys in sections:
        if kind in by_kind:
            lines += [f"**{title}**", ""]
            lines += _table(header, [[r.get(k) for k in keys] for r in by_kind[kind]])
    lines += _against_targets(by_kind)
    problems = [r for k in ("skipped", "timeout", "error") for r in by_kind.get(k, [])]
    for r in problems:
        what = r.get("what", r["item"])
        detail = r.get("reason") or r.get("error") or f"killed at its {r.get('limit_s')} s limit"
        lines.append(f"- {r['kind']}: {what}: {detail}")
    for done in by_kind.get("done", []):
        lines.append(f"- the call took {done['elapsed_s']} s of its {done['budget_s']} s budget")
    return "\n".join(lines).rstrip() + "\n"


def _against_targets(by_kind: dict[str, list[dict]]) -> list[str]:
    """The targets table: each 1024 figure the rows hold beside its target and how far it is
    (the targets are for one GPU: with more devices the table says so and compares nothing)."""
    devices = by_kind.get("env", [{}])[0].get("devices", 1)
    found = []
    goal = TARGET_SPEEDUP * ROSINALITY_1024_B16_IMAGES_PER_S
    for row in by_kind.get("train", []):
        if (row["resolution"], row["batch"], row["dtype"]) == (1024, 16 * devices, "bfloat16"):
            rate = row["images_per_s"]
            found.append(("1024/b16 bfloat16 iteration, images/s", f"{rate:,.1f}",
                          f">= {goal:g} ({TARGET_SPEEDUP:g}x rosinality's "
                          f"{ROSINALITY_1024_B16_IMAGES_PER_S:g} on one H100)",
                          f"{rate / ROSINALITY_1024_B16_IMAGES_PER_S:.1f}x rosinality; "
                          + ("met" if rate >= goal else f"{goal / rate:.1f}x short")))
    for kind, count, limit, name in (("fid", FID_IMAGES, TARGET_FID50K_S, "fid50k"),
                                     ("ppl", PPL_SAMPLES, TARGET_PPL100K_S,
                                      "ppl_wend (100k pairs)")):
        for row in by_kind.get(kind, []):
            if row["resolution"] == 1024:
                took = row[f"projected_{count // 1000}k_s"]  # the key the item writes
                found.append((f"{name} at 1024, projected s", f"{took:,.1f}",
                              f"< {limit:g} s", "met" if took < limit else
                              f"{took / limit:.1f}x too slow"))
    if not found:
        return []
    if devices != 1:
        return ["**Against the targets**", "",
                f"- the targets are for one GPU; these rows are from {devices} devices", ""]
    return ["**Against the targets**", "",
            *_table(["figure", "measured", "target", "how far"], found)]
