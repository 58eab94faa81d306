"""Class activation maps: pytorch-grad-cam on the registry's target layer, and the original | heatmap | overlay strip.

The predictor's heatmaps and the explain workflow both draw from here, so one rule picks the layer and lays out
the strip.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from proctovision.core.errors import UserError
from proctovision.models.module import ClassifierModule
from proctovision.models.registry import cam_target_layer, resolve_module

CAM_METHODS = {
    "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM, "eigencam": EigenCAM,
    "layercam": LayerCAM, "scorecam": ScoreCAM,
}


class ExplainError(UserError, ValueError):
    """An explain request that cannot be met: unknown method or class."""


def vit_reshape(prefix_tokens: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens ``[B, N, C]`` → feature map ``[B, C, h, w]``, dropping class/register tokens."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix_tokens:, :]
        side = int(math.isqrt(patches.shape[1]))
        return patches.reshape(patches.shape[0], side, patches.shape[1] // side, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


def build_cam(module: ClassifierModule, method: str, layer_name: str | None = None) -> object:
    """A pytorch-grad-cam object on the registry's target layer, or on ``layer_name`` (a dotted path in the
    backbone, e.g. ``blocks.-2`` for a finer map one stage earlier)."""
    if method not in CAM_METHODS:
        raise ExplainError(f"unknown CAM method {method!r}: use one of {', '.join(CAM_METHODS)}")
    if layer_name:
        try:
            layer = resolve_module(module.backbone, layer_name)
        except (AttributeError, IndexError, TypeError) as error:
            raise ExplainError(f"no layer {layer_name!r} in {module.spec.timm_name}") from error
    else:
        layer = cam_target_layer(module.spec, module.backbone)
    reshape = vit_reshape(int(getattr(module.backbone, "num_prefix_tokens", 1))) if module.spec.is_transformer else None
    cam = CAM_METHODS[method](model=module, target_layers=[layer], reshape_transform=reshape)
    cam.compute_input_gradient = True  # frozen backbones have no trainable weights upstream of the target layer
    return cam


def target_indices(probabilities: np.ndarray, target: str, classes: tuple[str, ...]) -> list[int]:
    if target == "predicted":
        return probabilities.argmax(axis=1).tolist()
    if target not in classes:
        raise ExplainError(f"unknown target class {target!r}: use predicted or one of {', '.join(classes)}")
    return [classes.index(target)] * len(probabilities)


def layout(original: np.ndarray, cam: np.ndarray) -> Image.Image:
    """One strip: the model's input view | the heatmap | the heatmap over the image (the study's Fig. 5)."""
    heat = show_cam_on_image(np.zeros_like(original), cam, use_rgb=True, image_weight=0.0)
    overlay = show_cam_on_image(original, cam, use_rgb=True, image_weight=0.55)
    strip = np.concatenate([(original * 255).astype(np.uint8), heat, overlay], axis=1)
    return Image.fromarray(strip)


def faithfulness(module: ClassifierModule, images: torch.Tensor, maps: np.ndarray, chosen: list[int]) -> np.ndarray:
    """ROAD (Rong et al., 2022) per image: confidence kept when the least relevant pixels are removed minus that
    kept when the most relevant are removed. Higher means the map points at what the model uses."""
    metric = ROADCombined(percentiles=[20, 40, 60, 80])
    with torch.no_grad():
        scores = metric(images, maps, [ClassifierOutputTarget(index) for index in chosen], module)
    return np.asarray(scores, dtype=float).reshape(-1)
