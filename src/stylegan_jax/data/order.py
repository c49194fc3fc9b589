"""The global example order: a reproducible, resumable stream of (index, mirror flag).

Position ``q`` of the stream (counted in images since the start of training) lies in epoch
``e = q // n`` at offset ``q % n``; epoch ``e`` visits every example once, in the order of a
permutation drawn from ``(seed, e)``. So the stream depends only on the seed, resuming needs
only the number of images consumed, and batch sizes may change at any point. All hosts
compute the same stream and each reads its own slice of every global batch.
"""

from __future__ import annotations

import numpy as np


class GlobalOrder:
    """Example indices and mirror flags for any range of global stream positions."""

    def __init__(self, num_examples: int, seed: int, mirror: bool):
        if num_examples < 1:
            raise ValueError("the dataset is empty")
        self.num_examples, self.seed, self.mirror = num_examples, seed, mirror
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        """Permutation (int64 ``[n]``) and flips (bool ``[n]``, p=0.5 if mirroring) of epoch e."""
        if e not in self._epochs:
            rng = np.random.default_rng([self.seed, e])
            perm = rng.permutation(self.num_examples)
            flips = rng.random(self.num_examples) < 0.5
            self._epochs = {k: v for k, v in self._epochs.items() if k == e - 1}  # keep 2
            self._epochs[e] = (perm, flips & self.mirror)
        return self._epochs[e]

    def take(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and flips of stream positions ``[start, start + count)``."""
        n = self.num_examples
        pieces, pos, end = [], start, start + count
        while pos < end:
            e, off = divmod(pos, n)
            stop = min(n, off + end - pos)
            perm, flips = self.epoch(e)
            pieces.append((perm[off:stop], flips[off:stop]))
            pos += stop - off
        if not pieces:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        return (np.concatenate([p for p, _ in pieces]),
                np.concatenate([f for _, f in pieces]))


def host_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """Rows of a global batch that one host reads: an equal, contiguous share per host."""
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} is not divisible by "
                         f"{process_count} processes")
    local = global_batch_size // process_count
    return slice(process_index * local, (process_index + 1) * local)
