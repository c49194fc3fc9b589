"""Many stacked-digits variants trained side by side, mode coverage tracked by the training loop
(docs/unconditional-collapse.md, section 7). Run from the repository root, on a box with
many cores or a GPU, after ``stylegan-jax prepare --dataset stacked_digits --data_dir DATA``:

    python docs/studies/collapse_sweep.py DATA OUT SECONDS [NAME ...]

Each variant (default: all of ``VARIANTS``) is ``stylegan-jax train --config
experiments/stacked_digits.py:ROW FLAGS`` with the ``modes`` metric (26,000 samples) every 30k
images, up to 300k images; all are stopped after SECONDS. ``OUT/sweep.jsonl`` (rewritten every
20 s, so a killed sweep still leaves it) has a line per variant and evaluation: kimg, modes,
KL, D's scores. Runs are in ``OUT/NAME``, logs in ``OUT/NAME.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from collapse_study import d_scores, read_log

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "B": ("B", []),
    "F": ("F", []),
    "E": ("E", []),
    "F_map2": ("F", ["G.mapping_layers=2"]),
    "E_map2": ("E", ["G.mapping_layers=2"]),
    "E_map2_seed2": ("E", ["G.mapping_layers=2", "seed=2"]),
    "E_map1": ("E", ["G.mapping_layers=1"]),
    "E_map0": ("E", ["G.mapping_layers=0"]),
    "F_mix50": ("F", ["G.style_mixing_prob=0.5"]),
    "F_map2_mix50": ("F", ["G.mapping_layers=2", "G.style_mixing_prob=0.5"]),
    "F_mb64": ("F", ["sched.minibatch_base=64"]),
    "E_mb64": ("E", ["sched.minibatch_base=64"]),
    "E_map2_mb64": ("E", ["G.mapping_layers=2", "sched.minibatch_base=64"]),
    "F_lr001": ("F", ["sched.G_lrate_base=0.001", "sched.D_lrate_base=0.001"]),
    "F_gamma10": ("F", ["loss.r1_gamma=10.0"]),
    "F_no_growing": ("F", ["sched.lod_initial_resolution=32"]),
}
COMMON = ["total_kimg=300.0", "metrics=('modes',)", "metrics_every_kimg=30.0",
          "dataset.workers=2", "keep_checkpoints=1"]


def launch(name: str, data_dir: str, out: Path) -> subprocess.Popen:
    row, flags = VARIANTS[name]
    args = [sys.executable, "-m", "stylegan_jax.cli", "train",
            "--config", f"experiments/stacked_digits.py:{row}", "--workdir", str(out / name),
            *(f"--config.{f}" for f in [f"dataset.data_dir={data_dir}", *COMMON, *flags])]
    with open(out / f"{name}.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def collect(out: Path, names: list[str]) -> None:
    """``OUT/sweep.jsonl`` from the runs' ``metrics.jsonl`` (modes lines, with the D scores
    logged at the same image count)."""
    rows = []
    for name in names:
        if not (out / name / "metrics.jsonl").exists():
            continue
        records = read_log(out / name)
        scores = d_scores(records)
        rows += [dict(run=name, kimg=round(r["nimg"] / 1000, 1), modes=int(r["metrics/modes"]),
                      modes_kl=round(r["metrics/modes_kl"], 3), **scores.get(r["nimg"], {}))
                 for r in records if "metrics/modes" in r]
    (out / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    data_dir, out, seconds, names = argv[0], Path(argv[1]), argv[2], argv[3:] or list(VARIANTS)
    if unknown := [n for n in names if n not in VARIANTS]:
        raise SystemExit(f"collapse_sweep.py: unknown variant(s) {unknown}; "
                         f"known: {list(VARIANTS)}")
    try:
        seconds = float(seconds)
    except ValueError:
        raise SystemExit(f"collapse_sweep.py: SECONDS must be a number, got {seconds!r}") from None
    if not Path(data_dir).is_dir():
        raise SystemExit(f"collapse_sweep.py: data directory {data_dir} does not exist (run "
                         f"stylegan-jax prepare --dataset stacked_digits --data_dir {data_dir})")
    out.mkdir(parents=True, exist_ok=True)
    procs = {name: launch(name, data_dir, out) for name in names}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(min(20.0, max(0.0, deadline - time.monotonic())))
        collect(out, names)
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs.values():
        p.wait()
    collect(out, names)
    print({name: p.returncode for name, p in procs.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
