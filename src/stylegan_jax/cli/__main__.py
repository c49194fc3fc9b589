"""``python -m stylegan_jax.cli COMMAND [--flags]``, the same as ``stylegan-jax``."""

from stylegan_jax.cli import main

main()
