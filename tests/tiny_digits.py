"""A tiny digits training config shared by the tests that train real runs (loop, generation).

Kept as an importable module (not a fixture) so that config files handed to training
subprocesses can import it too.
"""

from stylegan_jax.config import paper_config

# Network widths of every tiny test model (G and D a few hundred parameters wide).
TINY_G = dict(latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2, fmap_base=32,
              fmap_max=8)
TINY_D = dict(fmap_base=32, fmap_max=8)


def tiny_digits_config(data_dir, *, total_kimg: float = 0.256,
                       lod_initial_resolution: int = 16, mirror_augment: bool = True):
    """Digits at 32x32 with a G/D a few hundred parameters wide, 16-image minibatches,
    32-image ticks and 64-image progressive-growing phases."""
    config = paper_config(32)
    config.G.update(TINY_G)
    config.G.style_mixing_groups = 1  # one mixing draw per minibatch, as before groups existed
    config.D.update(TINY_D)
    config.dataset.update(dict(name="digits/32", data_dir=str(data_dir),
                               mirror_augment=mirror_augment, workers=2, prefetch=2))
    config.sched.update(dict(lod_initial_resolution=lod_initial_resolution,
                             lod_training_kimg=0.064, lod_transition_kimg=0.064,
                             minibatch_base=16, tick_kimg_base=0.032))
    for field in ("minibatch_dict", "G_lrate_dict", "D_lrate_dict", "tick_kimg_dict"):
        config.sched[field] = {}
    config.total_kimg = total_kimg
    config.minibatch_repeats = 2
    config.grid_size = 2
    config.snapshot_kimg = 0.128
    return config
