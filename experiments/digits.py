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

from stylegan_jax.config import cpu_demo_config


def get_config():
    config = cpu_demo_config("digits/32", label_size=10)
    config.total_kimg = 90.0
    return config
