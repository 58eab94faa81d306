"""One table of backbones, as timm's ``register_model`` keeps one table of architectures.

Each entry knows the timm architecture, the preprocessing its weights expect (input
size, mean/std) and the layer Grad-CAM should look at. Any other timm name works too:
its preprocessing then comes from timm's pretrained config.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import timm
from torch import nn

from proctovision.core.errors import UserError
from proctovision.imaging.preprocessing import Preprocessing


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    preprocessing: Preprocessing
    cam_target_layer: str
    is_transformer: bool = False
    fixed_input_size: bool = False
    study: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}
_ALIASES: dict[str, str] = {}


class UnknownBackboneError(UserError, ValueError):
    """Neither a registered backbone nor a timm architecture."""


def _timm_preprocessing(timm_name: str) -> Preprocessing:
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        return Preprocessing(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return Preprocessing(int(cfg.input_size[-1]), tuple(cfg.mean), tuple(cfg.std))


def register_backbone(
    name: str,
    timm_name: str,
    cam_target_layer: str,
    aliases: tuple[str, ...] = (),
    input_size: int | None = None,
    is_transformer: bool = False,
    fixed_input_size: bool = False,
    study: str = "",
) -> BackboneSpec:
    preprocessing = _timm_preprocessing(timm_name)
    if input_size is not None:
        preprocessing = replace(preprocessing, input_size=input_size)
    spec = BackboneSpec(name, timm_name, preprocessing, cam_target_layer, is_transformer, fixed_input_size, study)
    _REGISTRY[name] = spec
    for alias in (name, timm_name, *aliases):
        _ALIASES[alias.lower()] = name
    return spec


register_backbone("xception", "legacy_xception", "act4", aliases=("xception71",), study="hemorrhoid")
register_backbone("resnet50v2", "resnetv2_50", "stages.3", aliases=("resnet50_v2",), study="hemorrhoid")
register_backbone(
    "efficientnetv2_s", "tf_efficientnetv2_s", "bn2", aliases=("efficientnetv2-s", "effnetv2_s"),
    study="hemorrhoid",
)
register_backbone(
    "vit_s16", "vit_small_patch16_224", "blocks.-1.norm1", aliases=("vit-s/16", "vit_small", "vit_s_16"),
    is_transformer=True, fixed_input_size=True, study="hemorrhoid",
)
register_backbone(
    "convmixer_768_32", "convmixer_768_32", "blocks.-1", aliases=("convmixer", "convmixer-768/32"),
    study="hemorrhoid",
)
register_backbone("resnet18", "resnet18", "layer4", aliases=("resnet-18",), study="fistula")
register_backbone("resnet34", "resnet34", "layer4", aliases=("resnet-34",), study="fistula")
register_backbone("densenet121", "densenet121", "features.norm5", aliases=("densenet-121",), study="fistula")
register_backbone(
    "efficientnet_lite0", "tf_efficientnet_lite0", "bn2", aliases=("lite0", "efficientnet-lite0"),
)

STUDY_BACKBONES = tuple(name for name, spec in _REGISTRY.items() if spec.study)

_CAM_LAYER_GUESSES = ("layer4", "stages.-1", "features", "conv_head", "blocks.-1", "norm")


def list_backbones() -> list[BackboneSpec]:
    return list(_REGISTRY.values())


def get_backbone(name: str) -> BackboneSpec:
    """A registered backbone by name or alias, else any timm architecture."""
    key = name.strip().lower()
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    if name in timm.list_models():
        is_vit = name.startswith(("vit_", "deit", "beit", "eva", "swin"))
        return BackboneSpec(
            name=name,
            timm_name=name,
            preprocessing=_timm_preprocessing(name),
            cam_target_layer="blocks.-1.norm1" if is_vit else "",
            is_transformer=is_vit,
            fixed_input_size=is_vit,
        )
    close = timm.list_models(f"*{key}*")[:8]
    hint = f"; similar timm names: {', '.join(close)}" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}: use one of {', '.join(_REGISTRY)} or any timm architecture{hint}"
    )


def create_backbone(spec: BackboneSpec, image_size: int | None = None) -> nn.Module:
    """A timm feature extractor (no classifier) with random weights; weights are loaded separately."""
    kwargs: dict = {"pretrained": False, "num_classes": 0}
    if spec.fixed_input_size and image_size and image_size != spec.preprocessing.input_size:
        kwargs["img_size"] = image_size
    return timm.create_model(spec.timm_name, **kwargs)


def resolve_module(model: nn.Module, dotted: str) -> nn.Module:
    """Find a sub-module by a dotted path; integers index, negatives count from the end."""
    module = model
    for part in dotted.split("."):
        if part.lstrip("-").isdigit():
            module = list(module.children())[int(part)] if not isinstance(module, nn.Sequential) else module[int(part)]
        else:
            module = getattr(module, part)
    return module


def cam_target_layer(spec: BackboneSpec, backbone: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads; for unregistered timm names, the last spatial block we can find."""
    candidates = (spec.cam_target_layer,) if spec.cam_target_layer else _CAM_LAYER_GUESSES
    for dotted in candidates:
        try:
            return resolve_module(backbone, dotted)
        except (AttributeError, IndexError, TypeError):
            continue
    raise UnknownBackboneError(f"no Grad-CAM target layer known for {spec.timm_name}")


def feature_dim(backbone: nn.Module) -> int:
    return int(getattr(backbone, "num_features"))

