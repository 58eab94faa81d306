"""The two backends: ONNX Runtime for an export folder (no torch) and PyTorch for a run folder (CUDA with
autocast where present, Grad-CAM heatmaps), and ``load_predictor`` that picks one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.artefacts.card import read_card
from proctovision.inference.predictor.base import Predictor


OVERLAY_SIDE = 640


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

        from proctovision.artefacts.card import build_card
        from proctovision.artefacts.runs import read_run
        from proctovision.models.module import load_module

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

        seen = self.spec.cropped(image.convert("RGB"))  # what the model looks at: the content area under crop=content
        pixels = self.spec.prepared(seen)
        cam = build_cam(self.module, "gradcam")
        inputs = torch.from_numpy(pixels[None]).to(self.device)
        heat = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(class_index)])[0]
        # The map is computed on the square model input and drawn back on the frame at the frame's own aspect ratio
        # (the square input stretched a 1280x1024 frame), at most OVERLAY_SIDE pixels on its longer side.
        scale = min(1.0, OVERLAY_SIDE / max(seen.size))
        size = (max(1, round(seen.width * scale)), max(1, round(seen.height * scale)))
        shown = np.asarray(seen.resize(size, Image.BILINEAR), dtype=np.float32) / 255
        heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize(size, Image.BILINEAR))
        overlay = show_cam_on_image(shown, np.clip(heat, 0, 1), use_rgb=True, image_weight=0.55)
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
