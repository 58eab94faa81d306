"""What a reader sees of a case, prepared once at ``reading init``: the image and, for the aided arm, the model.

Each image is decoded (DICOM rendered with its window) and re-encoded as a PNG named by the case's opaque id,
so no file name, path, EXIF or DICOM header ever reaches a reader, and serving reads only these files. Under
``crop: content`` (the manifest's ``crop`` column, ``reading init --crop-content``, or a model trained on the
content area) the PNG is the content area alone, found by :mod:`proctovision.imaging.content_area`, with every
pixel outside the endoscopic field black, so text burned into the border never reaches a reader. The model's
calibrated probabilities and a Grad-CAM overlay (run folders) are computed once per case too; the overlay is
re-framed to cover exactly the image the reader sees (transparent where it was not computed).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops
from scipy import ndimage

from proctovision.core import fileio
from proctovision.imaging.content_area import DARK_LEVEL, STEP, ContentArea, brightness, find_content_area
from proctovision.imaging.images import looks_like_dicom, read_image

IMAGES = "images"
CAMS = "cams"
# Extra windows of DICOM cases (MR intensities have no fixed scale, so by percentiles), besides the file's own.
BATCH = 16  # images per forward pass when the aided arm's probabilities are computed
WINDOWS = {"full": "percentile:0,100", "contrast": "percentile:5,95"}
# A border is text-like when this share of it is lit: a clean border is black (JPEG noise stays below the level).
TEXT_SHARE = 0.001
RIM = 3  # quarter-size pixels around the field not counted as border (the field's own soft edge)


@dataclass(frozen=True)
class Rendered:
    """What :func:`render_case` made: the content area shown (None: the whole frame), the frame's size, and the
    share of the border that looks like text when the whole frame is shown."""

    area: ContentArea | None
    frame_size: tuple[int, int]
    border_text: float = 0.0


def image_file(root: Path, case_id: str, window: str | None = None) -> Path:
    return Path(root) / IMAGES / (f"{case_id}.{window}.png" if window else f"{case_id}.png")


def windows(root: Path, case_id: str) -> list[str]:
    """The extra windows rendered for this case (DICOM only)."""
    return [name for name in WINDOWS if image_file(root, case_id, name).is_file()]


def cam_file(root: Path, case_id: str) -> Path:
    return Path(root) / CAMS / f"{case_id}.png"


def border_text_share(pixels: np.ndarray) -> float:
    """The share of the frame's border (outside its content area) that is lit: 0 for a black border, more where
    text is burned in. The content-area finder opens the lit area with a disk wider than any stroke, so what is lit
    but not field is thin strokes: text."""
    try:
        area = find_content_area([pixels])
    except ValueError:  # no field to tell apart: nothing to call a border
        return 0.0
    field = np.zeros(pixels.shape[:2], dtype=bool)
    left, top, right, bottom = area.box
    field[top:bottom, left:right] = area.mask
    field = ndimage.binary_dilation(field[::STEP, ::STEP], iterations=RIM)
    border = ~field
    if not border.any():
        return 0.0
    return float((brightness(pixels) > DARK_LEVEL)[border].mean())


def render_case(root: Path, case_id: str, path: str, frame: int | None, crop: bool = False) -> Rendered:
    """The case's pixels at full resolution as a PNG without metadata (DICOM: in its own window and in
    :data:`WINDOWS`), cropped to the content area when ``crop``. Raises ``ContentAreaError`` (a ValueError)
    when a crop is asked for and no content area is found: such a frame is never shown whole."""
    image = read_image(path, frame=frame).convert("RGB")
    pixels = np.asarray(image)
    area = find_content_area([pixels]) if crop else None
    shown = Image.fromarray(area.crop_array(pixels)) if area else image
    fileio.write_with(image_file(root, case_id), lambda target: shown.save(target, format="PNG"))
    if looks_like_dicom(Path(path)):
        for name, spec in WINDOWS.items():
            windowed = read_image(path, frame=frame, window=spec).convert("RGB")
            windowed = area.crop(windowed) if area else windowed
            fileio.write_with(image_file(root, case_id, name),
                              lambda target, image=windowed: image.save(target, format="PNG"))
    return Rendered(area, image.size, 0.0 if crop else border_text_share(pixels))


def model_version(source: Path, predictor: object) -> str:
    model_file = getattr(predictor, "model_file", None)
    digest = fileio.sha256(model_file)[:12] if model_file and Path(model_file).is_file() else "unknown"
    return f"{Path(source).name} ({getattr(predictor, 'backend', '') or 'model'}, sha256 {digest})"


def load_model(model: Path) -> object:
    from proctovision.inference.predictor import load_predictor

    return load_predictor(model)


def model_crops(predictor: object) -> bool:
    """Whether the model looks at the content area only (its preprocessing says ``crop: content``)."""
    return getattr(predictor.spec, "crop", None) == "content"


def model_outputs(root: Path, source: Path, predictor: object, cases: list[tuple[str, str, int | None]],
                  shown: dict[str, Rendered]) -> tuple[str, dict, set]:
    """(model version, {case: {class: probability}}, {cases with a CAM overlay}) for ``(case, path, frame)``;
    ``shown`` says what :func:`render_case` showed of each case, so each overlay covers exactly that."""
    from proctovision.inference.predictor.inputs import read_checked_image

    probabilities, cams = {}, set()
    for start in range(0, len(cases), BATCH):  # probabilities in batches, the CAM per image
        chunk = cases[start:start + BATCH]
        images = [read_checked_image((path, frame), predictor.spec) for _, path, frame in chunk]
        rows = predictor.predict_images(images)
        for (case_id, path, frame), row in zip(chunk, rows):
            probabilities[case_id] = {name: round(float(value), 6) for name, value in zip(predictor.classes, row)}
            # At full resolution, as served: the model's own crop of it is then the very area the reader sees.
            full = read_image(path, frame=frame, window=predictor.spec.window).convert("RGB")
            overlay = predictor.heatmap_png(full, int(row.argmax()))
            if overlay:
                computed = _computed_box(predictor, full)
                fileio.write_bytes(cam_file(root, case_id), reframe_cam(overlay, computed, shown[case_id]))
                cams.add(case_id)
    return model_version(source, predictor), probabilities, cams


def _computed_box(predictor: object, full: Image.Image) -> tuple[int, int, int, int]:
    """The region of the frame the CAM was computed on: the model's content crop of ``full``, or all of it."""
    return find_content_area([np.asarray(full)]).box if model_crops(predictor) else (0, 0, *full.size)


def reframe_cam(overlay: bytes, computed: tuple[int, int, int, int], shown: Rendered) -> bytes:
    """The overlay (a picture of the region ``computed``, at its aspect ratio) placed on a transparent canvas of
    the region the reader sees, at the overlay's scale, and transparent outside the content area; so the page can
    stretch it over the image and every heat lies over the pixels it was computed from."""
    picture = Image.open(io.BytesIO(overlay)).convert("RGBA")
    box = shown.area.box if shown.area else (0, 0, *shown.frame_size)
    if computed == box and shown.area is None:
        return overlay
    scale = picture.width / (computed[2] - computed[0])
    size = (max(1, round((box[2] - box[0]) * scale)), max(1, round((box[3] - box[1]) * scale)))
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(picture, (round((computed[0] - box[0]) * scale), round((computed[1] - box[1]) * scale)))
    if shown.area is not None:
        field = Image.fromarray(shown.area.mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)
        canvas.putalpha(ImageChops.multiply(canvas.getchannel("A"), field))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
