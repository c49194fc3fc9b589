"""Paper Table 1, configs B-F at 1024x1024: ``--config experiments/paper/table1.py:ROW,DATASET``.

ROW is B, C, D, E or F (A is ProGAN); DATASET is ``ffhq`` (non-saturating loss + R1) or
``celebahq`` (WGAN-GP, learning rates capped at 0.002), e.g.
``stylegan-jax train --config experiments/paper/table1.py:f,ffhq --workdir runs/table1_f``.
"""

from stylegan_jax.config import table1_config


def get_config(arg: str | None = None):
    row, _, dataset = (arg or "").partition(",")
    if not row or not dataset:
        raise ValueError(f"experiments/paper/table1.py needs ROW,DATASET after a colon "
                         f"(e.g. table1.py:f,ffhq), got {arg!r}")
    return table1_config(row.strip().upper(), dataset.strip().lower())
