"""The model card written beside every exported model: what it predicts, how to feed it, how good it was."""
from __future__ import annotations

import json
from pathlib import Path

from proctovision.core import fileio, i18n
from proctovision.core.decision import operating_point, threshold_value  # noqa: F401 - the card's API
from proctovision.core.i18n import N_
from proctovision.core.tables import markdown_table

CARD_NAME = "model_card.json"
VERSION_NAME = "model_version.json"  # a recalibrated version's operating point and lineage, over the run's own
INTENDED_USE = N_("Research decision support; not a medical device. A clinician reads every image.")


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
            "split": str(run.config.data.split),  # where the training rows lie: a candidate is checked against them
        },
        "metrics": {split: {"n_images": entry.get("n_images"), "n_patients": entry.get("n_patients"),
                            "metrics": entry.get("metrics")} for split, entry in metrics.items()},
        **operating_point(metrics, run.task.is_binary),
        **version_overlay(run.paths.root),
        "versions": run.resolved.get("versions", {}),
        "onnx_parity": parity,
        "intended_use": INTENDED_USE,
    }


def version_overlay(folder: Path) -> dict:
    """What a new model version (``monitor recalibrate``) changes: threshold, temperature or logistic refit, and
    its lineage (parent sha256, data window, method); nothing for a model that is its own first version."""
    path = Path(folder) / VERSION_NAME
    if not path.is_file():
        return {}
    version = json.loads(path.read_text(encoding="utf-8"))
    return {"threshold": version["threshold"], "temperature": version["temperature"],
            "logistic": version.get("logistic"), "version": version["lineage"]}


def card_markdown(card: dict, language: str | None = "en") -> str:
    """MODEL_CARD.md in ``language``; model_card.json itself stays in English, for programs."""
    _ = term = i18n.gettext_for(language)  # term(): names that arrive as data, listed in i18n.TERMS
    preprocessing = card["preprocessing"]
    lines = [
        _("# Model card: {task} ({backbone}, {mode})").format(
            task=term(card["task"]["name"]), backbone=card["backbone"], mode=card["mode"]),
        "",
        _("Classes, in output order: {classes}.").format(classes=", ".join(_(name) for name in card["classes"])),
        _("Input: RGB, resized to {size} px square, scaled to 0..1, normalised with mean {mean} and std {std}.")
        .format(size=preprocessing["input_size"], mean=preprocessing["mean"], std=preprocessing["std"]),
        _("Weights at the start of training: {source}.").format(source=card["weights_source"]),
        _("Training data: {train} training and {val} validation images.").format(
            train=card["training_data"]["n_train_images"], val=card["training_data"]["n_val_images"]),
        *operating_lines(card, _),
        "",
        term(card["intended_use"]),
    ]
    for split, entry in card["metrics"].items():
        lines += ["", _("## {split}: {images} images, {patients} patients").format(
                      split=_(split), images=entry["n_images"], patients=entry["n_patients"]), ""]
        lines += markdown_table([_("metric"), _("value"), _("95% CI")], [
            [_(name), item["value"], f"{item['ci95'][0]} - {item['ci95'][1]}"]
            for name, item in (entry["metrics"] or {}).items()])
    if card.get("onnx_parity"):
        lines += ["", _("ONNX parity: largest absolute probability difference {difference:.2e} on {n} inputs.")
                  .format(difference=card["onnx_parity"]["max_abs_diff"], n=card["onnx_parity"]["n_inputs"])]
    lines += guard_lines(card, _)
    return "\n".join(lines) + "\n"


def operating_lines(card: dict, _=str) -> list[str]:
    term = _
    lines = []
    window = card["preprocessing"].get("window")
    if window:
        lines.append(_("DICOM input: the training window {window} is applied before conversion to 8-bit.")
                     .format(window=window))
    if card["preprocessing"].get("crop") == "content":
        lines.append(_("Endoscopy input: each image is cut to its round/octagonal content area before resizing, "
                       "as in training."))
    threshold = card.get("threshold")
    if isinstance(threshold, dict):
        decision = _("Decision: {positive} when its probability is at least {value:.4f} ({rule}).")
        if threshold.get("chosen_on"):
            decision = _("Decision: {positive} when its probability is at least {value:.4f} ({rule}, chosen on the "
                         "{split} split).")
        lines.append(decision.format(positive=term(card["classes"][1]), value=threshold["value"],
                                     rule=term(threshold["rule"]), split=term(str(threshold.get("chosen_on")))))
    if card.get("temperature"):
        lines.append(_("Probabilities are temperature-scaled (T = {temperature:.4f}, fitted on validation).")
                     .format(temperature=card["temperature"]))
    if card.get("version"):
        version = card["version"]
        lines.append(_("Recalibrated ({method}) from parent {parent} on {n} confirmed cases, {start} to {end}.").format(
            method=version["method"], parent=version["parent_sha256"][:12], n=version["window"]["n_confirmed"],
            start=version["window"]["from"], end=version["window"]["to"]))
    return lines


def guard_lines(card: dict, _=str) -> list[str]:
    """The out-of-distribution guard and the INT8 parity figures, where the export has them."""
    lines = []
    ood = card.get("ood") or {}
    if ood.get("available"):
        lines += ["", _("Out-of-distribution guard: {method}; an image scoring above {threshold:.4g} (the {quantile:.0%} "
                        "quantile of validation) is reported as not in distribution.").format(
            method=ood["method"], threshold=ood["threshold"], quantile=ood["quantile"])]
    quantization = card.get("quantization")
    if quantization:
        figures = quantization["validation"]
        drop = "-" if figures["auc_drop"] is None else f"{figures['auc_drop']:.4f}"
        lines += ["", _("Weights: {format}, calibrated on {images} training images. On {n} validation images its "
                        "decisions agree with FP32 on {agreement:.1%}; AUC drop {drop}.").format(
            format=quantization["format"], images=quantization["calibration_images"], n=figures["n_images"],
            agreement=figures["decision_agreement"], drop=drop)]
    return lines


def write_card(folder: Path, card: dict, language: str | None = "en") -> None:
    fileio.write_json(folder / CARD_NAME, card)
    fileio.write_text(folder / "MODEL_CARD.md", card_markdown(card, language))


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {CARD_NAME}; is this an exported model folder?")
    return json.loads(path.read_text(encoding="utf-8"))
