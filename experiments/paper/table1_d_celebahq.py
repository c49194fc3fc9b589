"""Paper Table 1, config D, CelebA-HQ (WGAN-GP) at 1024x1024."""

from stylegan_jax.config import table1_config


def get_config():
    return table1_config("D", "celebahq")
