"""The embedded demo: the handwritten digits bundled with scikit-learn, 32x32, on 2 CPU cores.

Config F's architecture and recipe (mapping, styles, noise, mixing 0.9, R1, EMA, progressive
growing from 8x8), with narrow layers and a short schedule so that `make train` draws
recognizable digits in about ten minutes of CPU time. Prepare the data first:
`stylegan-jax prepare --dataset digits --data_dir data`.
"""

from stylegan_jax.config import paper_config


def get_config():
    config = paper_config(resolution=32)
    config.G.update(dict(latent_size=128, dlatent_size=128, mapping_fmaps=128, fmap_base=256,
                         fmap_max=128))
    config.D.update(dict(fmap_base=256, fmap_max=128))
    config.dataset.update(dict(name="digits/32", data_dir="data", mirror_augment=False))
    config.sched.update(dict(lod_initial_resolution=8, lod_training_kimg=20.0,
                             lod_transition_kimg=20.0, minibatch_base=32, G_lrate_base=0.002,
                             D_lrate_base=0.002, tick_kimg_base=4.0))
    config.sched.minibatch_dict = {}
    config.sched.G_lrate_dict = {}
    config.sched.D_lrate_dict = {}
    config.sched.tick_kimg_dict = {}
    config.G_smoothing_kimg = 1.0
    config.total_kimg = 120.0
    config.snapshot_kimg = 40.0
    return config
