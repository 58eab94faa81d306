"""Full-size frames at full speed: decode, model-only and files → probabilities rates from one run.

Generates 1280x1024 endoscopy JPEGs, then times (1) the model alone on ready tensors, (2) the
decoding alone (JPEG DCT scaling, decoding threads), (3) files → probabilities with the
decoding overlapped with inference, and prints end-to-end / model-only against the 0.8 target.

Usage: python benchmarks/end_to_end.py [--backbone efficientnet_lite0] [--size 224] [--batch 16] [--images 192]
       [--runtime onnx|eager] [--full-decode]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from proctovision.deploy.bench import (
    decode_and_end_to_end_rates, decode_rate, eager_runner, full_size_frames, full_size_input, model_rate, onnx_session,
)
from proctovision.models.module import ClassifierModule
from proctovision.models.registry import get_backbone
from proctovision.core.perf import tune_allocator

TARGET = 0.8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--runtime", choices=("eager", "onnx"), default="onnx")
    parser.add_argument("--full-decode", action="store_true", help="also time full-size decoding, for comparison")
    args = parser.parse_args()
    tune_allocator()
    spec = get_backbone(args.backbone)
    model = ClassifierModule(spec.name, 2, mode="frozen", head="linear", image_size=args.size).eval()
    with tempfile.TemporaryDirectory() as folder:
        runner = onnx_session(model, args.size, Path(folder)) if args.runtime == "onnx" else eager_runner(model)
        started = time.perf_counter()
        model_only = model_rate(runner, args.size, args.batch)
        if args.runtime == "onnx":
            runner = onnx_session(model, args.size, Path(folder), quiet=True)
        decode, files = decode_and_end_to_end_rates(runner, args.size, args.batch, Path(folder), args.images)
        print(f"{spec.name} at {args.size} px, {args.runtime}, batch {args.batch}, {args.images} frames 1280x1024 JPEG")
        print(f"decode (decoding threads, DCT scaling): {decode:.1f} img/s")
        print(f"model only: {model_only:.1f} img/s")
        print(f"files -> probabilities: {files:.1f} img/s = {files / model_only:.2f} of model-only "
              f"(target >= {TARGET}: {'met' if files / model_only >= TARGET else 'NOT met'})")
        if args.full_decode:
            full = decode_rate(full_size_frames(Path(folder), args.images), args.size, full_size_input)
            print(f"without DCT scaling (full 1280x1024 decode): decode {full:.1f} img/s")
        print(f"measured in one run of {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
