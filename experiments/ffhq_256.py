"""FFHQ at 256x256 with the networks of config F (official ``train.py`` 256 variant)."""

from stylegan_jax.config import paper_config


def get_config():
    return paper_config(resolution=256)
