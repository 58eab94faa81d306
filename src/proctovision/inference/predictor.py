"""Predict class probabilities for files on disk, from a run folder (PyTorch) or an exported folder (ONNX Runtime).

The ONNX path imports neither torch nor timm, so a clinic machine needs only onnxruntime,
numpy, Pillow (and pydicom for DICOM).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.data.images import ImageReadError, is_candidate_file, read_image
from proctovision.serving.card import read_card, threshold_value
from proctovision.serving.preprocess import to_input_array


@dataclass
class Prediction:
    path: str
    predicted: str
    probabilities: dict[str, float]
    threshold: float | None
    frame: int | None = None


@dataclass
class PredictionBatch:
    predictions: list[Prediction] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0


def rescale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling as evaluation/calibration.scale does it, in numpy alone (no scipy on the ONNX path)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


class Predictor:
    """Shared logic: preprocessing from the card, decision rule, batching over files."""

    classes: tuple[str, ...]
    card: dict

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def threshold(self) -> float | None:
        """Binary tasks: probability of the second class at or above which it is called."""
        return threshold_value(self.card)

    def prepare(self, image: Image.Image) -> np.ndarray:
        pre = self.card["preprocessing"]
        return to_input_array(image, int(pre["input_size"]), pre["mean"], pre["std"])

    def decide(self, probabilities: np.ndarray) -> str:
        if self.threshold is not None:
            return self.classes[1] if probabilities[1] >= self.threshold else self.classes[0]
        return self.classes[int(np.argmax(probabilities))]

    def heatmap_png(self, image: Image.Image, class_index: int) -> bytes | None:
        """A Grad-CAM overlay as PNG bytes; only a run folder (PyTorch) can make one."""
        return None

    def predict_images(self, images: list[Image.Image]) -> np.ndarray:
        """Probabilities as evaluation reported them: temperature-scaled when the card says so."""
        probabilities = self.probabilities(np.stack([self.prepare(image) for image in images]))
        temperature = self.card.get("temperature")
        return rescale(probabilities, float(temperature)) if temperature else probabilities

    def predict_files(self, paths: Iterable[Path], batch_size: int = 16) -> PredictionBatch:
        """Unreadable files are reported with the reason; the rest are predicted."""
        result = PredictionBatch()
        window = (self.card.get("preprocessing") or {}).get("window")
        start = time.perf_counter()
        pending: list[tuple[Path, Image.Image]] = []
        for path in paths:
            try:
                pending.append((path, read_image(path, window=window)))
            except ImageReadError as error:
                result.errors.append((str(path), error.reason))
            if len(pending) == batch_size:
                self._flush(pending, result)
        self._flush(pending, result)
        result.seconds = time.perf_counter() - start
        return result

    def _flush(self, pending: list[tuple[Path, Image.Image]], result: PredictionBatch) -> None:
        if not pending:
            return
        probabilities = self.predict_images([image for _, image in pending])
        for (path, _), row in zip(pending, probabilities):
            result.predictions.append(
                Prediction(str(path), self.decide(row), {c: round(float(p), 6) for c, p in zip(self.classes, row)},
                           self.threshold)
            )
        pending.clear()


class OnnxPredictor(Predictor):
    def __init__(self, folder: str | Path) -> None:
        import onnxruntime

        self.folder = Path(folder)
        self.card = read_card(self.folder)
        self.classes = tuple(self.card["classes"])
        self.session = onnxruntime.InferenceSession(str(self.folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": batch.astype(np.float32)})[0]


class TorchPredictor(Predictor):
    def __init__(self, run_dir: str | Path) -> None:
        from proctovision.evaluation.evaluate import load_module
        from proctovision.runs import read_run
        from proctovision.serving.card import build_card

        self.run = read_run(run_dir)
        self.card = build_card(self.run)
        self.classes = self.run.task.classes
        self.module = load_module(self.run)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.softmax(self.module(torch.from_numpy(batch)), dim=1).numpy()

    def heatmap_png(self, image: Image.Image, class_index: int) -> bytes | None:
        import io

        import torch
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from proctovision.explain import build_cam

        pixels = self.prepare(image)
        cam = build_cam(self.module, "gradcam")
        heat = cam(input_tensor=torch.from_numpy(pixels[None]), targets=[ClassifierOutputTarget(class_index)])[0]
        pre = self.card["preprocessing"]
        original = np.clip(pixels.transpose(1, 2, 0) * np.array(pre["std"]) + np.array(pre["mean"]), 0, 1)
        overlay = show_cam_on_image(original.astype(np.float32), heat, use_rgb=True, image_weight=0.55)
        buffer = io.BytesIO()
        Image.fromarray(overlay).save(buffer, format="PNG")
        return buffer.getvalue()


def load_predictor(source: str | Path) -> Predictor:
    """A run folder (config.yaml + checkpoints) or an exported folder (model.onnx + model_card.json)."""
    source = Path(source)
    if (source / "model.onnx").is_file():
        return OnnxPredictor(source)
    if (source / "config.yaml").is_file():
        return TorchPredictor(source)
    raise FileNotFoundError(f"{source}: neither a run folder (config.yaml) nor an exported model (model.onnx)")


def expand_paths(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively for image and DICOM files, in sorted order."""
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            yield from (path for path in sorted(item.rglob("*")) if path.is_file() and is_candidate_file(path))
        else:
            yield item
