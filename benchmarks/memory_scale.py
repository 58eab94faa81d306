"""Peak memory of ingest, split and one epoch of the data pipeline at 10,000 and 100,000 rows.

Each stage runs in its own process and reports its peak RSS, so growth with rows can be read
against the size of the manifest itself. Usage: python benchmarks/memory_scale.py [--rows 10000,100000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

STAGE = r"""
import json, resource, sys
from pathlib import Path
stage, folder = sys.argv[1], Path(sys.argv[2])
from proctovision.core.tasks import load_task
task = load_task("hemorrhoid")
if stage == "ingest":
    from proctovision.data.ingest import ingest, write_outputs
    write_outputs(ingest(folder / "source.csv", task), task, folder / "source.csv", folder / "manifest.csv")
elif stage == "split":
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split
    write_manifest(holdout_split(read_manifest(folder / "manifest.csv"), 0.15, 0.15, 0), folder / "split.csv")
elif stage in ("epoch", "epoch-cached"):
    from torch.utils.data import DataLoader
    from proctovision.data.datasets import ManifestDataset
    from proctovision.data.manifest import read_manifest
    from proctovision.data.pixel_cache import PixelCache
    from proctovision.data.transforms import eval_transform
    from proctovision.models.registry import Preprocessing
    frame = read_manifest(folder / "split.csv")
    pre = Preprocessing(32, (0.5,) * 3, (0.5,) * 3)
    cache = PixelCache(folder / "cache", frame, 32) if stage == "epoch-cached" else None
    data = ManifestDataset(frame, task.classes, eval_transform(pre), pixel_cache=cache)
    for _ in DataLoader(data, batch_size=64):
        pass
anon = [line for line in open("/proc/self/status") if line.startswith("RssAnon")]
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "anon_mb_at_end": int(anon[0].split()[1]) / 1024 if anon else None}))
"""


def make_source(folder: Path, rows: int) -> None:
    images = folder / "img"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["path,label,patient_id"]
    for index in range(rows):
        name = f"img/{index:06d}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / name)
        label = "hemorrhoid" if index % 2 else "normal"
        lines.append(f"{name},{label},P{index // 4:06d}")
    (folder / "source.csv").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for rows in (int(value) for value in args.rows.split(",")):
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            make_source(folder, rows)
            figures = {}
            for stage in ("ingest", "split", "epoch", "epoch-cached"):
                done = subprocess.run([sys.executable, "-c", STAGE, stage, str(folder)], capture_output=True,
                                      text=True, env=env, check=True)
                figures[stage] = json.loads(done.stdout.strip().splitlines()[-1])
            manifest_mb = (folder / "manifest.csv").stat().st_size / 2**20
            print(f"{rows:>7} rows: manifest {manifest_mb:6.1f} MB on disk; peak RSS (MB): "
                  + "  ".join(f"{stage} {value['peak_rss_mb']:.0f}" for stage, value in figures.items())
                  + f"; anonymous memory after the cached epoch {figures['epoch-cached']['anon_mb_at_end']:.0f} MB "
                  "(the rest of its RSS is the memory-mapped cache file, which the kernel can drop)")


if __name__ == "__main__":
    main()
