"""Progress bars for the metrics: tqdm on process 0, silent elsewhere or when disabled."""

from __future__ import annotations

import os

import jax
from tqdm.auto import tqdm

# Set STYLEGAN_JAX_PROGRESS=0 to silence the bars (e.g. in logs of batch jobs).
PROGRESS_ENV = "STYLEGAN_JAX_PROGRESS"


def bar(total: int, desc: str) -> tqdm:
    """A context-managed bar counting images or samples."""
    enabled = jax.process_index() == 0 and os.environ.get(PROGRESS_ENV, "1") != "0"
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)
