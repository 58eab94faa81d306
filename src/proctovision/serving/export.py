"""ONNX export of a trained run: one self-contained file, checked against PyTorch before it is kept."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from proctovision import fileio
from proctovision.runs import load_module
from proctovision.runs import RunError, read_run
from proctovision.serving.card import build_card, write_card

PARITY_TOLERANCE = 1e-4


class Probabilities(nn.Module):
    """The classifier with softmax inside, so every runtime returns probabilities."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(images), dim=1)


def to_onnx(model: nn.Module, size: int, path: Path) -> None:
    """Opset 17, weights inside the file, a dynamic batch axis."""
    torch.onnx.export(
        model, (torch.zeros(1, 3, size, size),), str(path), input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, dynamo=False,
    )


def parity(model: nn.Module, onnx_path: Path, size: int, n_inputs: int = 6, seed: int = 0) -> dict:
    """Largest absolute probability difference between PyTorch and ONNX Runtime on sample inputs."""
    import onnxruntime

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_inputs, 3, size, size, generator=generator)
    with torch.inference_mode():
        expected = model(inputs).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    single = session.run(None, {"input": inputs[:1].numpy()})[0]
    rest = session.run(None, {"input": inputs[1:].numpy()})[0]
    got = np.concatenate([single, rest])
    return {"max_abs_diff": float(np.abs(expected - got).max()), "n_inputs": n_inputs, "tolerance": PARITY_TOLERANCE}


def export_run(run_dir: str | Path, out: str | Path, language: str = "en") -> dict:
    """Write model.onnx + model_card.json + MODEL_CARD.md (in ``language``) to ``out``; refuse if parity fails."""
    run = read_run(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Probabilities(load_module(run)).eval()
    size = run.preprocessing.input_size
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        candidate = Path(scratch) / "model.onnx"
        to_onnx(model, size, candidate)
        check = parity(model, candidate, size)
        if not check["max_abs_diff"] < PARITY_TOLERANCE:
            raise RunError(
                f"ONNX export of {run_dir} failed its parity check: probabilities differ by up to "
                f"{check['max_abs_diff']:.2e} (limit {PARITY_TOLERANCE:.0e}); nothing was written"
            )
        fileio.write_bytes(out / "model.onnx", candidate.read_bytes())
    write_card(out, build_card(run, check), language)
    return check
