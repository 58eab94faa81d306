"""The one predictor: a run folder (PyTorch) or an export folder (ONNX Runtime) + inputs → class probabilities.

Every consumer goes through it: evaluate, explain, predict, serve, bench and PACS. Inputs are keyed by
``(path, frame)`` so every frame of a multi-frame DICOM file is its own input. Decoding runs in threads,
overlapped with inference, and follows the model's preprocessing spec (size, resize rule,
mean/std, DICOM window), the same spec that built the training transform. The ONNX path imports neither
torch nor timm, so a clinic machine needs only onnxruntime, numpy, Pillow (and pydicom for DICOM).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.imaging.images import ImageReadError, is_candidate_file, looks_like_dicom, read_image
from proctovision.core.decision import decide, scale
from proctovision.inference.ood import OodDetector, load_detector
from proctovision.imaging.quality import MEASURE_WIDTH, assess_quality
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.artefacts.card import read_card, threshold_value

Progress = Callable[[int, int], None]
InputKey = tuple[str, "int | None"]


@dataclass
class Prediction:
    path: str
    predicted: str
    probabilities: dict[str, float]
    threshold: float | None
    frame: int | None = None
    guard: dict | None = None

    def flat_guard(self) -> dict:
        """The OOD and quality fields as flat columns for predictions.csv."""
        return flat_guard(self.guard)


@dataclass
class PredictionBatch:
    predictions: list[Prediction] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RowPredictions:
    """Probabilities aligned with the inputs given; rows that could not be read are NaN and listed in ``errors``
    as ``(index, reason)``."""

    probabilities: np.ndarray
    errors: list[tuple[int, str]]
    seconds: float
    features: np.ndarray | None = None
    ood_scores: np.ndarray | None = None
    quality: list[dict | None] | None = None

    @property
    def images_per_s(self) -> float:
        done = len(self.probabilities) - len(self.errors)
        return done / self.seconds if self.seconds > 0 else float("inf")


def load_input(key: InputKey, spec: Preprocessing) -> np.ndarray | str:
    """One input as the model's array, or the reason it cannot be read (decoding threads return, never raise)."""
    path, frame = key
    return or_reason(lambda: spec.to_array(read_image(path, frame=frame, window=spec.window,
                                                      min_size=spec.input_size)))


def load_checked_input(key: InputKey, spec: Preprocessing) -> tuple[np.ndarray, dict] | str:
    """One input as the model's array with its image-quality measures (taken before the resize), or the reason."""
    def read() -> tuple[np.ndarray, dict]:
        image = read_checked_image(key, spec)
        return spec.to_array(image), assess_quality(image).to_dict()

    return or_reason(read)


def read_checked_image(key: InputKey, spec: Preprocessing) -> Image.Image:
    """An input decoded for the model and for the quality measures: JPEG scaled down no further than the
    larger of the model's input size and the quality measures' width."""
    path, frame = key
    return read_image(path, frame=frame, window=spec.window, min_size=max(spec.input_size, MEASURE_WIDTH))


def or_reason(read: Callable[[], object]) -> object:
    """What ``read`` returns, or the reason it failed: one broken file must not stop the batch."""
    try:
        return read()
    except ImageReadError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - reported as the file's reason
        return f"unreadable ({type(error).__name__}: {error})"


def decoded(keys: Sequence[InputKey], spec: Preprocessing, workers: int,
            loader: Callable = load_input) -> Iterator[np.ndarray | tuple | str]:
    """Arrays (or reasons) in input order; with ``workers`` > 0 decoding runs ahead in threads.

    Threads, not processes: Pillow's decoders and resize and numpy release the GIL, so threads decode in parallel
    with each other and with ONNX Runtime, while a process pool's pickling of each array cost more than the
    decode itself (1280x1024 JPEG to 224 px on 2 cores: 279 images/s through one worker process, 415 in the
    calling thread, 676 in two threads)."""
    if workers <= 0:
        yield from (loader(key, spec) for key in keys)
        return
    ahead = max(64, workers * 32)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode", initializer=yield_to_inference) as pool:
        pending: deque[Future] = deque()
        queue = iter(keys)
        _fill(pool, pending, queue, spec, ahead, loader)
        while pending:
            result = pending.popleft().result()
            _fill(pool, pending, queue, spec, ahead, loader)
            yield result


def yield_to_inference() -> None:
    """Decoding threads at the lowest priority fill the gaps of the model's parallel operations instead of
    stalling one of its threads (every thread of an operation waits for the slowest); when they fall behind,
    inference waits for inputs and they get the cores. Measured on 2 cores: files → probabilities 128 → 134
    images/s. Linux sets niceness per thread; elsewhere this does nothing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _fill(pool: Executor, pending: deque, queue: Iterator[InputKey], spec: Preprocessing, ahead: int,
          loader: Callable = load_input) -> None:
    while len(pending) < ahead:
        key = next(queue, None)
        if key is None:
            return
        pending.append(pool.submit(loader, key, spec))


def auto_workers(n_inputs: int) -> int:
    """Decoding threads pay off past a few dozen inputs; one core stays for inference."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n_inputs < 48 or cores < 2 else min(4, cores - 1)


class Predictor:
    """Shared logic: preprocessing from the spec, the decision rule of the card, batching over inputs."""

    classes: tuple[str, ...]
    card: dict
    backend: str = ""
    model_file: Path | None = None  # the file whose bytes make the answers, named by audits and DICOM reports

    @property
    def spec(self) -> Preprocessing:
        pre = self.card["preprocessing"]
        return Preprocessing.from_dict(pre, pre.get("window"))

    def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and penultimate features (None where the model does not expose them)."""
        return self.raw_probabilities(batch), None

    @property
    def ood_detector(self) -> OodDetector | None:
        """The out-of-distribution detector stored beside the model (ood.npz), loaded once."""
        if not hasattr(self, "_ood_detector"):
            folder = getattr(self, "folder", None)
            self._ood_detector = load_detector(folder) if folder is not None else None
        return self._ood_detector

    def ood_scores(self, features: np.ndarray | None) -> np.ndarray | None:
        detector = self.ood_detector
        return None if detector is None or features is None else detector.scores(features)

    def guard(self, score: float | None, quality: dict | None) -> dict:
        """``in_distribution`` (None when the model has no detector), the score and threshold, the quality flags."""
        detector = self.ood_detector
        known = detector is not None and score is not None and np.isfinite(score)
        return {
            "in_distribution": bool(score <= detector.threshold) if known else None,
            "ood_score": round(float(score), 4) if known else None,
            "ood_threshold": round(detector.threshold, 4) if detector is not None else None,
            "quality": quality,
        }

    @property
    def threshold(self) -> float | None:
        """Binary tasks: probability of the second class at or above which it is called."""
        return threshold_value(self.card)

    @property
    def temperature(self) -> float | None:
        value = self.card.get("temperature")
        return float(value) if value else None

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities as evaluation reported them: temperature-scaled when the card says so."""
        return scale(probabilities, self.temperature) if self.temperature else probabilities

    def prepare(self, image: Image.Image) -> np.ndarray:
        return self.spec.to_array(image)

    def decide(self, probabilities: np.ndarray) -> str:
        return self.classes[int(decide(np.asarray(probabilities)[None], self.threshold)[0])]

    def heatmap_png(self, image: Image.Image, class_index: int) -> bytes | None:
        """A Grad-CAM overlay as PNG bytes; only a run folder (PyTorch) can make one."""
        return None

    def predict_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.calibrate(self.raw_probabilities(np.stack([self.prepare(image) for image in images])))

    def predict_keys(
        self, keys: Sequence[InputKey], batch_size: int = 32, workers: int | None = None, calibrated: bool = True,
        progress: Progress | None = None, with_features: bool = False, checks: bool = False,
    ) -> RowPredictions:
        """Probabilities for every ``(path, frame)``; unreadable inputs become NaN rows with their reason.

        ``with_features`` also keeps the penultimate features; ``checks`` adds the OOD scores and the
        image-quality measures. The wall time covers reading files and inference, as a reader's time covers
        looking and deciding.
        """
        workers = auto_workers(len(keys)) if workers is None else workers
        probabilities = np.full((len(keys), len(self.classes)), np.nan, dtype=np.float64)
        features: np.ndarray | None = None
        quality: list[dict | None] = [None] * len(keys)
        errors: list[tuple[int, str]] = []
        start = time.perf_counter()
        arrays: list[np.ndarray] = []
        slots: list[int] = []
        loader = load_checked_input if checks else load_input
        for index, item in enumerate(decoded(keys, self.spec, workers, loader)):
            if isinstance(item, str):
                errors.append((index, item))
            else:
                if checks:
                    item, quality[index] = item
                arrays.append(item)
                slots.append(index)
            if len(arrays) == batch_size or (index == len(keys) - 1 and arrays):
                output, batch_features = self.raw_outputs(np.stack(arrays)) if (with_features or checks) else (
                    self.raw_probabilities(np.stack(arrays)), None)
                probabilities[slots] = self.calibrate(output) if calibrated else output
                if batch_features is not None:
                    if features is None:
                        features = np.full((len(keys), batch_features.shape[1]), np.nan, dtype=np.float32)
                    features[slots] = batch_features
                arrays, slots = [], []
            if progress:
                progress(index + 1, len(keys))
        return RowPredictions(probabilities, errors, time.perf_counter() - start, features,
                              self.ood_scores(features) if checks else None, quality if checks else None)

    def predict_files(self, paths: Iterable[Path], batch_size: int = 16, workers: int | None = None,
                      checks: bool = True) -> PredictionBatch:
        """Files and every frame of multi-frame DICOM; unreadable files are reported with the reason.

        With ``checks`` each prediction carries its guard: in distribution or not, and the quality flags.
        """
        keys, errors = expand_frames(paths)
        rows = self.predict_keys(keys, batch_size, workers, checks=checks)
        failed = dict(rows.errors)
        result = PredictionBatch(errors=errors + [(keys[i][0], reason) for i, reason in rows.errors],
                                 seconds=rows.seconds)
        for index, ((path, frame), row) in enumerate(zip(keys, rows.probabilities)):
            if index not in failed:
                guard = None
                if checks:
                    score = None if rows.ood_scores is None else float(rows.ood_scores[index])
                    guard = self.guard(score, rows.quality[index])
                result.predictions.append(Prediction(
                    path, self.decide(row), {c: round(float(p), 6) for c, p in zip(self.classes, row)},
                    self.threshold, frame, guard))
        return result


GUARD_COLUMNS = ("in_distribution", "ood_score", "too_dark", "overexposed", "blurred")


def flat_guard(guard: dict | None) -> dict:
    """``in_distribution``, ``ood_score`` and one column per quality flag; empty where not measured."""
    guard = guard or {}
    quality = guard.get("quality") or {}
    flat = {"in_distribution": guard.get("in_distribution"), "ood_score": guard.get("ood_score")}
    flat.update({name: quality.get(name) for name in ("too_dark", "overexposed", "blurred")})
    return {key: "" if value is None else value for key, value in flat.items()}


class OnnxPredictor(Predictor):
    backend = "onnxruntime"

    def __init__(self, folder: str | Path, model_file: str = "model.onnx") -> None:
        import onnxruntime

        self.folder = Path(folder)
        self.card = read_card(self.folder)
        self.classes = tuple(self.card["classes"])
        self.model_file = self.folder / model_file
        self.session = onnxruntime.InferenceSession(str(self.model_file), quiet_session_options(),
                                                    providers=onnx_providers())
        self.has_features = "features" in {output.name for output in self.session.get_outputs()}

    def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["probabilities"], {"input": np.asarray(batch, dtype=np.float32)})[0]

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.has_features:
            return self.raw_probabilities(batch), None
        probabilities, features = self.session.run(["probabilities", "features"],
                                                   {"input": np.asarray(batch, dtype=np.float32)})
        return probabilities, features


def quiet_session_options() -> "onnxruntime.SessionOptions":  # noqa: F821
    """ONNX Runtime's threads spin while they wait for work, on the very cores that decoding, resizing and request
    handling need beside them: with spinning off, files → probabilities ran 15% faster on 2 cores, the model alone
    3% slower."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def onnx_providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in available]


class TorchPredictor(Predictor):
    """A run folder's best checkpoint; on CUDA with mixed precision and channels_last, else on the CPU."""

    backend = "pytorch"

    def __init__(self, run_dir: str | Path, device: str | None = None) -> None:
        import torch

        from proctovision.artefacts.runs import read_run
        from proctovision.models.module import load_module
        from proctovision.artefacts.card import build_card

        self.run = read_run(run_dir)
        self.folder = self.run.paths.root
        self.card = build_card(self.run)
        self.classes = self.run.task.classes
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model_file = self.run.checkpoint()
        self.module = load_module(self.run).to(self.device)
        if self.device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)

    def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=cuda):
            return torch.softmax(self.module(inputs).float(), dim=1).cpu().numpy()

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=cuda):
            features = self.module.features(inputs).float()
            probabilities = torch.softmax(self.module.head(features).float(), dim=1)
        return probabilities.cpu().numpy(), features.cpu().numpy()

    def heatmap_png(self, image: Image.Image, class_index: int) -> bytes | None:
        import io

        import torch
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from proctovision.inference.cam import build_cam

        pixels = self.prepare(image)
        cam = build_cam(self.module, "gradcam")
        inputs = torch.from_numpy(pixels[None]).to(self.device)
        heat = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(class_index)])[0]
        overlay = show_cam_on_image(self.spec.denormalise(pixels).astype(np.float32), heat, use_rgb=True,
                                    image_weight=0.55)
        buffer = io.BytesIO()
        Image.fromarray(overlay).save(buffer, format="PNG")
        return buffer.getvalue()


def load_predictor(source: str | Path, backend: str = "auto") -> Predictor:
    """A run folder (config.yaml + checkpoints) or an exported folder (model.onnx + model_card.json).

    ``backend``: ``auto`` (ONNX Runtime for an export, PyTorch for a run), ``onnx`` or ``torch``.
    """
    source = Path(source)
    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"unknown backend {backend!r}: use auto, onnx or torch")
    if (source / "model.onnx").is_file() and backend in ("auto", "onnx"):
        return OnnxPredictor(source)
    if (source / "config.yaml").is_file() and backend in ("auto", "torch"):
        return TorchPredictor(source)
    raise FileNotFoundError(f"{source}: neither a run folder (config.yaml) nor an exported model (model.onnx)"
                            + ("" if backend == "auto" else f" for backend {backend}"))


def expand_paths(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively for image and DICOM files, in sorted order."""
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            yield from (path for path in sorted(item.rglob("*")) if path.is_file() and is_candidate_file(path))
        else:
            yield item


def dicom_frame_count(path: Path) -> int:
    """Frames in a DICOM file, from its header alone (1 for single-frame files)."""
    import pydicom

    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    value = getattr(dataset, "NumberOfFrames", 1) or 1
    try:
        return max(1, int(str(value).strip()))
    except ValueError as error:
        raise ImageReadError(path, f"malformed header: NumberOfFrames is {str(value)!r}, not a number") from error


def row_keys(rows: "pd.DataFrame") -> list[InputKey]:  # noqa: F821
    """``(path, frame)`` of each manifest row; an empty or missing frame (single-frame files) is None."""
    frames = rows["frame"] if "frame" in rows.columns else [None] * len(rows)
    return [(str(path), None if frame is None or str(frame).strip() in ("", "<NA>", "nan", "None")
             or frame != frame else int(float(frame))) for path, frame in zip(rows["path"], frames)]


def expand_frames(paths: Iterable[Path]) -> tuple[list[InputKey], list[tuple[str, str]]]:
    """One key per image, one per frame of a multi-frame DICOM file; files that cannot say are errors."""
    keys: list[InputKey] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        path = Path(path)
        if not path.is_file() or not looks_like_dicom(path):
            keys.append((str(path), None))
            continue
        try:
            count = dicom_frame_count(path)
        except ImageReadError as error:
            errors.append((str(path), error.reason))
            continue
        except Exception as error:  # noqa: BLE001 - report the file, go on with the rest
            errors.append((str(path), f"unreadable DICOM header ({type(error).__name__})"))
            continue
        keys.extend((str(path), frame if count > 1 else None) for frame in range(count))
    return keys, errors
