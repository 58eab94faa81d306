"""Frozen mode: per-epoch time recomputing the backbone (the first study's set-up) vs. training the head on cached features.

Prints both per-epoch times and their ratio. Target: at least 80x for ResNet-34 at 224 px.
Usage: python benchmarks/feature_cache.py [--backbone resnet34] [--images 64] [--size 224]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from proctovision.models.module import ClassifierModule
from proctovision.core.perf import tune_allocator


def epoch_recomputing(module: ClassifierModule, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    optimiser = torch.optim.Adam(module.head.parameters(), lr=1e-4)
    module.train()
    start = time.perf_counter()
    for begin in range(0, len(images), batch):
        logits = module(images[begin : begin + batch])
        loss = F.cross_entropy(logits, labels[begin : begin + batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


def epoch_on_cache(module: ClassifierModule, features: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    optimiser = torch.optim.Adam(module.head.parameters(), lr=1e-4)
    start = time.perf_counter()
    for begin in range(0, len(features), batch):
        logits = module.head(features[begin : begin + batch])
        loss = F.cross_entropy(logits, labels[begin : begin + batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    tune_allocator()
    torch.manual_seed(0)
    module = ClassifierModule(args.backbone, 2, mode="frozen", image_size=args.size)
    images = torch.randn(args.images, 3, args.size, args.size)
    labels = torch.randint(0, 2, (args.images,))
    recompute = min(epoch_recomputing(module, images, labels, args.batch) for _ in range(2))
    start = time.perf_counter()
    with torch.inference_mode():
        module.eval()
        features = torch.cat([module.features(images[i : i + args.batch]) for i in range(0, args.images, args.batch)])
    build = time.perf_counter() - start
    features = features.clone()
    cached = min(epoch_on_cache(module, features, labels, args.batch) for _ in range(args.epochs))
    print(f"backbone {args.backbone} at {args.size} px, {args.images} images, batch {args.batch}")
    print(f"epoch recomputing the frozen backbone: {recompute:.3f} s")
    print(f"one-off feature cache build:          {build:.3f} s")
    print(f"epoch on cached features:             {cached:.4f} s")
    print(f"ratio (recompute / cached):           {recompute / cached:.0f}x  (target >= 80x)")


if __name__ == "__main__":
    main()
