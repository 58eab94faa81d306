"""PACS round trip against a local Orthanc: retrieve for ingest, predict a study, predict and push SR + Grad-CAM.

Usage: python benchmarks/pacs_roundtrip.py [RUN_OR_MODEL] [--instances 64] [--size 256]
Needs the Debian packages orthanc and orthanc-dicomweb. Without a model it trains a tiny one first. Orthanc
listens on loopback only, with a temporary storage folder removed at the end.
"""
from __future__ import annotations

import argparse
import glob
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import requests

from proctovision.serving import dicomweb, pacs

USER, PASSWORD = "bench", "bench-pass"
T = TypeVar("T")


def start_orthanc(folder: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    plugins = glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*")
    if not binary or not plugins:
        sys.exit("Orthanc and its DICOMweb plugin are needed: apt-get install orthanc orthanc-dicomweb")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"Name": "bench", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}, "Plugins": plugins[:1],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/system", auth=(USER, PASSWORD), timeout=1).ok:
                return process, f"http://127.0.0.1:{port}/dicom-web"
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    sys.exit("Orthanc did not start")


def make_study(folder: Path, count: int, size: int) -> list[Path]:
    from proctovision.data.synthetic.mri import draw_slice, write_dicom

    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"IM{index:04d}.dcm"
        write_dicom(path, draw_slice(rng, size, index % 2 == 1, 1.0)[0], 1, index, 0)
        paths.append(path)
    return paths


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--instances", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    import pydicom

    from proctovision.inference.predictor import load_predictor

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.model:
            model = Path(args.model)
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from load_test import tiny_run

            model = tiny_run(work / "model")
        process, url = start_orthanc(work)
        environ = {dicomweb.USER_ENV: USER, dicomweb.PASSWORD_ENV: PASSWORD}
        try:
            paths = make_study(work / "study", args.instances, args.size)
            client = dicomweb.connect(url, environ)
            _, stow = timed(lambda: client.store_instances([pydicom.dcmread(path) for path in paths]))
            study = str(pydicom.dcmread(paths[0]).StudyInstanceUID)
            (folder, failures), fetch = timed(lambda: dicomweb.fetch_for_ingest(
                url, work / "ingest" / "manifest.csv", "salt", study=study, environ=environ))
            predictor = load_predictor(model)
            plain, predict = timed(lambda: pacs.predict_study(client, predictor, study))
            pushed, push = timed(lambda: pacs.predict_study(client, predictor, study, push=True))
        finally:
            process.terminate()
            process.wait(30)
    n = args.instances
    print(f"{n} MR instances of {args.size}x{args.size} px, 16 bit; model {model.name}; Orthanc on loopback")
    print(f"upload (STOW-RS, one request):         {stow:6.2f} s  ({n / stow:6.1f} instances/s)")
    print(f"ingest retrieval (QIDO + WADO-RS):     {fetch:6.2f} s  ({n / fetch:6.1f} instances/s, "
          f"{len(failures)} failed)")
    print(f"predict the study (retrieve + model):  {predict:6.2f} s  ({len(plain.findings) / predict:6.1f} images/s)")
    print(f"predict + push SR and {pushed.n_secondary_captures} Grad-CAM SC: {push:6.2f} s  "
          f"({len(pushed.findings) / push:6.1f} images/s)")


if __name__ == "__main__":
    main()
