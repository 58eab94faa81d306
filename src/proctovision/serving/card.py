"""The model card written beside every exported model: what it predicts, how to feed it, how good it was."""
from __future__ import annotations

import json
from pathlib import Path

from proctovision import fileio

CARD_NAME = "model_card.json"


def build_card(run: "RunInfo", parity: dict | None = None) -> dict:  # noqa: F821 - avoids importing torch here
    metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    return {
        "format": "proctovision-model/1",
        "task": run.task.model_dump(mode="json"),
        "classes": list(run.task.classes),
        "preprocessing": {
            **run.preprocessing.to_dict(), "colour": "RGB", "scale": "0..1 then (x - mean) / std",
            "resize": "square, PIL bilinear", "window": run.resolved.get("window"),
        },
        "backbone": run.config.model.backbone,
        "mode": run.config.model.mode,
        "weights_source": run.resolved.get("weights_source"),
        "training_data": {
            "n_train_images": run.resolved.get("n_train_images"), "n_val_images": run.resolved.get("n_val_images"),
        },
        "metrics": {split: {"n_images": entry.get("n_images"), "n_patients": entry.get("n_patients"),
                            "metrics": entry.get("metrics")} for split, entry in metrics.items()},
        "versions": run.resolved.get("versions", {}),
        "onnx_parity": parity,
        "intended_use": "Research decision support; not a medical device. A clinician reads every image.",
    }


def card_markdown(card: dict) -> str:
    lines = [
        f"# Model card: {card['task']['name']} ({card['backbone']}, {card['mode']})",
        "",
        f"Classes, in output order: {', '.join(card['classes'])}.",
        f"Input: RGB, resized to {card['preprocessing']['input_size']} px square, scaled to 0..1, normalised with "
        f"mean {card['preprocessing']['mean']} and std {card['preprocessing']['std']}.",
        f"Weights at the start of training: {card['weights_source']}.",
        f"Training data: {card['training_data']['n_train_images']} training and "
        f"{card['training_data']['n_val_images']} validation images.",
        "",
        card["intended_use"],
    ]
    for split, entry in card["metrics"].items():
        lines += ["", f"## {split}: {entry['n_images']} images, {entry['n_patients']} patients", "",
                  "| metric | value | 95% CI |", "|---|---|---|"]
        for name, item in (entry["metrics"] or {}).items():
            lines.append(f"| {name} | {item['value']} | {item['ci95'][0]} - {item['ci95'][1]} |")
    if card.get("onnx_parity"):
        lines += ["", f"ONNX parity: largest absolute probability difference {card['onnx_parity']['max_abs_diff']:.2e} "
                      f"on {card['onnx_parity']['n_inputs']} inputs."]
    return "\n".join(lines) + "\n"


def write_card(folder: Path, card: dict) -> None:
    fileio.write_json(folder / CARD_NAME, card)
    fileio.write_text(folder / "MODEL_CARD.md", card_markdown(card))


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {CARD_NAME}; is this an exported model folder?")
    return json.loads(path.read_text(encoding="utf-8"))
