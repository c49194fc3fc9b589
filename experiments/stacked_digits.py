"""Unconditional stacked digits (three bundled digits in the colour channels, 1,000 modes),
32x32, on 2 CPU cores: the mode-collapse benchmark of docs/unconditional-collapse.md.

``--config experiments/stacked_digits.py`` is config F (the paper's generator: mapping network,
styles with instance norm, constant input, noise, style mixing), unconditional as in the paper,
with the narrow layers and short schedule of ``experiments/digits.py``; 90k images. A Table 1
row after a colon swaps the generator, e.g. ``experiments/stacked_digits.py:B`` for the
traditional generator (dense input from z, pixel norm; no mapping, styles, noise or mixing),
the rest of the recipe unchanged.

What they give (docs/unconditional-collapse.md, section 6; `stylegan-jax metrics --metrics
modes`, 26,000 samples; target >= 900 modes and KL <= 0.3): with config F's generator this
run loses the digit shapes and the modes (87 modes, KL 4.80 at 90k images; style mixing, the
mapping network and instance norm are what cost them); with B's it keeps them (999 modes, KL
0.28 at 90k images); E's without the mapping (``:E --config.G.mapping_layers=0``) needs 150k
images for 999 modes, KL 0.25.

Deviations from the FFHQ recipe, all for this tiny budget: R1 gamma 1, growing from 16x16 with
10k images per phase, lr 0.002, EMA half-life 1k images; no mirroring (a mirrored digit is not
a digit, and the mode-coverage metric classifies digits).
Prepare the data first: `stylegan-jax prepare --dataset stacked_digits --data_dir data`;
measure mode coverage with `stylegan-jax metrics --workdir runs/stacked_digits --metrics modes`.
"""

from stylegan_jax.config import cpu_demo_config, table1_generator


def get_config(row: str | None = None):
    config = cpu_demo_config("stacked_digits/32")
    config.G.update(table1_generator((row or "F").strip().upper()))
    config.total_kimg = 90.0
    return config
