"""`proctovision bench`: how fast each backbone reads images on this machine, against its compute limit.

For each backbone at its input size: images/s in PyTorch eager and in ONNX Runtime, nominal
FLOPs per image (torch.utils.flop_counter), the matmul GFLOP/s this CPU reaches in the same
run and the fraction of it each path reaches, and, from one run on full-size (1280x1024 JPEG)
generated frames: the decode rate (files to normalised tensors in the loader's worker process),
and the end-to-end rate from files to probabilities with that decoding overlapped with inference.
JPEGs decode at reduced DCT scale (never below the input size), so a full-size frame does not
cost a full-size decode.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from proctovision.core.perf import CPU_FLAGS, cpu_flags  # noqa: F401 - bench prints them
from proctovision.imaging.images import read_image
from proctovision.inference.predictor import Predictor, auto_workers, decoded, load_input
from proctovision.models.module import ClassifierModule
from proctovision.models.registry import get_backbone
from proctovision.imaging.preprocessing import Preprocessing


@dataclass
class BenchResult:
    backbone: str
    input_size: int
    gflops_per_image: float
    eager_images_per_s: float
    onnx_images_per_s: float | None
    end_to_end_images_per_s: float | None
    matmul_gflops: float
    decode_images_per_s: float | None = None

    @property
    def eager_fraction(self) -> float:
        return self.eager_images_per_s * self.gflops_per_image / self.matmul_gflops

    @property
    def onnx_fraction(self) -> float | None:
        if self.onnx_images_per_s is None:
            return None
        return self.onnx_images_per_s * self.gflops_per_image / self.matmul_gflops

    def to_dict(self) -> dict:
        return {**asdict(self), "eager_fraction": self.eager_fraction, "onnx_fraction": self.onnx_fraction}


def best_rate(run: Callable[[], None], items: int, repeats: int = 3, budget_s: float = 20.0) -> float:
    """Items per second of the fastest of a few timed calls, after one warm-up."""
    run()
    best = float("inf")
    started = time.perf_counter()
    for _ in range(repeats):
        begin = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - begin)
        if time.perf_counter() - started > budget_s:
            break
    return items / best


def sustained_rate(run: Callable[[], None], items: int, seconds: float = 6.0) -> float:
    """Items per second over calls repeated for ``seconds`` after one warm-up: a rate a service keeps up, where
    :func:`best_rate` takes the fastest single call."""
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += items
    return count / (time.perf_counter() - start)


def matmul_gflops(size: int = 2048, inner: int = 4096) -> float:
    """The float32 matrix-multiply rate of this CPU: the compute limit to compare models with."""
    left, right = torch.randn(size, inner), torch.randn(inner, size)
    return best_rate(lambda: torch.mm(left, right), 1, repeats=5) * 2 * size * inner * size / 1e9


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def onnx_session(model: torch.nn.Module, size: int, folder: Path,
                 quiet: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Export to ONNX and return a function running a float32 batch through ONNX Runtime: threads spinning
    (fastest for the model alone) or, with ``quiet``, as the predictor runs it beside decoding."""
    import onnxruntime

    from proctovision.inference.predictor import quiet_session_options
    from proctovision.deploy.export import to_onnx

    path = folder / "model.onnx"
    if not path.is_file():
        to_onnx(model, size, path)
    options = quiet_session_options() if quiet else onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"input": batch})[0]


def eager_runner(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(batch)), dim=1).numpy()

    return run


def model_rate(runner: Callable[[np.ndarray], np.ndarray], size: int, batch: int) -> float:
    inputs = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    return best_rate(lambda: runner(inputs), batch)


class RunnerPredictor(Predictor):
    """A bare model runner behind the predictor's own decoding and batching (``Predictor.predict_keys``), so
    files → probabilities is timed on the path that ``predict`` and ``evaluate`` take."""

    def __init__(self, runner: Callable[[np.ndarray], np.ndarray], size: int, classes: int = 2) -> None:
        self.runner = runner
        self.classes = tuple(f"class {index}" for index in range(classes))
        self.card = {"classes": list(self.classes),
                     "preprocessing": Preprocessing(size, (0.5,) * 3, (0.5,) * 3).to_dict()}

    def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.runner(batch)


def full_size_frames(folder: Path, images: int) -> list[str]:
    """Generated 1280x1024 endoscopy JPEGs, as a processor exports them."""
    from proctovision.data.synthetic.endoscopy import generate_endoscopy
    from proctovision.data.manifest import read_manifest

    sources = generate_endoscopy(folder / "data", patients=max(images // 4, 1), images_per_patient=4)
    return [str(path) for path in read_manifest(sources["hemorrhoid"])["path"]]


def decode_and_end_to_end_rates(runner: Callable[[np.ndarray], np.ndarray], size: int, batch: int, folder: Path,
                                images: int = 192) -> tuple[float, float]:
    """Images/s of decoding alone and of files → probabilities, on the same frames and decoding threads."""
    paths = full_size_frames(folder, images)
    decode = decode_rate(paths, size)
    predictor = RunnerPredictor(runner, size)
    keys = [(path, None) for path in paths]
    files = best_rate(lambda: predictor.predict_keys(keys, batch, decode_threads(keys), calibrated=False),
                      len(paths), repeats=3)
    return decode, files


def decode_threads(keys: list) -> int:
    return max(1, auto_workers(len(keys)))


def decode_rate(paths: list[str], size: int, loader: Callable = load_input) -> float:
    """Images/s of decoding alone to the model's input, in the predictor's decoding threads; ``loader`` replaces
    the predictor's reduced-scale decode (``full_size_input``: no DCT scaling, for comparison)."""
    spec = Preprocessing(size, (0.5,) * 3, (0.5,) * 3)
    keys = [(path, None) for path in paths]

    def decode_all() -> None:
        for _ in decoded(keys, spec, decode_threads(keys), loader):
            pass

    return best_rate(decode_all, len(paths), repeats=2)


def full_size_input(key: tuple[str, None], spec: Preprocessing) -> np.ndarray:
    return spec.to_array(read_image(key[0]))


def bench_backbone(name: str, batch: int, gflops: float, onnx: bool, end_to_end: bool, size: int | None) -> BenchResult:
    """Eager and ONNX Runtime model-only rates; decode and end-to-end rates use the faster of the two runtimes,
    run as the predictor runs it (ONNX Runtime's threads not spinning)."""
    spec = get_backbone(name)
    size = size or spec.preprocessing.input_size
    model = ClassifierModule(spec.name, 2, mode="frozen", head="linear", image_size=size).eval()
    with tempfile.TemporaryDirectory() as folder:
        eager = eager_runner(model)
        eager_speed = model_rate(eager, size, batch)
        onnx_runner = onnx_session(model, size, Path(folder)) if onnx else None
        onnx_speed = model_rate(onnx_runner, size, batch) if onnx_runner else None
        onnx_faster = bool(onnx_speed and onnx_speed > eager_speed)
        runner = onnx_session(model, size, Path(folder), quiet=True) if onnx_faster and end_to_end else eager
        decode, files = decode_and_end_to_end_rates(runner, size, batch, Path(folder)) if end_to_end else (None, None)
        return BenchResult(
            backbone=spec.name, input_size=size, gflops_per_image=flops_per_image(model, size),
            eager_images_per_s=eager_speed, onnx_images_per_s=onnx_speed, end_to_end_images_per_s=files,
            matmul_gflops=gflops, decode_images_per_s=decode,
        )


def allocator_gain(name: str, batch: int, size: int | None) -> tuple[float, float]:
    """Eager images/s in fresh processes with and without the allocator tuning, to show what it buys."""
    import json
    import subprocess
    import sys

    script = (
        "import json,sys;from proctovision.core.perf import tune_allocator;tune_allocator();"
        "from proctovision.deploy.bench import eager_runner,model_rate;from proctovision.models.module import ClassifierModule;"
        "from proctovision.models.registry import get_backbone;s=get_backbone(sys.argv[1]);"
        "z=int(sys.argv[3]) or s.preprocessing.input_size;"
        "m=ClassifierModule(s.name,2,mode='frozen',head='linear',image_size=z).eval();"
        "print(json.dumps(model_rate(eager_runner(m),z,int(sys.argv[2]))))"
    )
    rates = []
    for disabled in ("1", "0"):
        env = {**os.environ, "PROCTOVISION_NO_MALLOC_TUNING": disabled}
        done = subprocess.run([sys.executable, "-c", script, name, str(batch), str(size or 0)], env=env,
                              capture_output=True, text=True, check=True)
        rates.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rates[0], rates[1]


def int8_speed(name: str, batch: int, size: int | None, calibration_batches: int = 8) -> dict:
    """FP32 vs INT8 (static QDQ, per-channel) ONNX Runtime images/s of one backbone, in one run.

    Calibrated on random inputs: the ranges do not change the speed, only the accuracy, which
    ``export --quantize int8`` checks on real validation images.
    """
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader

    from proctovision.deploy.export import to_onnx
    from proctovision.deploy.quantize import quantize_int8

    spec = get_backbone(name)
    size = size or spec.preprocessing.input_size
    model = ClassifierModule(spec.name, 2, mode="frozen", head="linear", image_size=size).eval()
    rng = np.random.default_rng(0)

    class RandomImages(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = calibration_batches

        def get_next(self) -> dict | None:
            self.left -= 1
            return None if self.left < 0 else {"input": rng.standard_normal((1, 3, size, size), dtype=np.float32)}

    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        fp32 = Path(folder) / "fp32.onnx"
        to_onnx(model, size, fp32)
        int8 = quantize_int8(fp32, Path(folder) / "int8.onnx", RandomImages(), Path(folder))
        for label, path in (("fp32", fp32), ("int8", int8)):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            rates[label] = model_rate(lambda inputs, session=session: session.run(None, {"input": inputs})[0], size,
                                      batch)
    return {"backbone": spec.name, "input_size": size, "batch": batch, "fp32_images_per_s": rates["fp32"],
            "int8_images_per_s": rates["int8"], "speedup": rates["int8"] / rates["fp32"], "cpu_flags": cpu_flags()}
