"""The embedded demo: the handwritten digits bundled with scikit-learn, 32x32, on 2 CPU cores.

Config F's architecture and recipe (mapping, styles, noise, style mixing 0.9, R1, G EMA,
progressive growing, Adam reset per phase), with narrow layers and a short schedule so that
`make train` draws recognizable digits in about ten minutes on 2 CPU cores. Deviations from the
FFHQ recipe, all for this tiny budget: class-conditional (the official label embedding and
projection discriminator; unconditional runs of this length collapse to one digit shape),
R1 gamma 1 (gamma 10 is tuned for 1024x1024 faces and makes this small D too weak), growing
from 16x16 with 10k images per phase, lr 0.002, EMA half-life 1k images, one style-mixing
draw per minibatch (``style_mixing_groups=1``; the paper's 8-GPU runs draw 8).
Prepare the data first: `stylegan-jax prepare --dataset digits --data_dir data`.
"""

from stylegan_jax.config import paper_config


def get_config():
    config = paper_config(resolution=32)
    config.label_size = 10
    config.G.update(dict(latent_size=128, dlatent_size=128, mapping_fmaps=128, fmap_base=256,
                         fmap_max=128, style_mixing_groups=1))
    config.D.update(dict(fmap_base=256, fmap_max=128))
    config.dataset.update(dict(name="digits/32", data_dir="data", mirror_augment=False))
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
