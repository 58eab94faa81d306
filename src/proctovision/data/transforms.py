"""Image → tensor pipelines. Augmentation belongs to the training split only."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from proctovision.models.registry import Preprocessing


def eval_transform(preprocessing: Preprocessing) -> v2.Compose:
    """Resize to a square (as both studies did), scale to 0..1, normalise with the weights' mean/std.

    The resize runs on the PIL image (PIL's bilinear filter), so the torch-free ONNX predictor can
    repeat it exactly with PIL alone.
    """
    size = preprocessing.input_size
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(preprocessing.mean), list(preprocessing.std)),
        ]
    )


def train_transform(preprocessing: Preprocessing, augmentation: str) -> v2.Compose:
    """``basic``: flips, small rotations and crops; ``colour`` adds the fistula study's colour jitter."""
    if augmentation == "none":
        return eval_transform(preprocessing)
    size = preprocessing.input_size
    steps: list = [
        v2.ToImage(),
        v2.RandomResizedCrop((size, size), scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(10),
    ]
    if augmentation == "colour":
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(preprocessing.mean), list(preprocessing.std))]
    return v2.Compose(steps)
