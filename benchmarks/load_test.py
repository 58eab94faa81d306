"""Bounded load on the REST service, loopback only: N requests, C at a time; prints errors and latency.

Usage: python benchmarks/load_test.py [RUN_OR_MODEL] [--requests 500] [--concurrency 16]
Without a model it trains a tiny one on generated images first. The loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from proctovision.serving.app import create_app
from proctovision.serving.background import running_server

TIME_LIMIT_S = 300


def tiny_run(folder: Path) -> Path:
    from proctovision.config import DataConfig, ModelConfig, RunConfig, TrainerConfig
    from proctovision.data.demo import generate_endoscopy
    from proctovision.data.ingest import ingest, write_outputs
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split
    from proctovision.tasks import load_task
    from proctovision.training import train

    task = load_task("hemorrhoid")
    source = generate_endoscopy(folder / "data", patients=16, images_per_patient=2)["hemorrhoid"]
    write_outputs(ingest(source, task), task, source, folder / "m.csv")
    write_manifest(holdout_split(read_manifest(folder / "m.csv"), 0.25, 0.25, 0), folder / "s.csv")
    config = RunConfig(
        task="hemorrhoid", data=DataConfig(split=folder / "s.csv", image_size=64, batch_size=8),
        model=ModelConfig(backbone="resnet18", mode="scratch", weights="none"),
        trainer=TrainerConfig(epochs=1), out=folder / "run",
    )
    return train(config, progress=False).root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.new("RGB", (320, 288), (180, 90, 100)).save(buffer, format="JPEG")
    payload = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        model = Path(args.model) if args.model else tiny_run(Path(folder))
        with running_server(create_app(model, load_in_background=False)) as url:
            started = time.perf_counter()

            def one(_: int) -> tuple[int, float]:
                if time.perf_counter() - started > TIME_LIMIT_S:
                    return -1, 0.0
                begin = time.perf_counter()
                try:
                    response = client.post(url + "predict", files={"file": ("x.jpg", payload, "image/jpeg")})
                    return response.status_code, time.perf_counter() - begin
                except httpx.HTTPError:
                    return 0, time.perf_counter() - begin

            with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=args.concurrency)) as client:
                with ThreadPoolExecutor(args.concurrency) as pool:
                    results = list(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - started
    latencies = sorted(seconds for status, seconds in results if status == 200)
    errors = sum(1 for status, _ in results if status != 200)
    cut = sum(1 for status, _ in results if status == -1)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"{args.requests} requests, {args.concurrency} concurrent, loopback: {errors} errors "
          f"({cut} not sent: time limit), {wall:.1f} s, {len(latencies) / wall:.1f} req/s")
    print(f"latency p50 {quantiles[49] * 1000:.0f} ms, p95 {quantiles[94] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
