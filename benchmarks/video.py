"""Video speed in one run: decode-only, decode + resize, model-only, file mode end to end, and live latency.

Input: the generated endoscopy-like video (1280x1024 H.264 by default). Model: tf_efficientnet_lite0 at
224 px exported to ONNX (random weights: the speed is the architecture's), through the one predictor.
Targets on 2 CPU cores: file mode >= 100 frames/s end to end without CAM overlays; live at 30 frames/s:
no frame dropped, p95 latency from frame arrival to decision <= 80 ms.

Usage: python benchmarks/video.py [--seconds 10] [--width 1280 --height 1024] [--video FILE] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch

from proctovision.data.synthetic.video import write_demo_video
from proctovision.inference.predictor import load_predictor
from proctovision.inference.video import (
    FrameModel, VideoOptions, content_area_of, decoded_frames, open_source, run_file, run_live,
)
from proctovision.deploy.export import Probabilities, to_onnx

MEAN = STD = (0.5, 0.5, 0.5)


def export_lite0(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = Probabilities(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)).eval()
    to_onnx(model, size, folder / "model.onnx")
    card = {"classes": ["normal", "hemorrhoid"], "threshold": {"value": 0.5},
            "preprocessing": {"input_size": size, "mean": list(MEAN), "std": list(STD), "resize": "square"}}
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def decode_rate(video: Path, prepare: bool, predictor: object) -> float:
    container = open_source(str(video))
    model = FrameModel(predictor, None)
    count, start = 0, time.perf_counter()
    for _, pixels in decoded_frames(container, raw=prepare):
        if prepare:
            model.to_array(pixels)
        count += 1
    container.close()
    return count / (time.perf_counter() - start)


def model_rate(predictor: object, size: int, batch: int, seconds: float = 8.0) -> float:
    inputs = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
    predictor.raw_probabilities(inputs)
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        predictor.raw_probabilities(inputs)
        count += batch
    print(f"  (model CPU time {(time.process_time() - cpu) / count * 1000:.2f} ms per image)")
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--video", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        video = args.video or Path(write_demo_video(scratch / "scope.mp4", size=(args.width, args.height),
                                                    seconds=args.seconds, segments=[(3.0, 6.0)]).path)
        predictor = load_predictor(export_lite0(scratch / "lite0", args.size))
        container = open_source(str(video))
        stream = container.streams.video[0]
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"input: {stream.codec_context.name} {stream.width}x{stream.height} @ {float(stream.average_rate):.0f} "
              f"frames/s; model: tf_efficientnet_lite0 @ {args.size} px, {predictor.backend}, batch {args.batch}")
        head = [pixels for _, pixels in zip(range(8), (p for _, p in decoded_frames(container)))]
        container.close()
        area, _ = content_area_of(head)
        print(f"content area: {area.to_dict() if area else None}")
        print(f"decode only:            {decode_rate(video, False, predictor):7.1f} frames/s")
        print(f"decode + resize:        {decode_rate(video, True, predictor):7.1f} frames/s")
        print(f"model only:             {model_rate(predictor, args.size, args.batch):7.1f} images/s")
        options = VideoOptions(batch_size=args.batch, annotate=False)
        cpu = time.process_time()
        result = run_file(predictor, str(video), None, options)
        per_frame = (time.process_time() - cpu) / len(result.rows)
        print(f"file mode end to end:   {result.fps:7.1f} frames/s ({len(result.rows)} frames, no CAM, "
              "no annotated MP4)")
        print(f"  CPU time per frame:   {per_frame * 1000:7.2f} ms (all threads): at most "
              f"{len(os.sched_getaffinity(0)) / per_frame:.0f} frames/s on {len(os.sched_getaffinity(0))} idle cores")
        annotated = run_file(predictor, str(video), scratch / "annotated", VideoOptions(batch_size=args.batch))
        print(f"  with annotated MP4:   {annotated.fps:7.1f} frames/s (640 px wide)")
        live = run_live(predictor, str(video), None, VideoOptions(annotate=False))
        print(f"live at {live.source_fps:.0f} frames/s:     {len(live.rows)} of {live.frames_seen} frames classified, "
              f"{live.dropped} dropped; latency p50 {live.latency_ms(50):.1f} ms, p95 {live.latency_ms(95):.1f} ms")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
