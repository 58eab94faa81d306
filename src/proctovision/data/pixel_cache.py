"""Decode, window and resize each image once into a memory-mapped uint8 store.

The store is keyed by the rows it holds (path, frame, file size and time) and by the
preprocessing (size, window), so later epochs and later runs on the same data read
pixels instead of decoding JPEG/PNG/DICOM again, and any change gives a fresh store.
Stores pile up in one folder across runs, so the folder is bounded (4 GiB unless
PROCTOVISION_PIXEL_CACHE_GB says otherwise): a store that would take it past the bound is
refused with the sizes and the ways out, before anything is written.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision.imaging.content_area import check_crop_rule, crop_content
from proctovision.imaging.images import read_image
from proctovision.core.errors import UserError
from proctovision.imaging.preprocessing import square_resize

LIMIT_ENV = "PROCTOVISION_PIXEL_CACHE_GB"
DEFAULT_LIMIT_BYTES = 4 * 1024**3
STORE_SUFFIXES = (".pixels.u8", ".ready.u8")


class PixelCacheFull(UserError):
    """A new store would take the cache folder past its size bound."""


def limit_bytes() -> int:
    """The folder's bound: PROCTOVISION_PIXEL_CACHE_GB (GiB, decimals allowed) or 4 GiB."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if not value:
        return DEFAULT_LIMIT_BYTES
    try:
        gigabytes = float(value)
    except ValueError as error:
        raise UserError(f"{LIMIT_ENV}={value!r}: not a number of GiB") from error
    if gigabytes <= 0:
        raise UserError(f"{LIMIT_ENV}={value!r}: must be above 0")
    return int(gigabytes * 1024**3)


def store_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.name.endswith(STORE_SUFFIXES) and path.is_file())


def held_bytes(folder: str | Path, exclude_key: str | None = None) -> int:
    """Bytes the folder's stores take (their full reserved size), optionally leaving one store out."""
    return sum(
        path.stat().st_size for path in store_files(Path(folder))
        if exclude_key is None or not path.name.startswith(f"{exclude_key}.")
    )


def gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB"


def describe_folder(folder: str | Path, limit: int | None = None) -> str:
    """How much a cache folder holds against its bound, in one line."""
    stores = sum(1 for path in store_files(Path(folder)) if path.name.endswith(STORE_SUFFIXES[0]))
    return (f"pixel cache {folder}: {stores} store(s), {gib(held_bytes(folder))} of "
            f"{gib(limit_bytes() if limit is None else limit)}")


def store_bytes(rows: int, size: int) -> int:
    slots = max(rows, 1)
    return slots * size * size * 3 + slots


def cache_key(frame: pd.DataFrame, size: int, window: object = None, crop: str | None = None) -> str:
    settings = {"size": size, "window": window} if crop is None else {"size": size, "window": window, "crop": crop}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
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
    """Row ``i`` of the manifest frame ↔ slot ``i`` of an ``(N, size, size, 3)`` uint8 memmap. With ``crop``
    (a preprocessing spec's content crop) each slot holds the cropped picture, so the crop is found once too."""

    def __init__(
        self, folder: str | Path, frame: pd.DataFrame, size: int, window: object = None, max_bytes: int | None = None,
        crop: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.limit = limit_bytes() if max_bytes is None else max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths = frame["path"].tolist()
        self.frames = frame["frame"].tolist() if "frame" in frame.columns else [None] * len(frame)
        self.size = size
        self.window = window
        self.crop = check_crop_rule(crop)
        self.key = cache_key(frame, size, window, self.crop)
        self._check_room(len(self.paths), size)
        shape = (max(len(self.paths), 1), size, size, 3)
        self.pixels = self._open(self.folder / f"{self.key}.pixels.u8", np.uint8, shape)
        self.ready = self._open(self.folder / f"{self.key}.ready.u8", np.uint8, (shape[0],))
        self.decoded = 0

    @staticmethod
    def _open(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
        mode = "r+" if path.is_file() and path.stat().st_size == int(np.prod(shape)) * np.dtype(dtype).itemsize else "w+"
        return np.memmap(path, dtype=dtype, mode=mode, shape=shape)

    def _check_room(self, rows: int, size: int) -> None:
        needed = store_bytes(rows, size)
        others = held_bytes(self.folder, exclude_key=self.key)
        if others + needed > self.limit:
            raise PixelCacheFull(
                f"{self.folder}: the pixel cache for {rows} images at {size}x{size} px needs {gib(needed)} and the "
                f"folder already holds {gib(others)}, above its limit of {gib(self.limit)}. Delete the folder (it is "
                f"rebuilt when needed), raise {LIMIT_ENV}, or train with data.pixel_cache: false"
            )

    def describe(self) -> str:
        """One line for logs: how much the folder holds against its bound, and how full this store is."""
        ready = int(self.ready[: len(self.paths)].sum())
        return f"{describe_folder(self.folder, self.limit)}; this one {ready}/{len(self.paths)} images ready"

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        """The resized picture for row ``index``, decoded from its file only the first time."""
        if not self.ready[index]:
            frame = self.frames[index]
            frame = None if frame is None or pd.isna(frame) else int(frame)
            picture = read_image(self.paths[index], frame=frame, window=self.window,
                                 min_size=None if self.crop else self.size)
            picture = square_resize(crop_content(picture) if self.crop else picture, self.size)
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
