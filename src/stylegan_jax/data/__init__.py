"""Datasets: TFDS builders (``builders``), ``prepare`` and the input ``pipeline`` (lower
training resolutions are made on the device: :func:`stylegan_jax.images.downsample_to`).
Nothing here needs TensorFlow."""
