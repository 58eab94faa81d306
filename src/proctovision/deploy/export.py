"""ONNX export of a trained run: one self-contained file, checked against PyTorch before it is kept.

The graph has two outputs: ``probabilities`` and the penultimate ``features``, from which the
out-of-distribution detector shipped beside it (ood.npz) scores every input, so ONNX-only serving has the guard.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from proctovision.core import fileio
from proctovision.models.module import load_module
from proctovision.artefacts.runs import RunError, RunInfo, read_run
from proctovision.artefacts.card import build_card, write_card

PARITY_TOLERANCE = 1e-4


class Probabilities(nn.Module):
    """The classifier with softmax inside, so every runtime returns probabilities."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(images), dim=1)


class ProbabilitiesAndFeatures(nn.Module):
    """Probabilities first (the output every consumer reads), then the penultimate features for the OOD guard."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(images)
        return torch.softmax(self.classifier.head(features), dim=1), features


def to_onnx(model: nn.Module, size: int, path: Path, output_names: tuple[str, ...] = ("probabilities",)) -> None:
    """Opset 17, weights inside the file, a dynamic batch axis."""
    torch.onnx.export(
        model, (torch.zeros(1, 3, size, size),), str(path), input_names=["input"], output_names=list(output_names),
        dynamic_axes={"input": {0: "batch"}, **{name: {0: "batch"} for name in output_names}}, opset_version=17,
        dynamo=False,
    )


def parity(model: nn.Module, onnx_path: Path, size: int, n_inputs: int = 6, seed: int = 0) -> dict:
    """Largest absolute probability difference between PyTorch and ONNX Runtime on sample inputs."""
    import onnxruntime

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_inputs, 3, size, size, generator=generator)
    with torch.inference_mode():
        expected = model(inputs)
        expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    single = session.run(None, {"input": inputs[:1].numpy()})[0]
    rest = session.run(None, {"input": inputs[1:].numpy()})[0]
    got = np.concatenate([single, rest])
    return {"max_abs_diff": float(np.abs(expected - got).max()), "n_inputs": n_inputs, "tolerance": PARITY_TOLERANCE}


def export_run(run_dir: str | Path, out: str | Path, quantize: str | None = None,
               report: "Callable[[str], None] | None" = None, language: str = "en") -> dict:  # noqa: F821
    """Write model.onnx + model_card.json + MODEL_CARD.md (in ``language``; + ood.npz/ood.json) to ``out``; refuse
    if parity fails.

    ``quantize="int8"`` keeps an INT8 model instead, only if it decides as the FP32 one on the validation split
    (see :mod:`proctovision.deploy.quantize`); otherwise nothing is written.
    """
    if quantize not in (None, "int8"):
        raise RunError(f"unknown quantisation {quantize!r}: only int8 is supported")
    run = read_run(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ood = ensure_ood(run)
    model = ProbabilitiesAndFeatures(load_module(run)).eval()
    size = run.preprocessing.input_size
    quantisation = None
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        candidate = Path(scratch) / "model.onnx"
        to_onnx(model, size, candidate, ("probabilities", "features"))
        check = parity(model, candidate, size)
        if not check["max_abs_diff"] < PARITY_TOLERANCE:
            raise RunError(
                f"ONNX export of {run_dir} failed its parity check: probabilities differ by up to "
                f"{check['max_abs_diff']:.2e} (limit {PARITY_TOLERANCE:.0e}); nothing was written"
            )
        if quantize == "int8":
            from proctovision.deploy.quantize import quantize_checked

            candidate, quantisation = quantize_checked(run, candidate, Path(scratch), report)
        fileio.write_bytes(out / "model.onnx", candidate.read_bytes())
    card = build_card(run, check)
    card["ood"] = ood
    card["quantization"] = quantisation
    for name in ("ood.npz", "ood.json"):
        if (run.paths.root / name).is_file():
            shutil.copyfile(run.paths.root / name, out / name)
    write_card(out, card, language)
    write_validation(run, out)
    return {**check, "quantization": quantisation}


def write_validation(run: RunInfo, out: Path) -> None:
    """validation.csv: the run's validation predictions (with each image's appearance figures, three channel
    means) without path or patient, the reference that ``monitor init`` needs on a clinic machine that has no
    training image."""
    import pandas as pd

    if run.paths.predictions.is_file():
        rows = pd.read_csv(run.paths.predictions)
        rows = rows[rows.get("split", pd.Series(dtype=str)).astype(str) == "val"]
        keep = [column for column in rows.columns if column == "label" or column == "predicted"
                or column.startswith(("prob_", "appearance_"))]
        if not rows.empty:
            fileio.write_csv(out / "validation.csv", rows[keep])


def ensure_ood(run: RunInfo) -> dict | None:
    """The run's OOD detector, fitted now if the run has none yet; None (said in the card) when its data are gone."""
    from proctovision.inference.ood import SUMMARY, read_summary
    from proctovision.workflows.ood import fit_run_ood

    summary = read_summary(run.paths.root)
    if summary is None:
        try:
            summary = fit_run_ood(run.paths.root)
        except (OSError, RunError, KeyError) as error:
            return {"available": False, "reason": f"could not fit on the run's split: {error}"}
    return {"available": True, "file": SUMMARY, **{key: summary[key] for key in
                                                     ("method", "quantile", "threshold", "feature_dim")}}
