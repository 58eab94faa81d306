"""Torch datasets over a manifest frame: files are read lazily, one row per item."""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch.utils.data import Dataset

from proctovision.imaging.images import read_image
from proctovision.data.pixel_cache import PixelCache


class ManifestDataset(Dataset):
    """Yields ``(image_tensor, label_index, row_index)``; unlabeled rows get label -1."""

    def __init__(
        self, frame: pd.DataFrame, classes: tuple[str, ...], transform: Callable, window: object = None,
        pixel_cache: PixelCache | None = None, copies: int = 1, min_size: int | None = None,
    ):
        self.paths = frame["path"].tolist()
        self.frames = frame["frame"].tolist() if "frame" in frame.columns else [None] * len(frame)
        lookup = {name: index for index, name in enumerate(classes)}
        labels = frame["label"].tolist() if "label" in frame.columns else [""] * len(frame)
        self.labels = [lookup.get(label, -1) for label in labels]
        self.transform = transform
        self.window = window
        self.pixel_cache = pixel_cache
        self.seed: int | None = None
        self.epoch = 0
        self.copies = copies
        self.min_size = min_size

    def seed_augmentation(self, seed: int) -> None:
        """Make item ``i`` of epoch ``e`` always get the same random augmentation: resume equals no interruption."""
        self.seed = seed

    def _transform(self, image: object, index: int) -> torch.Tensor:
        if self.seed is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)
            return self.transform(image)

    def __len__(self) -> int:
        return len(self.paths) * self.copies

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, int]:
        """Item ``item`` is row ``item % rows``; with ``copies`` > 1 each copy gets its own augmentation."""
        index = item % len(self.paths)
        if self.pixel_cache is not None:
            return self._transform(self.pixel_cache.image(index), item), self.labels[index], index
        frame = self.frames[index]
        frame = None if frame is None or pd.isna(frame) else int(frame)
        image = read_image(self.paths[index], frame=frame, window=self.window, min_size=self.min_size)
        return self._transform(image, item), self.labels[index], index
