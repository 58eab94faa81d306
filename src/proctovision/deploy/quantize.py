"""INT8 export: ONNX Runtime static quantisation (QDQ, per-channel weights), kept only if it decides as FP32 did.

Calibration feeds training images through the model's own preprocessing spec, so the activation ranges are
those the model meets in use. The INT8 model is then run beside the FP32 one on the validation split and
refused unless the decisions agree on at least 99% of images and the AUC drops by at most 0.01; both figures
go to the console and the model card.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from proctovision.imaging.images import read_image
from proctovision.core.decision import decide, scale
from proctovision.core.perf import has_vnni
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.artefacts.runs import RunError, RunInfo

CALIBRATION_IMAGES = 64


@dataclass(frozen=True)
class ParityLimits:
    min_agreement: float = 0.99
    max_auc_drop: float = 0.01


def split_keys(run: RunInfo, split: str) -> tuple[list[tuple[str, int | None]], list[str]]:
    from proctovision.artefacts.runs import split_rows

    rows = split_rows(run, split)
    frames = rows["frame"] if "frame" in rows.columns else [None] * len(rows)
    keys = [(str(path), None if frame is None or str(frame) in ("", "nan") else int(float(frame)))
            for path, frame in zip(rows["path"], frames)]
    return keys, [str(label) for label in rows["label"]]


def image_arrays(keys: Sequence[tuple[str, int | None]], spec: Preprocessing) -> Iterator[np.ndarray]:
    for path, frame in keys:
        yield spec.to_array(read_image(path, frame=frame, window=spec.window))


class TrainingImages(CalibrationDataReader):
    """A CalibrationDataReader: training images, one batch of one at a time, preprocessed as in use."""

    def __init__(self, keys: Sequence[tuple[str, int | None]], spec: Preprocessing) -> None:
        self.keys, self.spec = list(keys), spec
        self.rewind()

    def get_next(self) -> dict | None:
        array = next(self.arrays, None)
        return None if array is None else {"input": array[None].astype(np.float32)}

    def rewind(self) -> None:
        self.arrays = image_arrays(self.keys, self.spec)


def calibration_keys(keys: list, labels: list[str], limit: int = CALIBRATION_IMAGES, seed: int = 0) -> list:
    """Up to ``limit`` training images, every class represented, in a fixed order."""
    order = np.random.default_rng(seed).permutation(len(keys))
    by_class: dict[str, list[int]] = {}
    for index in order:
        by_class.setdefault(labels[index], []).append(int(index))
    chosen: list[int] = []
    while len(chosen) < min(limit, len(keys)):
        for items in by_class.values():
            if items and len(chosen) < limit:
                chosen.append(items.pop(0))
    return [keys[index] for index in chosen]


QUANTISED_OPERATORS = ("Conv", "Gemm", "MatMul", "Relu", "Clip", "Add", "GlobalAveragePool", "MaxPool",
                       "AveragePool")


def quantize_int8(fp32: Path, out: Path, reader: CalibrationDataReader, scratch: Path,
                  reduce_range: bool | None = None) -> Path:
    """QDQ static quantisation, per-channel signed weights and unsigned activations (U8S8), after ONNX
    Runtime's pre-processing pass.

    The operators are listed rather than left to the default: the default also quantises the shape arithmetic
    (Sub, Div, Ceil, ...) that computes the 'same' padding of TF-ported EfficientNets, which collapsed
    EfficientNet-Lite0's features. U8S8 is the pair ONNX Runtime's x86 kernels are fastest with (VNNI);
    on ResNet-34 at batch 16 on a 2-core AVX-512 VNNI machine S8S8 ran slower than FP32, U8S8 2.5-3.5x faster.
    Without VNNI (AVX2 alone) the U8S8 kernels add pairs of 8-bit products in 16 bits and saturate: on an AVX2
    machine EfficientNet-Lite0's decisions agreed with FP32 on half the images. ``reduce_range`` (7-bit weights,
    ONNX Runtime's advice for such CPUs) is then the default.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = scratch / "model.prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=list(QUANTISED_OPERATORS), activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, reduce_range=not has_vnni() if reduce_range is None else reduce_range)
    return out


def session_probabilities(model: Path, arrays: np.ndarray, batch_size: int = 16) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["probabilities"], {"input": arrays[start:start + batch_size]})[0]
                           for start in range(0, len(arrays), batch_size)])


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC: of the second class for two classes, else one-vs-rest macro."""
    from sklearn.metrics import roc_auc_score

    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels == 1, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=list(range(probabilities.shape[1]))))


def parity_figures(fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, threshold: float | None,
                   temperature: float | None = None) -> dict:
    """Decision agreement and AUC of both models on the same images, decided as predict decides."""
    if temperature:
        fp32, int8 = scale(fp32, temperature), scale(int8, temperature)
    agreement = float(np.mean(decide(fp32, threshold) == decide(int8, threshold)))
    single_class = len(np.unique(labels)) < 2
    auc_fp32 = None if single_class else auc(labels, fp32)
    auc_int8 = None if single_class else auc(labels, int8)
    return {
        "n_images": int(len(labels)), "decision_agreement": round(agreement, 6),
        "auc_fp32": None if auc_fp32 is None else round(auc_fp32, 6),
        "auc_int8": None if auc_int8 is None else round(auc_int8, 6),
        "auc_drop": None if auc_fp32 is None else round(auc_fp32 - auc_int8, 6),
        "max_abs_probability_diff": round(float(np.abs(fp32 - int8).max()), 6),
    }


def verdict(figures: dict, limits: ParityLimits) -> list[str]:
    """The reasons to refuse the INT8 model; empty when it may replace FP32."""
    reasons = []
    if figures["decision_agreement"] < limits.min_agreement:
        reasons.append(f"decisions agree with FP32 on {figures['decision_agreement']:.1%} of validation images "
                       f"(needs >= {limits.min_agreement:.0%})")
    if figures["auc_drop"] is not None and figures["auc_drop"] > limits.max_auc_drop:
        reasons.append(f"AUC drops by {figures['auc_drop']:.4f} (allowed <= {limits.max_auc_drop})")
    return reasons


def quantize_checked(run: RunInfo, fp32: Path, scratch: Path, report: Callable[[str], None] | None = None,
                     limits: ParityLimits = ParityLimits()) -> tuple[Path, dict]:
    """The INT8 model and its parity figures on the validation split; RunError (nothing kept) if they fall short."""
    from proctovision.artefacts.card import build_card, threshold_value

    spec = run.preprocessing
    train_keys, train_labels = split_keys(run, "train")
    chosen = calibration_keys(train_keys, train_labels)
    int8 = quantize_int8(fp32, scratch / "model.int8.onnx", TrainingImages(chosen, spec), scratch)
    val_keys, val_labels = split_keys(run, "val")
    arrays = np.stack(list(image_arrays(val_keys, spec))).astype(np.float32)
    labels = np.array([run.task.classes.index(label) for label in val_labels])
    card = build_card(run)
    figures = parity_figures(session_probabilities(fp32, arrays), session_probabilities(int8, arrays), labels,
                             threshold_value(card), card.get("temperature"))
    weights = "per-channel weights" if has_vnni() else "per-channel 7-bit weights (no VNNI on this CPU)"
    result = {"format": f"int8 static QDQ (U8S8), {weights} (ONNX Runtime)", "calibration_images": len(chosen),
              "validation": figures, "limits": {"min_agreement": limits.min_agreement,
                                                "max_auc_drop": limits.max_auc_drop}}
    if report:
        report(parity_line(result))
    reasons = verdict(figures, limits)
    if reasons:
        raise RunError(f"INT8 model of {run.paths.root} refused: {'; '.join(reasons)}; nothing was written")
    return int8, result


def parity_line(result: dict) -> str:
    figures = result["validation"]
    auc_text = ("AUC not defined (one class)" if figures["auc_drop"] is None else
                f"AUC {figures['auc_fp32']:.4f} (FP32) vs {figures['auc_int8']:.4f} (INT8), drop {figures['auc_drop']:.4f}")
    return (f"INT8 vs FP32 on {figures['n_images']} validation images: decisions agree on "
            f"{figures['decision_agreement']:.1%}; {auc_text}")
