"""Datasets: TFDS builders (``builders``), ``prepare``, the input ``pipeline`` and the
on-device ``downsample`` for progressive growing. Nothing here needs TensorFlow."""
