"""The model card written beside every exported model: what it predicts, how to feed it, how good it was."""
from __future__ import annotations

import json
from pathlib import Path

from proctovision import fileio
from proctovision.tables import markdown_table

CARD_NAME = "model_card.json"


def build_card(run: "RunInfo", parity: dict | None = None) -> dict:  # noqa: F821 - avoids importing torch here
    metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    return {
        "format": "proctovision-model/1",
        "task": run.task.model_dump(mode="json"),
        "classes": list(run.task.classes),
        "preprocessing": {
            **run.preprocessing.with_window(run.resolved.get("window")).to_dict(), "colour": "RGB",
            "scale": "0..1 then (x - mean) / std", "resize_filter": "PIL bilinear",
        },
        "backbone": run.config.model.backbone,
        "mode": run.config.model.mode,
        "weights_source": run.resolved.get("weights_source"),
        "training_data": {
            "n_train_images": run.resolved.get("n_train_images"), "n_val_images": run.resolved.get("n_val_images"),
        },
        "metrics": {split: {"n_images": entry.get("n_images"), "n_patients": entry.get("n_patients"),
                            "metrics": entry.get("metrics")} for split, entry in metrics.items()},
        **operating_point(metrics, run.task.is_binary),
        "versions": run.resolved.get("versions", {}),
        "onnx_parity": parity,
        "intended_use": "Research decision support; not a medical device. A clinician reads every image.",
    }


def operating_point(metrics: dict, is_binary: bool) -> dict:
    """The threshold and temperature evaluation applied, so predict and serve decide as the reported metrics did.

    Both are fitted on the validation split, so every evaluated split carries the same ones; the test
    entry is read first. A run never evaluated keeps the argmax rule (0.5 for two classes), said so plainly.
    """
    entry = next((metrics[split] for split in ("test", "val", *metrics) if split in metrics), {})
    chosen = entry.get("threshold")
    threshold = None
    if is_binary:
        threshold = dict(chosen) if chosen else {"value": 0.5, "rule": "default (run not evaluated)", "chosen_on": None}
    temperature = (entry.get("calibration") or {}).get("temperature")
    return {"threshold": threshold, "temperature": temperature}


def threshold_value(card: dict) -> float | None:
    """The positive-class cut of a binary card; older cards held a bare number or nothing."""
    if len(card.get("classes", ())) != 2:
        return None
    threshold = card.get("threshold")
    value = threshold.get("value") if isinstance(threshold, dict) else threshold
    return 0.5 if value is None else float(value)


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
        *operating_lines(card),
        "",
        card["intended_use"],
    ]
    for split, entry in card["metrics"].items():
        lines += ["", f"## {split}: {entry['n_images']} images, {entry['n_patients']} patients", ""]
        lines += markdown_table(["metric", "value", "95% CI"], [
            [name, item["value"], f"{item['ci95'][0]} - {item['ci95'][1]}"]
            for name, item in (entry["metrics"] or {}).items()])
    if card.get("onnx_parity"):
        lines += ["", f"ONNX parity: largest absolute probability difference {card['onnx_parity']['max_abs_diff']:.2e} "
                      f"on {card['onnx_parity']['n_inputs']} inputs."]
    lines += guard_lines(card)
    return "\n".join(lines) + "\n"


def operating_lines(card: dict) -> list[str]:
    lines = []
    window = card["preprocessing"].get("window")
    if window:
        lines.append(f"DICOM input: the training window {window} is applied before conversion to 8-bit.")
    threshold = card.get("threshold")
    if isinstance(threshold, dict):
        where = f", chosen on the {threshold['chosen_on']} split" if threshold.get("chosen_on") else ""
        lines.append(f"Decision: {card['classes'][1]} when its probability is at least {threshold['value']:.4f} "
                     f"({threshold['rule']}{where}).")
    if card.get("temperature"):
        lines.append(f"Probabilities are temperature-scaled (T = {card['temperature']:.4f}, fitted on validation).")
    return lines


def guard_lines(card: dict) -> list[str]:
    """The out-of-distribution guard and the INT8 parity figures, where the export has them."""
    lines = []
    ood = card.get("ood") or {}
    if ood.get("available"):
        lines += ["", f"Out-of-distribution guard: {ood['method']}; an image scoring above {ood['threshold']:.4g} "
                      f"(the {ood['quantile']:.0%} quantile of validation) is reported as not in distribution."]
    quantization = card.get("quantization")
    if quantization:
        figures = quantization["validation"]
        drop = "not defined" if figures["auc_drop"] is None else f"{figures['auc_drop']:.4f}"
        lines += ["", f"Weights: {quantization['format']}, calibrated on {quantization['calibration_images']} training "
                      f"images. On {figures['n_images']} validation images its decisions agree with FP32 on "
                      f"{figures['decision_agreement']:.1%}; AUC drop {drop}."]
    return lines


def write_card(folder: Path, card: dict) -> None:
    fileio.write_json(folder / CARD_NAME, card)
    fileio.write_text(folder / "MODEL_CARD.md", card_markdown(card))


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {CARD_NAME}; is this an exported model folder?")
    return json.loads(path.read_text(encoding="utf-8"))
