"""Unconditional stacked digits (three bundled digits in the colour channels, 1,000 modes),
32x32, on 2 CPU cores: the mode-collapse benchmark of docs/unconditional-collapse.md.

Deviation from config F, measured there (section 5): **no mapping network**
(``G.mapping_layers=0``: w is the pixel-normalised z; styles, instance norm, constant input,
noise and style mixing as in F), and 24k images. With the 8-layer mapping of config F this
benchmark loses its modes after ~12k images (206 of 1,000 at 24k, 41 at 90k); without it the
same schedule keeps them: `stylegan-jax metrics --metrics modes` on the 24k-image checkpoint
gave 899 modes, KL 1.35 (one seed; target >= 900 modes and KL <= 0.3, so still not reached;
longer runs not measured). Config F itself: add ``--config.G.mapping_layers=8
--config.total_kimg=90``.

Otherwise config F's recipe (R1, G EMA, progressive growing, Adam reset per phase),
unconditional as in the paper, with the narrow layers and short schedule of
``experiments/digits.py``. Deviations from the FFHQ recipe, all for this tiny budget: R1 gamma
1, growing from 16x16 with 10k images per phase, lr 0.002, EMA half-life 1k images; no
mirroring (a mirrored digit is not a digit, and the mode-coverage metric classifies digits).
Prepare the data first: `stylegan-jax prepare --dataset stacked_digits --data_dir data`;
measure mode coverage with `stylegan-jax metrics --workdir runs/stacked_digits --metrics modes`.
"""

from stylegan_jax.config import cpu_demo_config


def get_config():
    config = cpu_demo_config("stacked_digits/32")
    config.G.mapping_layers = 0
    config.total_kimg = 24.1
    return config
