"""Torch-free preprocessing, identical to data/transforms.eval_transform, for ONNX Runtime deployments."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def to_input_array(image: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB PIL image → normalised float32 ``[3, size, size]``, as the model was trained with."""
    resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
