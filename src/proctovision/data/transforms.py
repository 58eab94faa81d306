"""Image → tensor pipelines, built from the model's preprocessing spec. Augmentation belongs to the training split only."""
from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from proctovision.imaging.preprocessing import Preprocessing


def eval_transform(preprocessing: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """The spec's own array conversion, wrapped as a tensor: the ONNX path runs the very same code."""

    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(preprocessing.to_array(image))

    return transform


def train_transform(preprocessing: Preprocessing, augmentation: str) -> Callable[[Image.Image], torch.Tensor]:
    """``basic``: flips, small rotations and crops; ``colour`` adds the fistula study's colour jitter.

    Augmentations act on the PIL image after the spec's content crop; scaling and normalisation are the
    spec's, as at inference.
    """
    if augmentation == "none":
        return eval_transform(preprocessing)
    size = preprocessing.input_size
    steps: list = [
        v2.RandomResizedCrop((size, size), scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(10),
    ]
    if augmentation == "colour":
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    augment = v2.Compose(steps)

    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(preprocessing.prepared(augment(preprocessing.cropped(image.convert("RGB")))))

    return transform
