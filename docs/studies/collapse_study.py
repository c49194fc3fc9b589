"""The measurements behind docs/unconditional-collapse.md (run from the repository root).

    python docs/studies/collapse_study.py eval [--raw] RUN_DIR [STEP ...]  # a line per checkpoint
    python docs/studies/collapse_study.py plot OUT.png KEY NAME=EVAL.jsonl ...  # top_class, modes
    python docs/studies/collapse_study.py mapping  # how a freshly initialised mapping spreads z
    python docs/studies/collapse_study.py classes OUT.png RUN ...  # channels by digit

``eval`` samples 5,000 images from the EMA generator (``--raw``: the training generator, the
checkpoint's ``state`` item) of each kept checkpoint (at the resolution
and fade the schedule had there, upscaled to full size) and reports: the share of the most
frequent digit class of the grey level (``top_class``; 0.1 for a uniform spread) and the
number of classes above 1%, stacked-digit modes and their KL (5,000 samples: a perfect
generator covers ~993), that KL split into the channels' digit frequencies (``kl_channels``,
the sum of the three per-channel KLs) and the dependence between channels (``kl_dependence``,
the rest: the real channels are independent), mean per-pixel colour (channel std; 0 for grey
data), the spread of samples over z (``pix_div``, mean per-pixel std), of the mapping output
(``w_spread = mean ||w - mean w|| / ||mean w||``) and of the styles (``style_std``: std over z
of the style scales, averaged over layers and channels), plus D's mean scores from the log.
``mapping`` initialises the demo's mapping network (128-d, lr multiplier 0.01) with 0, 1, 2, 4
and 8 layers (3 seeds each) and reports how its output w spreads over 4,000 z: the
participation ratio of w's covariance spectrum (``(sum l)^2 / sum l^2``, the number of
effective dimensions; 128 for isotropic w), ``w_spread`` and the mean pairwise cosine.
``classes`` samples 500 images of each run's EMA generator (``RUN``: a workdir, for its latest
checkpoint, or ``WORKDIR/checkpoints/STEP``, as every command takes) and draws, per run, a block of
ten rows: row d holds the first 16 single channels the classifier reads as digit d (what the
mode metric counts), and prints each run's per-channel digit frequencies against the data's.
``plot`` draws ``top_class`` or ``modes`` (as a fraction of 1,000) against images shown, one
line per run (PIL only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_collections
import numpy as np


def raw_variables(workdir: str, step: int) -> dict:
    """``G.apply`` variables of the *training* generator (not its EMA) of checkpoint ``step``,
    restored (and checksum-verified) as the training loop resumes it."""
    from stylegan_jax import parallel, training
    from stylegan_jax.checkpoint import G_EMA, STATE, Checkpointer
    from stylegan_jax.models import build_networks
    from stylegan_jax.runs import checkpoint_items, state_from_items

    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        config = ml_collections.ConfigDict(ckpt.restore_meta(step)["config"])
        G, D = build_networks(config)
        abstract = training.abstract_train_state(config, G, D, training.make_optimizer(config),
                                                 parallel.make_mesh())
        items = checkpoint_items(abstract) if G_EMA in ckpt.items(step) else {STATE: abstract}
        state = state_from_items(ckpt.restore(step, items)[0])
    finally:
        ckpt.close()
    return {"params": state.g_params, "stats": {"w_avg": state.w_avg}}


def evaluate(workdir: str, step: int, n: int = 5000, seed: int = 0, raw: bool = False) -> dict:
    import jax

    from stylegan_jax.digit_classifiers import digit_classifier, digit_frequencies
    from stylegan_jax.metrics import modes
    from stylegan_jax.runs import load_run

    run = load_run(workdir, step)  # G samples at the checkpoint's phase, full-size output
    G, variables = run.G, run.variables
    if raw:
        variables = raw_variables(workdir, run.step)
    k_z, k_noise = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(k_z, (n, G.latent_size))

    @jax.jit
    def generate(z, key):
        return G.apply(variables, z, None, rngs={"noise": key})

    images = np.concatenate([np.asarray(generate(z[i:i + 500], jax.random.fold_in(k_noise, i)))
                             for i in range(0, n, 500)])
    w = np.asarray(jax.jit(lambda z: G.apply(variables, z, None, method=type(G).map))(z[:1000]))
    classifier = digit_classifier()
    rgb = images if images.shape[-1] == 3 else np.repeat(images, 3, axis=-1)
    channel_digits = classifier.predict_channels(rgb)
    counts = modes.mode_histogram(channel_digits)
    kl = modes.kl_divergence(counts, modes.real_mode_distribution())
    kl_channels = sum(modes.kl_divergence(counts, digit_frequencies())
                      for counts in channel_counts(channel_digits))
    grey = classifier.predict_channels(images.mean(-1, keepdims=True))[:, 0]
    hist = np.bincount(grey, minlength=10) / n
    return dict(run=Path(workdir).name + (" raw" if raw else ""), kimg=round(step / 1000, 1),
                res=G.phase_resolution or G.resolution,
                top_class=round(float(hist.max()), 3), classes=int((hist > 0.01).sum()),
                modes=int(np.count_nonzero(counts)),
                modes_kl=round(kl, 3), kl_channels=round(kl_channels, 3),
                kl_dependence=round(kl - kl_channels, 3),
                colour=round(float(images.std(-1).mean()), 3),
                pix_div=round(float(images.std(0).mean()), 3),
                w_spread=round(float(np.linalg.norm(w - w.mean(0), axis=1).mean()
                                     / np.linalg.norm(w.mean(0))), 3),
                style_std=round(style_spread(variables["params"], w), 3))


def read_log(workdir: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``."""
    path = Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def d_scores(records: list[dict]) -> dict[int, dict]:
    """``{nimg: {'D_real', 'D_fake'}}``: D's mean logits logged at each tick."""
    return {r["nimg"]: {"D_real": round(r["score/real"], 2), "D_fake": round(r["score/fake"], 2)}
            for r in records if "score/real" in r}


def style_spread(g_params: dict, w: np.ndarray) -> float:
    """Mean over synthesis layers and channels of the std over z of the style scale
    (``StyleMod`` affine of ``w``, run-time weights): how much z modulates the synthesis."""
    from stylegan_jax.layers import equalized_scale

    stds = []
    for layer in g_params["synthesis"].values():
        if "StyleMod" in layer:
            kernel = np.asarray(layer["StyleMod"]["affine"]["kernel"])
            style = w @ kernel * equalized_scale(kernel.shape[0], 1.0, 1.0)
            stds.append(style[:, :kernel.shape[1] // 2].std(0).mean())
    return float(np.mean(stds)) if stds else 0.0


def mapping_spread(layers: int, seed: int, n: int = 4000) -> dict:
    """Effective dimensions, spread and mean pairwise cosine of a fresh mapping's w."""
    import jax

    from stylegan_jax.networks import MappingNetwork

    net = MappingNetwork(latent_size=128, dlatent_size=128, mapping_fmaps=128,
                         mapping_layers=layers)
    z = jax.random.normal(jax.random.key(100 + seed), (n, 128))
    w = np.asarray(net.apply(net.init(jax.random.key(seed), z[:1]), z))
    eig = np.linalg.eigvalsh(np.cov(w.T))
    unit = w[:500] / np.linalg.norm(w[:500], axis=1, keepdims=True)
    mean = np.linalg.norm(w.mean(0))
    return dict(participation_ratio=eig.sum() ** 2 / (eig ** 2).sum(),
                w_spread=np.linalg.norm(w - w.mean(0), axis=1).mean() / mean if layers else None,
                mean_cosine=(unit @ unit.T)[np.triu_indices(500, 1)].mean())


def plot(out: str, series: dict[str, list[tuple[float, float]]], key: str = "top_class") -> None:
    """A small line chart (PIL): ``key`` (0..1) against kimg, one coloured line per run."""
    from PIL import Image, ImageDraw

    width, height, left, bottom, top, right = 520, 300, 50, 30, 20, 150
    xmax = max(x for points in series.values() for x, _ in points)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(x, y):
        return left + x / xmax * plot_w, top + (1 - y) * plot_h

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for y in (0.1, 0.25, 0.5, 0.75, 1.0):
        draw.line([xy(0, y), xy(xmax, y)], fill=(220, 220, 220))
        draw.text((5, xy(0, y)[1] - 6), f"{y:.2f}", fill="black")
    for x in np.linspace(0, xmax, 5):
        draw.text((xy(x, 0)[0] - 8, top + plot_h + 5), f"{x:.0f}k", fill="black")
    colours = ["red", "blue", "green", "purple", "orange", "black"]
    for i, (name, points) in enumerate(series.items()):
        c = colours[i % len(colours)]
        draw.line([xy(x, y) for x, y in sorted(points)], fill=c, width=2)
        draw.text((left + plot_w + 10, top + 15 * i), name, fill=c)
    draw.text((left, 3), f"{key} vs images shown", fill="black")
    img.save(out, optimize=True)


def channel_counts(channel_digits: np.ndarray) -> np.ndarray:
    """Digits ``[N, C]`` -> how often each channel shows each digit, ``[C, 10]``."""
    return np.stack([np.bincount(col, minlength=10) for col in np.asarray(channel_digits).T])


def class_rows(path: str, per_class: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Grey ``[10 * 32, per_class * 32]`` image in [-1, 1] (row d: channels classified as d,
    blank where fewer) and the digit frequencies ``[3, 10]`` of 500 samples' channels."""
    import jax

    from stylegan_jax.digit_classifiers import digit_classifier
    from stylegan_jax.metrics import modes
    from stylegan_jax.runs import load_run

    run = load_run(path)
    images = np.asarray(modes.generator_sampler(run.G, run.variables)(jax.random.key(0), 500))
    digits = digit_classifier().predict_channels(images)
    rows = []
    for d in range(10):
        found = [images[i, :, :, c] for i, c in np.argwhere(digits == d)[:per_class]]
        found += [np.full(images.shape[1:3], -1.0)] * (per_class - len(found))
        rows.append(np.concatenate(found, axis=1))
    return np.concatenate(rows, axis=0), channel_counts(digits) / len(digits)


def main(argv: list[str]) -> None:
    if argv[:1] == ["eval"]:
        raw = "--raw" in argv
        args = [a for a in argv[1:] if a != "--raw"]
        workdir = args[0]
        steps = [int(s) for s in args[1:]] or sorted(
            int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit())
        scores = d_scores(read_log(workdir))
        for step in steps:
            print(json.dumps({**evaluate(workdir, step, raw=raw), **scores.get(step, {})}),
                  flush=True)
    elif argv[:1] == ["mapping"]:
        for layers in (0, 1, 2, 4, 8):
            runs = [mapping_spread(layers, seed) for seed in range(3)]
            print(json.dumps({"mapping_layers": layers, **{
                k: None if runs[0][k] is None else round(float(np.mean([r[k] for r in runs])), 2)
                for k in runs[0]}}))
    elif argv[:1] == ["classes"] and len(argv) >= 3:
        from PIL import Image

        from stylegan_jax.digit_classifiers import digit_frequencies

        blocks = []
        for run in argv[2:]:
            try:
                block, freqs = class_rows(run)
            except (FileNotFoundError, ValueError) as e:
                raise SystemExit(f"collapse_study.py classes: {e}") from None
            blocks += [block, np.full((block.shape[0], 8), 1.0)]
            print(json.dumps({"run": run, "data": np.round(digit_frequencies(), 3).tolist(),
                              "channels": np.round(freqs, 3).tolist()}))
        grid = np.concatenate(blocks[:-1], axis=1)
        Image.fromarray(np.clip((grid + 1) * 127.5, 0, 255).astype(np.uint8)).save(
            argv[1], optimize=True)
    elif argv[:1] == ["plot"]:
        key, scale = argv[2], 1000.0 if argv[2] == "modes" else 1.0
        series = {}
        for spec in argv[3:]:
            name, path = spec.split("=", 1)
            rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
            series[name] = [(r["kimg"], r[key] / scale) for r in rows]
        plot(argv[1], series, key if scale == 1 else f"{key} / 1000")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
