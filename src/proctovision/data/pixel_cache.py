"""Decode, window and resize each image once into a memory-mapped uint8 store.

The store is keyed by the rows it holds (path, frame, file size and time) and by the
preprocessing (size, window), so later epochs and later runs on the same data read
pixels instead of decoding JPEG/PNG/DICOM again, and any change gives a fresh store.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision.data.images import read_image
from proctovision.preprocessing import square_resize


def cache_key(frame: pd.DataFrame, size: int, window: object = None) -> str:
    digest = hashlib.sha256(json.dumps({"size": size, "window": window}, sort_keys=True, default=str).encode())
    frames = frame["frame"].tolist() if "frame" in frame.columns else [None] * len(frame)
    for path, frame_index in zip(frame["path"], frames):
        try:
            stat = Path(path).stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{path}|{frame_index}|{stamp}\n".encode())
    return digest.hexdigest()[:24]


class PixelCache:
    """Row ``i`` of the manifest frame ↔ slot ``i`` of an ``(N, size, size, 3)`` uint8 memmap."""

    def __init__(self, folder: str | Path, frame: pd.DataFrame, size: int, window: object = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths = frame["path"].tolist()
        self.frames = frame["frame"].tolist() if "frame" in frame.columns else [None] * len(frame)
        self.size = size
        self.window = window
        self.key = cache_key(frame, size, window)
        shape = (max(len(self.paths), 1), size, size, 3)
        self.pixels = self._open(self.folder / f"{self.key}.pixels.u8", np.uint8, shape)
        self.ready = self._open(self.folder / f"{self.key}.ready.u8", np.uint8, (shape[0],))
        self.decoded = 0

    @staticmethod
    def _open(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
        mode = "r+" if path.is_file() and path.stat().st_size == int(np.prod(shape)) * np.dtype(dtype).itemsize else "w+"
        return np.memmap(path, dtype=dtype, mode=mode, shape=shape)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        """The resized picture for row ``index``, decoded from its file only the first time."""
        if not self.ready[index]:
            frame = self.frames[index]
            frame = None if frame is None or pd.isna(frame) else int(frame)
            picture = square_resize(read_image(self.paths[index], frame=frame, window=self.window), self.size)
            self.pixels[index] = np.asarray(picture, dtype=np.uint8)
            self.ready[index] = 1
            self.decoded += 1
        return Image.fromarray(np.array(self.pixels[index]))

    @property
    def complete(self) -> bool:
        return bool(self.ready[: len(self.paths)].all())

    def flush(self) -> None:
        self.pixels.flush()
        self.ready.flush()
