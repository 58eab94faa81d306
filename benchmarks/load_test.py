"""Bounded load on the REST service, loopback only: N requests, C at a time; prints errors and latency.

Usage: python benchmarks/load_test.py [RUN_OR_MODEL] [--requests 500] [--concurrency 16] [--heatmap]
Without a model it trains a tiny one on generated images first. The loop is bounded in count and time.
It starts the service twice in the same run, each as its own `proctovision serve` process (so the client does
not share the server's interpreter), one request at a time (--batch-images 1) and batched (up to --batch-images
images or --batch-wait-ms), and prints requests/s, p50/p95 latency and errors of both, with the model's own
images/s at batch 1 and batch N (in this process, before the services start): their ratio bounds the gain.
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from proctovision.serving.background import free_port

TIME_LIMIT_S = 300


def tiny_run(folder: Path, image_size: int = 64) -> Path:
    from proctovision.core.config import DataConfig, ModelConfig, RunConfig, TrainerConfig
    from proctovision.data.synthetic.endoscopy import generate_endoscopy
    from proctovision.data.ingest import ingest, write_outputs
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split
    from proctovision.core.tasks import load_task
    from proctovision.workflows.training import train

    task = load_task("hemorrhoid")
    source = generate_endoscopy(folder / "data", patients=16, images_per_patient=2)["hemorrhoid"]
    write_outputs(ingest(source, task), task, source, folder / "m.csv")
    write_manifest(holdout_split(read_manifest(folder / "m.csv"), 0.25, 0.25, 0), folder / "s.csv")
    config = RunConfig(
        task="hemorrhoid", data=DataConfig(split=folder / "s.csv", image_size=image_size, batch_size=8),
        model=ModelConfig(backbone="resnet18", mode="scratch", weights="none"),
        trainer=TrainerConfig(epochs=1), out=folder / "run",
    )
    return train(config, progress=False).root


@contextmanager
def serve_process(model: Path, batch_images: int, batch_wait_ms: float) -> Iterator[str]:
    """`proctovision serve` in a child process on a free loopback port; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "proctovision", "serve", str(model), "--port", str(port),
               "--batch-images", str(batch_images), "--batch-wait-ms", str(batch_wait_ms)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(url + "health", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError(f"the service did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def load(url: str, payload: bytes, requests: int, concurrency: int, heatmap: bool) -> dict:
    """Send ``requests`` uploads, ``concurrency`` at a time; requests/s, latency quantiles and errors."""
    started = time.perf_counter()
    query = "" if heatmap else "?heatmap=false"

    def one(_: int) -> tuple[int, float]:
        if time.perf_counter() - started > TIME_LIMIT_S:
            return -1, 0.0
        begin = time.perf_counter()
        try:
            response = client.post(url + "predict" + query, files={"file": ("x.jpg", payload, "image/jpeg")})
            return response.status_code, time.perf_counter() - begin
        except httpx.HTTPError:
            return 0, time.perf_counter() - begin

    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(seconds for status, seconds in results if status == 200)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"requests": requests, "ok": len(latencies), "errors": sum(1 for status, _ in results if status != 200),
            "not_sent": sum(1 for status, _ in results if status == -1), "seconds": wall,
            "requests_per_s": len(latencies) / wall, "p50_ms": quantiles[49] * 1000, "p95_ms": quantiles[94] * 1000}


def batching_ceiling(model: Path, batch_images: int, seconds: float = 6.0) -> tuple[float, float]:
    """Images/s of the served model alone at batch 1 and at ``batch_images``: their ratio is the most that
    gathering requests into batches can gain, whatever the service does around the model."""
    import numpy as np

    from proctovision.deploy.bench import sustained_rate
    from proctovision.inference.predictor import load_predictor

    predictor = load_predictor(model)
    size = predictor.spec.input_size
    rates = []
    for batch in (1, batch_images):
        inputs = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
        rates.append(sustained_rate(lambda: predictor.raw_outputs(inputs), batch, seconds))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-images", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--heatmap", action="store_true", help="ask for Grad-CAM overlays too")
    parser.add_argument("--image-size", type=int, default=64, help="input size of the generated model")
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.new("RGB", (320, 288), (180, 90, 100)).save(buffer, format="JPEG")
    payload = buffer.getvalue()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        model = Path(args.model) if args.model else tiny_run(Path(folder), args.image_size)
        single, batched = batching_ceiling(model, args.batch_images)
        for name, images in (("one at a time", 1), ("batched", args.batch_images)):
            with serve_process(model, images, args.batch_wait_ms) as url:
                load(url, payload, min(32, args.requests), args.concurrency, args.heatmap)  # warm-up
                figures[name] = load(url, payload, args.requests, args.concurrency, args.heatmap)
    print(f"model {args.model or f'resnet18 ({args.image_size} px, generated data)'}; {args.requests} requests, "
          f"{args.concurrency} concurrent, loopback, heatmaps {'on' if args.heatmap else 'off'}")
    for name, result in figures.items():
        print(f"{name:>14}: {result['requests_per_s']:7.1f} req/s, p50 {result['p50_ms']:.0f} ms, p95 "
              f"{result['p95_ms']:.0f} ms, {result['errors']} errors ({result['not_sent']} not sent: time limit)")
    gain = figures["batched"]["requests_per_s"] / max(figures["one at a time"]["requests_per_s"], 1e-9)
    print(f"batched / one at a time: {gain:.2f}x requests/s")
    print(f"the model alone: {single:.1f} images/s at batch 1, {batched:.1f} at batch {args.batch_images}: batching "
          f"can gain at most {batched / single:.2f}x on this machine")


if __name__ == "__main__":
    main()
