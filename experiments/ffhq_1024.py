"""FFHQ at 1024x1024, the paper's config F (official NVlabs/stylegan defaults)."""

from stylegan_jax.config import paper_config


def get_config():
    return paper_config(resolution=1024)
