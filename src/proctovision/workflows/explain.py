"""Class activation maps through pytorch-grad-cam, laid out as original | heatmap | overlay.

Images stream through a DataLoader in batches and each figure is written as soon as it is
made, so memory stays flat however many images are explained.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from proctovision.core import fileio
from proctovision.inference.cam import (  # noqa: F401 - the CAM building blocks are part of explain's API
    CAM_METHODS, ExplainError, build_cam, faithfulness, layout, target_indices, vit_reshape,
)
from proctovision.inference.predictor import TorchPredictor, decoded, row_keys
from proctovision.artefacts.runs import RunInfo
from proctovision.reporting.figures import cases_grid

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


def frame_of_paths(paths: list[Path]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Every image and every frame of multi-frame DICOM under ``paths``, and the files that could not say why."""
    from proctovision.inference.predictor import expand_frames, expand_paths

    keys, errors = expand_frames(expand_paths(paths))
    frame = pd.DataFrame({"path": [str(Path(path).resolve()) for path, _ in keys],
                          "frame": [number for _, number in keys]})
    return frame, errors
