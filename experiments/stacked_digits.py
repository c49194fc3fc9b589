"""Unconditional stacked digits (three bundled digits in the colour channels, 1,000 modes),
32x32, on 2 CPU cores: the mode-collapse benchmark of docs/unconditional-collapse.md.

Not yet a working demo: after its 90k images it covers 41 of 1,000 modes (KL 5.56); config B
on the same schedule keeps ~600 modes at 30k, so the style-based G loses modes here.

Config F's architecture and recipe (mapping, styles, noise, style mixing 0.9, R1, G EMA,
progressive growing, Adam reset per phase), unconditional as in the paper, with the narrow
layers and short schedule of ``experiments/digits.py`` so that `make train` runs in about the
same time. Deviations from the FFHQ recipe, all for this tiny budget: R1 gamma 1, growing from
16x16 with 10k images per phase, lr 0.002, EMA half-life 1k images; no mirroring (a mirrored
digit is not a digit, and the mode-coverage metric classifies digits).
Prepare the data first: `stylegan-jax prepare --dataset stacked_digits --data_dir data`;
measure mode coverage with `stylegan-jax metrics --workdir runs/stacked_digits --metrics modes`.
"""

from stylegan_jax.config import paper_config


def get_config():
    config = paper_config(resolution=32)
    config.label_size = 0
    config.G.update(dict(latent_size=128, dlatent_size=128, mapping_fmaps=128, fmap_base=256,
                         fmap_max=128, style_mixing_groups=1))  # as the measured study ran
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
    config.total_kimg = 90.0
    config.snapshot_kimg = 30.0
    return config
