"""Paper Table 1, config C, FFHQ (non-saturating loss + R1) at 1024x1024."""

from stylegan_jax.config import table1_config


def get_config():
    return table1_config("C", "ffhq")
