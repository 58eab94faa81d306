"""Class activation maps through pytorch-grad-cam, laid out as original | heatmap | overlay.

Images stream through a DataLoader in batches and each figure is written as soon as it is
made, so memory stays flat however many images are explained.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from proctovision import fileio
from proctovision.errors import UserError
from proctovision.models.module import ClassifierModule
from proctovision.models.registry import cam_target_layer, resolve_module
from proctovision.inference.predictor import TorchPredictor, decoded, row_keys
from proctovision.runs import RunInfo

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


def explain_frame(
    predictor: TorchPredictor, frame: pd.DataFrame, out: Path, method: str = "gradcam",
    target: str = "predicted", batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
    score_faithfulness: bool | int = False, layer_name: str | None = None,
) -> pd.DataFrame:
    """Write one PNG per image and ``cams.csv``; returns the table (path, frame, label, predicted, target, png, ...).

    Images come through the predictor (its preprocessing spec, every frame of multi-frame DICOM) and the
    predicted class is its decision: the operating threshold for binary tasks, as predict and serve decide.
    ``score_faithfulness``: True scores every map with ROAD; a number scores only the first that many (ROAD
    re-imputes each image several times, so a gallery samples it).
    """
    classes = predictor.classes
    road_budget = len(frame) if score_faithfulness is True else int(score_faithfulness or 0)
    out.mkdir(parents=True, exist_ok=True)
    module = predictor.module.eval()
    cam = build_cam(module, method, layer_name)
    spec = predictor.spec
    keys = row_keys(frame)
    rows, done = [], 0
    for start in range(0, len(keys), batch_size):
        chunk = list(range(start, min(start + batch_size, len(keys))))
        loaded = [(index, item) for index, item in zip(chunk, decoded([keys[i] for i in chunk], spec, 0))]
        usable = [(index, item) for index, item in loaded if not isinstance(item, str)]
        done += len(chunk)
        if not usable:
            continue
        images = torch.from_numpy(np.stack([item for _, item in usable])).to(predictor.device)
        probabilities = predictor.calibrate(predictor.raw_probabilities(images.cpu().numpy()))
        decided = [classes.index(predictor.decide(row)) for row in probabilities]
        chosen = decided if target == "predicted" else target_indices(probabilities, target, classes)
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(index) for index in chosen])
        scored = max(0, min(len(usable), road_budget - (done - len(chunk))))
        road = list(faithfulness(module, images[:scored], maps[:scored], chosen[:scored])) if scored else []
        road += [None] * (len(usable) - scored)
        for (index, pixels), heat, probs, wanted, decision, road_score in zip(
            usable, maps, probabilities, chosen, decided, road
        ):
            original = spec.denormalise(pixels).astype(np.float32)
            path, number = keys[index]
            name = f"{index:05d}_{Path(path).stem}" + ("" if number is None else f"_f{number}") + ".png"
            strip = layout(original, heat)
            fileio.write_with(out / name, lambda target_path, strip=strip: strip.save(target_path, format="PNG"))
            peak_row, peak_col = np.unravel_index(heat.argmax(), heat.shape)
            rows.append({
                "path": frame["path"].iloc[index], "frame": "" if number is None else number,
                "label": frame["label"].iloc[index] if "label" in frame else "",
                "predicted": classes[decision], "road": road_score, "target": classes[wanted], "png": name,
                "peak_row": int(peak_row), "peak_col": int(peak_col), "size": spec.input_size,
                **{f"prob_{c}": round(float(p), 6) for c, p in zip(classes, probs)},
            })
        if progress:
            progress(done, len(keys))
    table = pd.DataFrame(rows)
    fileio.write_csv(out / "cams.csv", table)
    return table


def gallery_folder(run: RunInfo, split: str) -> Path:
    return run.paths.root / "cams" / split


def write_gallery(predictor: TorchPredictor, run: RunInfo, split: str, limit: int = 24, road_sample: int = 6) -> Path:
    """Grad-CAM on up to ``limit`` images of an evaluated split, wrong cases first, into the run folder
    (``cams/<split>/``: strips, cams.csv, grid.png, summary.json): the report embeds these files as they are."""
    predictions = pd.read_csv(run.paths.predictions, dtype=str, keep_default_na=False)
    rows = predictions[predictions["split"] == split].copy()
    root = Path(run.config.data.split).resolve().parent
    rows["path"] = [str((root / path).resolve()) for path in rows["path"]]
    wrong = rows["predicted"] != rows["label"]
    rows = pd.concat([rows[wrong], rows[~wrong]]).head(limit).reset_index(drop=True)
    folder = gallery_folder(run, split)
    table = explain_frame(predictor, rows, folder, "gradcam", "predicted", 8, None, road_sample)
    grid = cases_grid(table, folder, predictor.classes, folder / "grid.png")
    scored = table["road"].dropna() if "road" in table else pd.Series(dtype=float)
    fileio.write_json(folder / "summary.json", {
        "split": split, "method": "gradcam", "n_images": int(len(table)), "wrong_first": True,
        "n_wrong": int((table["label"] != table["predicted"]).sum()) if len(table) else 0,
        "road_scored": int(len(scored)), "road_mean": float(scored.mean()) if len(scored) else None,
        "grid": grid.name if grid else None,
    })
    return folder


def cases_grid(table: pd.DataFrame, folder: Path, classes: tuple[str, ...], out: Path, per_cell: int = 4) -> Path | None:
    """Rows: true class × (right, wrong); up to ``per_cell`` overlays each: where the model looks when it errs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if table.empty or "label" not in table or not table["label"].astype(bool).any():
        return None
    cells = [(name, outcome) for name in classes for outcome in ("right", "wrong")]
    figure, axes = plt.subplots(len(cells), per_cell, figsize=(2.0 * per_cell, 1.9 * len(cells)), squeeze=False)
    for row, (name, outcome) in enumerate(cells):
        wanted = table[(table["label"] == name) & ((table["label"] == table["predicted"]) == (outcome == "right"))]
        for column in range(per_cell):
            axis = axes[row, column]
            axis.axis("off")
            if column < len(wanted):
                with Image.open(folder / wanted["png"].iloc[column]) as strip:
                    width = strip.width // 3
                    axis.imshow(strip.crop((2 * width, 0, 3 * width, strip.height)))
                axis.set_title(f"→ {wanted['predicted'].iloc[column]}", fontsize=7)
        axes[row, 0].text(-0.1, 0.5, f"{name}\n{outcome}", transform=axes[row, 0].transAxes, ha="right",
                          va="center", fontsize=8)
    figure.tight_layout()
    fileio.write_with(out, lambda target: figure.savefig(target, format="png", dpi=110))
    plt.close(figure)
    return out
