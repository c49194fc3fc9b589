"""Projecting image files and writing what came out: the library behind ``stylegan-jax project``.

Per target ``NAME`` (the file's stem, made unique) under ``outdir``: ``NAME/target.png`` (the
target as the model sees it: centre-cropped and resized as ``prepare --fit crop``),
``NAME/proj.png`` (the projection), ``NAME/projected_w.npz`` (:func:`save_projected`: ``w``
and the noise inputs, which :func:`load_projected` gives back ready for
``Model.generate(w=w, noise=noise)``), optionally ``NAME/proj.gif`` (the optimisation every K
steps), and one line per target in ``outdir/projections.jsonl`` (written as each batch ends).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stylegan_jax import projection
from stylegan_jax.data.images import read_target
from stylegan_jax.figures import Sources, save_gif
from stylegan_jax.generate import Model
from stylegan_jax.images import to_uint8
from stylegan_jax.logs import save_png
from stylegan_jax.metrics import progress

RESULTS_FILE = "projections.jsonl"


def target_names(paths: Sequence[Path]) -> list[str]:
    """A unique output name per file: its stem, with ``-2``, ``-3``, ... on repeats."""
    names, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def save_projected(path: str | Path, w: np.ndarray, noise: Sequence[np.ndarray],
                   **meta: Any) -> None:
    """One target's ``w`` (``[D]`` or W+ ``[L, D]``) and noise inputs (``[h, w, 1]`` each) as
    an ``.npz``, with ``meta`` (numbers, strings) alongside."""
    arrays = {"w": np.asarray(w, np.float32),
              **{f"noise{i}": np.asarray(n, np.float32) for i, n in enumerate(noise)},
              **{k: np.asarray(v) for k, v in meta.items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load_projected(path: str | Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(w [1, ...], noise [[1, h, w, 1], ...])`` of a :func:`save_projected` file, ready
    for ``Model.generate(w=w, noise=noise)``."""
    try:
        with np.load(path) as f:
            if "w" not in f:
                raise ValueError(f"{path}: not a projected_w.npz (no 'w' array)")
            layers = sorted((k for k in f.files if k.startswith("noise") and k[5:].isdigit()),
                            key=lambda k: int(k[5:]))
            return f["w"][None], [f[k][None] for k in layers]
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read it as an .npz ({e})") from None


def load_projections(outdir: str | Path, num_layers: int) -> tuple[list[str], Sources]:
    """Every ``NAME/projected_w.npz`` under a ``project`` output directory (sorted by name)
    as figure :class:`~stylegan_jax.figures.Sources`: w on every layer (a W projection
    repeated), each with its own noise."""
    files = sorted(Path(outdir).glob("*/projected_w.npz"))
    if not files:
        raise FileNotFoundError(f"{outdir}: no NAME/projected_w.npz (the output of "
                                "stylegan-jax project) there")
    ws, noises = [], []
    for f in files:
        w, noise = load_projected(f)
        if w.ndim == 2:
            w = np.repeat(w[:, None], num_layers, axis=1)
        if w.shape[1] != num_layers or len(noise) != num_layers:
            raise ValueError(f"{f}: projected with a model of {len(noise)} layers, not this "
                             f"one's {num_layers}")
        ws.append(w)
        noises.append(noise)
    noise = [np.concatenate(layer) for layer in zip(*noises, strict=True)]
    return [f.parent.name for f in files], Sources(np.concatenate(ws), noise)


def _finite(x: float) -> float | None:
    """JSON has no infinity (the PSNR of an exact reproduction): ``None`` then."""
    return float(x) if np.isfinite(x) else None


def read_targets(model: Model, paths: Sequence[str | Path], *,
                 grey_to_rgb: bool = False) -> np.ndarray:
    """uint8 targets ``[N, r, r, C]`` for ``model`` from image files (one-line errors that
    name the file, see :func:`stylegan_jax.data.images.read_target`)."""
    return np.stack([read_target(p, model.resolution, model.G.num_channels,
                                 grey_to_rgb=grey_to_rgb) for p in paths])


def project_files(model: Model, paths: Sequence[str | Path], lpips_params: Any,
                  outdir: str | Path, *, classes: Sequence[int | None] | None = None,
                  grey_to_rgb: bool = False, gif_every: int = 0,
                  **kwargs: Any) -> list[dict]:
    """Projects the image files ``paths`` with :func:`stylegan_jax.projection.project_batches`
    (``kwargs``: its options and :class:`~stylegan_jax.projection.Recipe` fields) and writes
    the module docstring's files; returns the JSONL rows. ``gif_every`` > 0 records a GIF
    frame every that many steps (which also sets the progress interval)."""
    paths = [Path(p) for p in paths]
    targets = read_targets(model, paths, grey_to_rgb=grey_to_rgb)
    names = target_names(paths)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    recipe = projection.Recipe(**{k: kwargs.pop(k) for k in list(kwargs)
                                  if k in projection.Recipe.__dataclass_fields__})
    frames: dict[int, list[np.ndarray]] = {}
    rows = []
    with progress.bar(len(paths) * recipe.steps, "project") as bar, \
            open(outdir / RESULTS_FILE, "a") as results:
        last_step = [0]

        def on_progress(p: projection.Progress) -> None:
            loss = p.loss  # a host copy: waits for the chunk, so the bar counts finished steps
            bar.update((p.batch.stop - p.batch.start) * (p.step - last_step[0]))
            bar.set_postfix(loss=f"{loss.mean():.4f}")  # mean LPIPS (+ noise regulariser)
            last_step[0] = 0 if p.step == p.steps else p.step
            if gif_every:
                images = to_uint8(model.generate(w=p.w, noise=p.noise))
                for i, image in zip(range(p.batch.start, p.batch.stop), images, strict=True):
                    frames.setdefault(i, []).append(image)

        batches = projection.project_batches(
            model, targets, lpips_params, classes=classes, recipe=recipe,
            callback=on_progress, callback_every=gif_every or max(recipe.steps // 20, 1),
            **kwargs)
        for which, result in batches:
            for j, i in enumerate(range(which.start, which.stop)):
                where = outdir / names[i]
                save_png(where / "target.png", targets[i])
                save_png(where / "proj.png", result.images[j])
                save_projected(where / "projected_w.npz", result.w[j],
                               [n[j] for n in result.noise], space=result.space,
                               steps=result.steps, lpips=result.lpips[j])
                if gif_every:
                    save_gif(where / "proj.gif", np.stack(frames.pop(i)))
                row = {"target": str(paths[i]), "name": names[i], "space": result.space,
                       "steps": result.steps, "lpips": float(result.lpips[j]),
                       "start_lpips": float(result.start_lpips[j]),
                       "psnr": _finite(result.psnr[j])}
                if classes is not None and classes[i] is not None:
                    row["class"] = int(classes[i])
                results.write(json.dumps(row) + "\n")
                rows.append(row)
            results.flush()
    return rows
