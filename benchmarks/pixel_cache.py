"""Pixel cache: the first epoch decodes every file, the second decodes none and reads a memory map.

Usage: python benchmarks/pixel_cache.py [--images 200] [--size 224]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from proctovision.data import pixel_cache as pixel_cache_module
from proctovision.data.datasets import ManifestDataset
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.data.manifest import read_manifest
from proctovision.data.pixel_cache import PixelCache
from proctovision.data.transforms import eval_transform
from proctovision.models.registry import Preprocessing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    decoded: list[str] = []
    real = pixel_cache_module.read_image
    pixel_cache_module.read_image = lambda path, **kw: decoded.append(str(path)) or real(path, **kw)
    with tempfile.TemporaryDirectory() as folder:
        sources = generate_endoscopy(Path(folder) / "data", patients=args.images // 4, images_per_patient=4)
        frame = read_manifest(sources["hemorrhoid"])
        preprocessing = Preprocessing(args.size, (0.5,) * 3, (0.5,) * 3)
        plain = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(preprocessing))
        start = time.perf_counter()
        for _ in DataLoader(plain, batch_size=32):
            pass
        uncached = time.perf_counter() - start
        cache = PixelCache(Path(folder) / "cache", frame, args.size)
        dataset = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(preprocessing), pixel_cache=cache)
        for epoch in (1, 2):
            before = len(decoded)
            start = time.perf_counter()
            for _ in DataLoader(dataset, batch_size=32):
                pass
            print(f"epoch {epoch}: {len(decoded) - before} files decoded, {time.perf_counter() - start:.2f} s")
        print(f"without the cache every epoch decodes {len(frame)} files: {uncached:.2f} s")


if __name__ == "__main__":
    main()
