"""Independent references written from the official StyleGAN code, shared by several tests."""

import numpy as np


def official_box(images, resolution):
    """``dataset_tool.py`` ``TFRecordExporter.add_image``: the float32 image is 2x2-averaged
    level by level, and the level written is ``rint(img).clip(0, 255)`` as uint8; works on
    ``[..., H, W, C]``."""
    x = images.astype(np.float32)
    while x.shape[-2] > resolution:
        x = (x[..., 0::2, 0::2, :] + x[..., 0::2, 1::2, :] + x[..., 1::2, 0::2, :]
             + x[..., 1::2, 1::2, :]) * 0.25
    return np.rint(x).clip(0, 255).astype(np.uint8)
