"""FFHQ at 1024x1024 on Cloud TPU: the paper's config F in bfloat16, with the few-channel
high-resolution activations laid out width-minor (``layout_resolution=256``).

Same networks, losses and recipe as ``ffhq_1024.py``; only how XLA:TPU stores the 16-64
channel feature maps at 256-1024 changes (it would pad their channels to 128 lanes). With
it, every phase of the schedule fits a 16 GB v5e chip at the official 4 images per chip and
the 1024 phase at 8 (`stylegan-jax tpu-compile`, BENCHMARKS.md "Cloud TPU"). Metrics run 32
images (PPL: pairs) per call: PPL's 64 pairs at 1024 need 18.2 GiB per v5e chip on 8 chips.
"""

from stylegan_jax.config import paper_config


def get_config():
    config = paper_config(resolution=1024)
    config.compute_dtype = "bfloat16"
    config.layout_resolution = 256
    config.eval.batch_size = 32
    return config
