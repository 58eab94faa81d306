"""Ingest of a hospital-like DICOM archive: files/s, frames/s and peak memory, for 1 and 2 worker processes.

The archive is built from the DICOM files bundled with pydicom (never downloaded): multi-frame, compressed
(JPEG, JPEG-LS, JPEG 2000, RLE, deflate), colour (RGB, YBR, palette), CT/MR/US/RT Dose/SR/RT Plan/ECG,
a malformed header, a preamble-less file, truncated files, plus two 120-frame ultrasound cines made by
re-encapsulating the JPEG frames of the bundled 30-frame cine. Each configuration runs in a fresh process;
peak memory is the largest sum of proportional resident memory (PSS) over that process and all its children
(workers, fork server), sampled every 20 ms. CPU time (the whole process tree's) gives frames per CPU-second, a figure
that a machine shared with other work does not distort as much as wall time.

Usage: python benchmarks/ingest_archive.py [--copies 3] [--workers 1,2] [--skip-malformed] [--keep DIR]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MALFORMED = {"badVR.dcm"}


def bundled_files() -> list[Path]:
    import pydicom

    return sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm"))


def long_cine(path: Path, repeats: int = 4) -> None:
    """A 120-frame JPEG ultrasound cine: the bundled 30-frame one, its compressed frames repeated."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import generate_uid

    dataset = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "examples_ybr_color.dcm")
    frames = list(generate_frames(dataset.PixelData, number_of_frames=int(dataset.NumberOfFrames)))
    dataset.PixelData = encapsulate(frames * repeats)
    dataset.NumberOfFrames = len(frames) * repeats
    dataset.SOPInstanceUID = generate_uid()
    dataset.save_as(path)


def build_archive(root: Path, copies: int, skip_malformed: bool) -> int:
    """``copies`` copies of every bundled file (as ``normal/`` class folder) plus two long cines."""
    folder = root / "normal"
    folder.mkdir(parents=True)
    count = 0
    for copy in range(copies):
        for source in bundled_files():
            if skip_malformed and source.name in MALFORMED:
                continue
            shutil.copy(source, folder / f"c{copy}_{source.name}")
            count += 1
    for index in range(2):
        long_cine(folder / f"us_cine_{index}.dcm")
        count += 1
    return count


def tree_rss(pid: int) -> int:
    """Proportional resident bytes (PSS) of a process and all its descendants: pages the workers share with
    the fork server they came from are counted once, not once per process."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as stream:
                for line in stream:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    stack.extend(int(child) for child in stream.read().split())
        except (OSError, ValueError):
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, its live descendants and the children they have reaped."""
    ticks, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    stack.extend(int(child) for child in stream.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def run_once(archive: Path, workers: int) -> dict:
    """One ingest in this process; prints a JSON line."""
    from proctovision.data import ingest as ingest_lib
    from proctovision.core.tasks import load_task

    peak = [tree_rss(os.getpid())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_rss(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    options = ingest_lib.DicomOptions(salt="benchmark")
    parameters = inspect.signature(ingest_lib.ingest).parameters
    extra = {"workers": workers} if "workers" in parameters else {}
    cpu_before = tree_cpu_seconds(os.getpid())
    start = time.perf_counter()
    error = ""
    try:
        result = ingest_lib.ingest(archive, load_task("fistula"), dicom_options=options, **extra)
        frames, excluded = len(result.manifest), len(result.excluded)
    except Exception as failure:  # noqa: BLE001 - the benchmark reports a crash as a figure too
        frames, excluded, error = 0, 0, f"{type(failure).__name__}: {failure}"
    seconds = time.perf_counter() - start
    cpu = tree_cpu_seconds(os.getpid()) - cpu_before
    done.set()
    sampler.join()
    return {"workers": workers if extra else "serial (no --workers)", "seconds": seconds, "frames": frames,
            "excluded": excluded, "peak_mib": peak[0] / 2**20, "cpu_seconds": cpu, "error": error}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=3, help="copies of each bundled file")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--skip-malformed", action="store_true", help="leave out the NumberOfFrames='1A' file")
    parser.add_argument("--keep", type=Path, help="build the archive here and keep it")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_once(args.run, int(args.workers))))
        return
    with tempfile.TemporaryDirectory() as scratch:
        archive = args.keep or Path(scratch) / "archive"
        if archive.exists():
            shutil.rmtree(archive)
        files = build_archive(archive, args.copies, args.skip_malformed)
        largest = max(path.stat().st_size for path in archive.rglob("*.dcm")) / 2**20
        total = sum(path.stat().st_size for path in archive.rglob("*.dcm")) / 2**20
        print(f"archive: {files} files, {total:.1f} MiB (largest file {largest:.1f} MiB); "
              f"{os.cpu_count()} CPU(s)")
        for workers in (int(value) for value in args.workers.split(",")):
            output = subprocess.run([sys.executable, __file__, "--run", str(archive), "--workers", str(workers)],
                                    check=True, capture_output=True, text=True).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            if figures["error"]:
                print(f"workers={figures['workers']}: FAILED after {figures['seconds']:.1f} s: {figures['error']}")
                continue
            print(f"workers={figures['workers']}: {figures['seconds']:.2f} s, {files / figures['seconds']:.1f} files/s, "
                  f"{figures['frames'] / figures['seconds']:.1f} frames/s ({figures['frames']} frames kept, "
                  f"{figures['excluded']} files left out), peak memory {figures['peak_mib']:.0f} MiB; "
                  f"CPU {figures['cpu_seconds']:.2f} s = {figures['frames'] / max(figures['cpu_seconds'], 1e-9):.1f} "
                  f"frames per CPU-second")


if __name__ == "__main__":
    main()
