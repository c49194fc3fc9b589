"""The paper's figures from a loaded :class:`~stylegan_jax.generate.Model`: style mixing
(Figure 3), stochastic variation (Figures 4 and 5), truncation (Figure 8) and interpolation.

Figure functions return *cells* ``[rows, columns, r, r, C]`` (float, ~[-1, 1]; blank cells -1)
so tests and notebooks can look at single images; :func:`figure_image` turns them into one
uint8 grid and :func:`write_figure` writes a figure kind's files (the CLI's ``figure``).
On a conditional model every figure draws ``class_index`` if given, else each seed's own class
(``seed % num_classes``, :func:`~stylegan_jax.generate.seed_classes`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from stylegan_jax.generate import Model, Noise, check_psi, named_styles, style_layers
from stylegan_jax.images import to_uint8
from stylegan_jax.latents import lerp, slerp
from stylegan_jax.logs import image_grid, save_png

TRUNCATION_PSIS = (1.0, 0.7, 0.5, 0.0, -0.5, -1.0)  # the paper's Figure 8
KINDS = ("mixing", "noise", "truncation", "interpolation", "edit")
EDIT_AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0)  # in standard deviations along the direction


def figure_image(cells: np.ndarray) -> np.ndarray:
    """Cells ``[rows, columns, r, r, C]`` -> one uint8 image ``[rows*r, columns*r, C]``."""
    rows, cols = cells.shape[:2]
    return image_grid(to_uint8(cells.reshape(rows * cols, *cells.shape[2:])), cols)


def _w_plus(w: np.ndarray, num_layers: int) -> np.ndarray:
    return np.repeat(w[:, None, :], num_layers, axis=1)


@dataclasses.dataclass(frozen=True)
class Sources:
    """The images a figure starts from: per-layer w ``[n, num_layers, D]`` and their noise,
    either one realisation for all (a noise seed, or ``'stored'``) or per-layer arrays
    ``[n, h, w, 1]`` of their own (a projection's optimised noise)."""

    w: np.ndarray
    noise: Noise = 0

    def per_image(self, model: Model) -> list[np.ndarray]:
        """The noise as per-layer arrays with one row per image."""
        layers = model.noise(self.noise) if isinstance(self.noise, int | str) else self.noise
        return [np.broadcast_to(a, (len(self.w), *np.shape(a)[1:])) for a in layers]


def seed_sources(model: Model, seeds: Sequence[int], *, noise: Noise = 0,
                 class_index: int | None = None) -> Sources:
    """:class:`Sources` for seeds: their mapped w on every layer, one noise realisation."""
    return Sources(_w_plus(model.map(class_index=class_index, seeds=seeds), model.num_layers),
                   noise)


def mixing_cells(model: Model, rows: Sources, cols: Sources, layers: Sequence[int], *,
                 psi: float | None = None, cutoff: int | None = None) -> np.ndarray:
    """Figure 3 from any sources (seeds, projections): A images down the first column, B
    along the first row; cell (i, j) is A_i with B_j's w on ``layers`` and A_i's noise."""
    a, b = rows.w, cols.w
    mixed = np.repeat(a[:, None], len(b), axis=1)
    mixed[:, :, list(layers)] = b[None][:, :, list(layers)]
    w = np.concatenate([a, b, mixed.reshape(-1, *a.shape[1:])])
    shared = isinstance(rows.noise, int | str) and rows.noise == cols.noise
    noise = rows.noise if shared else [
        np.concatenate([na, nb, np.repeat(na, len(b), axis=0)])
        for na, nb in zip(rows.per_image(model), cols.per_image(model), strict=True)]
    images = model.generate(w=w, psi=psi, cutoff=cutoff, noise=noise)
    n_rows, n_cols = len(a), len(b)
    cells = np.full((n_rows + 1, n_cols + 1, *images.shape[1:]), -1.0, np.float32)
    cells[1:, 0] = images[:n_rows]
    cells[0, 1:] = images[n_rows:n_rows + n_cols]
    cells[1:, 1:] = images[n_rows + n_cols:].reshape(n_rows, n_cols, *images.shape[1:])
    return cells


def mixing_figure(model: Model, row_seeds: Sequence[int], col_seeds: Sequence[int],
                  layers: Sequence[int], *, psi: float | None = None, cutoff: int | None = None,
                  noise: Noise = 0, class_index: int | None = None) -> np.ndarray:
    """Figure 3: source A images down the first column, source B along the first row; cell
    (i, j) is A_i with B_j's styles on ``layers`` (e.g. ``style_layers('coarse', L)``)."""
    return mixing_cells(model, seed_sources(model, row_seeds, noise=noise,
                                            class_index=class_index),
                        seed_sources(model, col_seeds, noise=noise, class_index=class_index),
                        layers, psi=psi, cutoff=cutoff)


def edit_cells(model: Model, rows: Sources, direction: np.ndarray, amounts: Sequence[float],
               layers: Sequence[int] | None = None, *, psi: float | None = None,
               cutoff: int | None = None) -> np.ndarray:
    """A row per source, a column per amount k: the source's w moved by ``k * direction``
    (``[D]``, e.g. an attribute's SVM normal from ``stylegan_jax.editing``) on ``layers``
    (default all), with the source's own noise."""
    direction = np.asarray(direction, np.float32)
    if direction.shape != (rows.w.shape[-1],):
        raise ValueError(f"the direction has shape {list(direction.shape)}; this model's w "
                         f"has {rows.w.shape[-1]} dimensions")
    on = np.zeros((model.num_layers, 1), np.float32)
    on[list(range(model.num_layers) if layers is None else layers)] = 1.0
    amounts = np.asarray(amounts, np.float32)
    w = rows.w[:, None] + amounts[None, :, None, None] * on * direction
    noise = [np.repeat(a, len(amounts), axis=0) for a in rows.per_image(model)]
    images = model.generate(w=w.reshape(-1, *rows.w.shape[1:]), psi=psi, cutoff=cutoff,
                            noise=noise)
    return images.reshape(len(rows.w), len(amounts), *images.shape[1:])


def noise_split(num_layers: int) -> int:
    """First "fine" noise layer: 8 (64x64 and up) as in the paper's Figure 5, or half the
    layers for models of 32x32 and less, where 64x64 does not exist."""
    return 8 if num_layers > 8 else num_layers // 2


def noise_detail_figure(model: Model, seeds: Sequence[int], *, samples: int = 32,
                        shown: int = 4, psi: float | None = None, cutoff: int | None = None,
                        class_index: int | None = None) -> np.ndarray:
    """Figure 4: per seed (row), the same w under noise seeds 0..``shown``-1, then the
    per-pixel standard deviation over noise seeds 0..``samples``-1 (shown, as officially, as
    4x the std of the 8-bit images)."""
    if not 2 <= shown <= samples:
        raise ValueError(f"need 2 <= shown <= samples, got shown={shown}, samples={samples}")
    w = model.map(class_index=class_index, seeds=seeds)
    realisations = [model.noise(k) for k in range(samples)]
    noise = [np.concatenate(layer) for layer in zip(*realisations, strict=True)]
    rows = []
    for wi in w:
        images = model.generate(w=np.repeat(wi[None], samples, 0), psi=psi, cutoff=cutoff,
                                noise=noise)
        std = 4.0 * images.std(axis=0) - 1.0
        rows.append(np.concatenate([images[:shown], std[None]]))
    return np.stack(rows)


def noise_components_figure(model: Model, seeds: Sequence[int], *, noise: int | str = 0,
                            psi: float | None = None, cutoff: int | None = None,
                            class_index: int | None = None) -> np.ndarray:
    """Figure 5: per seed (row), noise seed ``noise`` applied to all layers, none, the coarse
    layers only (below :func:`noise_split`) and the fine layers only; other layers get 0."""
    L, split = model.num_layers, noise_split(model.num_layers)
    w = model.map(class_index=class_index, seeds=seeds)
    columns = [model.generate(w=w, psi=psi, cutoff=cutoff, noise=model.noise(noise, layers))
               for layers in (range(L), (), range(split), range(split, L))]
    return np.stack(columns, axis=1)


def truncation_figure(model: Model, seeds: Sequence[int],
                      psis: Sequence[float] = TRUNCATION_PSIS, *, cutoff: int | None = None,
                      noise: Noise = 0, class_index: int | None = None) -> np.ndarray:
    """Figure 8: a row per seed, a column per psi (truncation on layers ``< cutoff``)."""
    for psi in psis:
        check_psi(psi)
    w = model.map(class_index=class_index, seeds=seeds)
    return np.stack([model.generate(w=w, psi=p, cutoff=cutoff, noise=noise) for p in psis],
                    axis=1)


def interpolation_frames(model: Model, seeds: Sequence[int], steps: int = 16,
                         space: str = "w", *, psi: float | None = None,
                         cutoff: int | None = None, noise: Noise = 0,
                         class_index: int | None = None) -> np.ndarray:
    """Frames ``[(len(seeds)-1)*steps + 1, r, r, C]`` through the seeds' images in order:
    ``space='w'`` lerps the mapped w, ``'z'`` slerps the direction of z (and lerps its
    length, so unnormalised mapping networks see latents of the usual size) then maps; a
    conditional model's one-hot labels are lerped alongside (i.e. its label embedding), so
    frames between seeds of different classes pass from one class to the other."""
    if space not in ("w", "z"):
        raise ValueError(f"interpolation space must be 'w' or 'z', got {space!r}")
    if len(seeds) < 2 or steps < 1:
        raise ValueError("interpolation needs at least 2 seeds and steps >= 1")
    ts = np.arange(steps) / steps

    def path(ends: np.ndarray, between) -> np.ndarray:
        points = [between(a, b, t) for a, b in itertools.pairwise(ends) for t in ts]
        return np.stack([*points, ends[-1]]).astype(np.float32)

    if space == "w":
        w = path(model.map(class_index=class_index, seeds=seeds), lerp)
    else:
        z = path(model.z(seeds), lambda a, b, t: slerp(a, b, t) * lerp(
            np.linalg.norm(a), np.linalg.norm(b), t))
        labels = model.labels(len(seeds), class_index, seeds)
        w = model.map(z, labels=None if labels is None else path(labels, lerp))
    return model.generate(w=w, psi=psi, cutoff=cutoff, noise=noise)


def save_gif(path: str | Path, frames: np.ndarray, fps: float = 12.0) -> None:
    """uint8 frames ``[F, H, W, C]`` -> a looping animated GIF."""
    images = [Image.fromarray(f.squeeze(-1) if f.shape[-1] == 1 else f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000.0 / fps,
                   loop=0)


def write_figure(model: Model, kind: str, outdir: str | Path, seeds: Sequence[int], *,
                 col_seeds: Sequence[int] = (), styles: Sequence[str] = (),
                 psi: float | None = None, cutoff: int | None = None,
                 psis: Sequence[float] = TRUNCATION_PSIS, steps: int = 16, space: str = "w",
                 fps: float = 12.0, samples: int = 32, noise: int | str = 0,
                 class_index: int | None = None, rows: Sources | None = None,
                 cols: Sources | None = None, direction: np.ndarray | None = None,
                 direction_name: str = "direction",
                 amounts: Sequence[float] = EDIT_AMOUNTS) -> list[Path]:
    """Writes figure ``kind`` under ``outdir`` and returns the files: ``mixing-STYLE.png``
    per style range (default: the named ranges the model has), ``noise-detail.png`` and
    ``noise-components.png``, ``truncation.png``, ``interpolation-SPACE.gif`` with its
    frames in ``interpolation-SPACE/``, or ``edit-NAME.png`` (``direction`` moved by
    ``amounts`` on the ``styles`` layers, default all). ``rows`` and ``cols`` (e.g.
    projections) replace the row and column seeds of ``mixing`` and the rows of ``edit``."""
    outdir = Path(outdir)
    common = dict(cutoff=cutoff, class_index=class_index)
    written = []

    def sources(given: Sources | None, seed_list: Sequence[int]) -> Sources:
        return given or seed_sources(model, seed_list, noise=noise, class_index=class_index)

    if kind == "mixing":
        if not col_seeds and cols is None:
            raise ValueError("the mixing figure needs column seeds (source B)")
        if not styles:
            styles = named_styles(model.num_layers)
        ranges = {s: style_layers(s, model.num_layers) for s in styles}  # all checked first
        a, b = sources(rows, seeds), sources(cols, col_seeds)
        for name, layers in ranges.items():
            cells = mixing_cells(model, a, b, layers, psi=psi, cutoff=cutoff)
            written.append(outdir / f"mixing-{name}.png")
            save_png(written[-1], figure_image(cells))
    elif kind == "edit":
        if direction is None:
            raise ValueError("the edit figure needs a direction (a .npy of w's size)")
        layers = (None if not styles else sorted({i for spec in styles
                                                  for i in style_layers(spec, model.num_layers)}))
        cells = edit_cells(model, sources(rows, seeds), direction, amounts, layers, psi=psi,
                           cutoff=cutoff)
        written = [outdir / f"edit-{direction_name}.png"]
        save_png(written[0], figure_image(cells))
    elif kind == "noise":
        written = [outdir / "noise-detail.png", outdir / "noise-components.png"]
        save_png(written[0], figure_image(noise_detail_figure(
            model, seeds, samples=samples, psi=psi, **common)))
        save_png(written[1], figure_image(noise_components_figure(
            model, seeds, noise=noise, psi=psi, **common)))
    elif kind == "truncation":
        written = [outdir / "truncation.png"]
        save_png(written[0], figure_image(truncation_figure(model, seeds, psis, noise=noise,
                                                            **common)))
    elif kind == "interpolation":
        frames = to_uint8(interpolation_frames(model, seeds, steps, space, psi=psi,
                                               noise=noise, **common))
        for i, frame in enumerate(frames):
            save_png(outdir / f"interpolation-{space}" / f"frame{i:04d}.png", frame)
        written = [outdir / f"interpolation-{space}.gif"]
        save_gif(written[0], frames, fps)
    else:
        raise ValueError(f"unknown figure kind {kind!r}; one of {list(KINDS)}")
    return written
