"""The one predictor: a run folder (PyTorch) or an export folder (ONNX Runtime) + inputs → class probabilities.

Every consumer goes through it: evaluate, explain, predict, serve, bench and PACS. Inputs are keyed by
``(path, frame)`` so every frame of a multi-frame DICOM file is its own input. Decoding runs in threads,
overlapped with inference, and follows the model's preprocessing spec (size, resize rule,
mean/std, DICOM window), the same spec that built the training transform. The ONNX path imports neither
torch nor timm, so a clinic machine needs only onnxruntime, numpy, Pillow (and pydicom for DICOM).
"""
from __future__ import annotations

from proctovision.inference.predictor.backends import (
    OnnxPredictor,
    TorchPredictor,
    load_predictor,
    onnx_providers,
    quiet_session_options,
)
from proctovision.inference.predictor.base import (
    GUARD_COLUMNS,
    Prediction,
    PredictionBatch,
    Predictor,
    RowPredictions,
    flat_guard,
)
from proctovision.inference.predictor.inputs import (
    InputKey,
    Progress,
    NO_CONTENT_AREA,
    auto_workers,
    checked_array,
    decoded,
    dicom_frame_count,
    expand_frames,
    expand_paths,
    load_checked_input,
    load_input,
    or_reason,
    read_checked_image,
    row_keys,
    yield_to_inference,
)

__all__ = ["GUARD_COLUMNS", "InputKey", "NO_CONTENT_AREA", "checked_array", "OnnxPredictor", "Prediction", "PredictionBatch", "Predictor", "Progress", "RowPredictions", "TorchPredictor", "auto_workers", "decoded", "dicom_frame_count", "expand_frames", "expand_paths", "flat_guard", "load_checked_input", "load_input", "load_predictor", "onnx_providers", "or_reason", "quiet_session_options", "read_checked_image", "row_keys", "yield_to_inference"]
