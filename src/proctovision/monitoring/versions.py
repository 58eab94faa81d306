"""Model versions: what identifies one (its weights and its operating point), and its card, for a run folder or an
exported folder alike. A recalibrated version keeps its parent's weights, so the operating point is part of its id."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from proctovision.artefacts.card import CARD_NAME, VERSION_NAME, build_card, read_card
from proctovision.artefacts.runs import RunError, read_run
from proctovision.core import fileio

OPERATING_KEYS = ("threshold", "temperature", "logistic")


def is_export(folder: Path) -> bool:
    return (Path(folder) / "model.onnx").is_file() and (Path(folder) / CARD_NAME).is_file()


def model_card(folder: str | Path) -> dict:
    """The card predict and serve would use: an export's own, or the one built from a run folder."""
    folder = Path(folder)
    if is_export(folder):
        return read_card(folder)
    if (folder / "config.yaml").is_file():
        return build_card(read_run(folder))
    raise RunError(f"{folder}: neither a run folder (config.yaml) nor an exported model (model.onnx + {CARD_NAME})")


def weights_file(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder / "model.onnx" if is_export(folder) else read_run(folder).checkpoint()


def version_sha256(folder: str | Path, card: dict | None = None) -> str:
    """The weights' sha256 for a model that is its own first version; for a recalibrated one (same weights, new
    operating point) the sha256 over the weights' sha256 and the operating point (threshold, temperature, logistic)."""
    if not (Path(folder) / VERSION_NAME).is_file():
        return fileio.sha256(weights_file(folder))
    card = model_card(folder) if card is None else card
    operating = json.dumps({key: card.get(key) for key in OPERATING_KEYS}, sort_keys=True, default=str)
    return hashlib.sha256(f"{fileio.sha256(weights_file(folder))}\n{operating}".encode()).hexdigest()
