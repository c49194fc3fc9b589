"""Unconditional stacked digits (three bundled digits in the colour channels, 1,000 modes),
32x32, on 2 CPU cores: the mode-collapse benchmark of docs/unconditional-collapse.md.

Deviation from config F, measured there (section 5): **no mapping network**
(``G.mapping_layers=0``: w is the pixel-normalised z; styles, instance norm, constant input,
noise and style mixing as in F), and 24k images. With the 8-layer mapping of config F this
benchmark loses its modes after ~12k images (206 of 1,000 at 24k, 41 at 90k); without it the
same schedule keeps them: `stylegan-jax metrics --metrics modes` on the 24k-image checkpoint
gave 899 modes, KL 1.35 (one seed; target >= 900 modes and KL <= 0.3, so still not reached;
longer runs not measured). Config F itself: add ``--config.G.mapping_layers=8
--config.total_kimg=90``.

Otherwise config F's recipe (R1, G EMA, progressive growing, Adam reset per phase),
unconditional as in the paper, with the narrow layers and short schedule of
``experiments/digits.py``. Deviations from the FFHQ recipe, all for this tiny budget: R1 gamma
1, growing from 16x16 with 10k images per phase, lr 0.002, EMA half-life 1k images; no
mirroring (a mirrored digit is not a digit, and the mode-coverage metric classifies digits).
Prepare the data first: `stylegan-jax prepare --dataset stacked_digits --data_dir data`;
measure mode coverage with `stylegan-jax metrics --workdir runs/stacked_digits --metrics modes`.
"""

from stylegan_jax.config import paper_config


def get_config():
    config = paper_config(resolution=32)
    config.label_size = 0
    config.G.update(dict(latent_size=128, dlatent_size=128, mapping_fmaps=128, fmap_base=256,
                         fmap_max=128, mapping_layers=0,
                         style_mixing_groups=1))  # mixing as the measured study ran
    config.D.update(dict(fmap_base=256, fmap_max=128))
    config.dataset.update(dict(name="stacked_digits/32", data_dir="data", mirror_augment=False))
    config.loss.r1_gamma = 1.0
    config.sched.update(dict(lod_initial_resolution=16, lod_training_kimg=10.0,
                             lod_transition_kimg=10.0, minibatch_base=32, G_lrate_base=0.002,
                             D_lrate_base=0.002, tick_kimg_base=6.0))
    config.sched.minibatch_dict = {}
    config.sched.G_lrate_dict = {}
    config.sched.D_lrate_dict = {}
    config.sched.tick_kimg_dict = {}
    config.G_smoothing_kimg = 1.0
    config.total_kimg = 24.1
    config.snapshot_kimg = 30.0
    return config
