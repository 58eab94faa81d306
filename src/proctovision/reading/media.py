"""What a reader sees of a case, prepared once at ``reading init``: the image and, for the aided arm, the model.

Each image is decoded (DICOM rendered with its window) and re-encoded as a PNG named by the case's opaque id,
so no file name, path, EXIF or DICOM header ever reaches a reader, and serving reads only these files. The
model's calibrated probabilities and a Grad-CAM overlay (run folders) are computed once per case too.
"""
from __future__ import annotations

from pathlib import Path

from proctovision.core import fileio
from proctovision.imaging.images import looks_like_dicom, read_image

IMAGES = "images"
CAMS = "cams"
# Extra windows of DICOM cases (MR intensities have no fixed scale, so by percentiles), besides the file's own.
BATCH = 16  # images per forward pass when the aided arm's probabilities are computed
WINDOWS = {"full": "percentile:0,100", "contrast": "percentile:5,95"}


def image_file(root: Path, case_id: str, window: str | None = None) -> Path:
    return Path(root) / IMAGES / (f"{case_id}.{window}.png" if window else f"{case_id}.png")


def windows(root: Path, case_id: str) -> list[str]:
    """The extra windows rendered for this case (DICOM only)."""
    return [name for name in WINDOWS if image_file(root, case_id, name).is_file()]


def cam_file(root: Path, case_id: str) -> Path:
    return Path(root) / CAMS / f"{case_id}.png"


def render_case(root: Path, case_id: str, path: str, frame: int | None) -> None:
    """The case's pixels at full resolution as a PNG without metadata (DICOM: in its own window and in
    :data:`WINDOWS`)."""
    image = read_image(path, frame=frame)
    fileio.write_with(image_file(root, case_id), lambda target: image.save(target, format="PNG"))
    if looks_like_dicom(Path(path)):
        for name, spec in WINDOWS.items():
            windowed = read_image(path, frame=frame, window=spec)
            fileio.write_with(image_file(root, case_id, name),
                              lambda target, image=windowed: image.save(target, format="PNG"))


def model_version(source: Path, predictor: object) -> str:
    model_file = getattr(predictor, "model_file", None)
    digest = fileio.sha256(model_file)[:12] if model_file and Path(model_file).is_file() else "unknown"
    return f"{Path(source).name} ({getattr(predictor, 'backend', '') or 'model'}, sha256 {digest})"


def model_outputs(root: Path, model: Path, cases: list[tuple[str, str, int | None]]) -> tuple[str, dict, set]:
    """(model version, {case: {class: probability}}, {cases with a CAM overlay}) for ``(case, path, frame)``."""
    from proctovision.inference.predictor import load_predictor, read_checked_image

    predictor = load_predictor(model)
    probabilities, cams = {}, set()
    for start in range(0, len(cases), BATCH):  # probabilities in batches, the CAM per image
        chunk = cases[start:start + BATCH]
        images = [read_checked_image((path, frame), predictor.spec) for _, path, frame in chunk]
        rows = predictor.predict_images(images)
        for (case_id, _, _), image, row in zip(chunk, images, rows):
            probabilities[case_id] = {name: round(float(value), 6) for name, value in zip(predictor.classes, row)}
            overlay = predictor.heatmap_png(image, int(row.argmax()))
            if overlay:
                fileio.write_bytes(cam_file(root, case_id), overlay)
                cams.add(case_id)
    return model_version(model, predictor), probabilities, cams
