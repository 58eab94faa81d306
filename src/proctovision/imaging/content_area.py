"""The round or octagonal content area of endoscopy frames, found despite the text burned into the border.

Endoscopy processors print the patient's name, the date and the hospital in the black border around the
optical field. The field is one large bright blob; text is thin strokes. So: threshold the (averaged)
brightness, open with a disk wider than any stroke (text vanishes, the field stays), keep the largest
connected component and fill its holes (the dark scope tip in the middle is part of the field).
Work runs on a copy reduced at least four times and to at most ``WORK_SIDE`` pixels a side, so its cost does not
grow with the frame (a 16384-pixel frame costs what a 2048-pixel one does); per video it runs once, on a few frames
averaged.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

CROP_RULES = ("content",)
DARK_LEVEL = 24
STEP = 4
WORK_SIDE = 512


class ContentAreaError(ValueError):
    """No content area could be told apart from the border."""


@dataclass(frozen=True)
class ContentArea:
    """A bounding box ``(left, top, right, bottom)`` and the field's mask inside it (True = content)."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    frame_size: tuple[int, int]

    def to_dict(self) -> dict:
        return {"box": list(self.box), "frame_size": list(self.frame_size),
                "content_fraction": round(float(self.mask.mean()), 4)}

    def crop_array(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 ``[H, W, 3]`` of the whole frame → the box, with everything outside the field black."""
        left, top, right, bottom = self.box
        inside = pixels[top:bottom, left:right]
        return inside * self.mask[..., None].astype(inside.dtype)

    def black_outside(self, pixels: np.ndarray) -> np.ndarray:
        """The whole frame with every pixel outside the field set to black (burned-in text removed)."""
        left, top, right, bottom = self.box
        out = np.zeros_like(pixels)
        out[top:bottom, left:right] = self.crop_array(pixels)
        return out

    def scaled(self, factor: int) -> ContentArea:
        """The same area on the frame reduced ``factor`` times (as video frames are decoded for a small model input):
        box corners divided and rounded outward within the frame, mask resampled by nearest neighbour."""
        if factor == 1:
            return self
        width, height = self.frame_size[0] // factor, self.frame_size[1] // factor
        left, top, right, bottom = self.box
        box = (left // factor, top // factor, min(-(-right // factor), width), min(-(-bottom // factor), height))
        mask = Image.fromarray(self.mask).resize((box[2] - box[0], box[3] - box[1]), Image.NEAREST)
        return ContentArea(box, np.asarray(mask), (width, height))

    def crop(self, image: Image.Image) -> Image.Image:
        return Image.fromarray(self.crop_array(np.asarray(image.convert("RGB"))))


def work_step(height: int, width: int) -> int:
    """Every ``STEP``-th pixel (every frame up to 2048 pixels a side), more sparsely past ``WORK_SIDE`` of them."""
    return max(STEP, -(-max(height, width) // WORK_SIDE))


def brightness(pixels: np.ndarray) -> np.ndarray:
    """Reduced max over colour channels: the border is black in every channel, the field is not."""
    step = work_step(*pixels.shape[:2])
    return pixels[::step, ::step].max(axis=2)


def find_content_area(frames: Sequence[np.ndarray]) -> ContentArea:
    """The field of view shared by ``frames`` (uint8 ``[H, W, 3]``, one size), robust to burned-in text."""
    if not frames:
        raise ContentAreaError("no frames to find the content area in")
    height, width = frames[0].shape[:2]
    level = np.mean([brightness(frame) for frame in frames], axis=0)
    bright = level > DARK_LEVEL
    radius = max(2, int(round(min(bright.shape) * 0.02)))
    disk = _disk(radius)
    field = ndimage.binary_opening(bright, structure=disk)
    labels, count = ndimage.label(field)
    if count == 0:
        raise ContentAreaError("every frame is dark: no content area")
    sizes = ndimage.sum_labels(field, labels, index=np.arange(1, count + 1))
    largest = ndimage.binary_fill_holes(labels == (int(np.argmax(sizes)) + 1))
    if largest.mean() < 0.05:
        raise ContentAreaError("the bright area is too small to be an endoscopic field")
    full = np.asarray(Image.fromarray(largest.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 0
    rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return ContentArea(box, full[box[1]:box[3], box[0]:box[2]], (width, height))


def _disk(radius: int) -> np.ndarray:
    grid = np.arange(-radius, radius + 1)
    return (grid[:, None] ** 2 + grid[None, :] ** 2) <= radius ** 2


def crop_content(image: Image.Image) -> Image.Image:
    """A still cropped to its own content area (the ``crop: content`` rule of a preprocessing spec)."""
    image = image.convert("RGB")
    return find_content_area([np.asarray(image)]).crop(image)


def check_crop_rule(rule: object) -> str | None:
    if rule in (None, "", "none"):
        return None
    if rule not in CROP_RULES:
        raise ValueError(f"unknown crop rule {rule!r}: use one of {', '.join(CROP_RULES)} or none")
    return str(rule)


def mark_content_crop(manifest: "pd.DataFrame") -> tuple["pd.DataFrame", list[tuple[str, str]]]:  # noqa: F821
    """Ingest ``--crop-content``: rows whose content area is found get ``crop=content``; the rest are left out
    with the reason, so training never meets an image its crop rule cannot handle."""
    from proctovision.imaging.images import ImageReadError, read_image

    keep: list[bool] = []
    failures: list[tuple[str, str]] = []
    frames = manifest["frame"] if "frame" in manifest.columns else [None] * len(manifest)
    windows = manifest["window"] if "window" in manifest.columns else [None] * len(manifest)
    for path, frame, window in zip(manifest["path"], frames, windows):
        frame = int(frame) if str(frame).strip() not in ("", "None", "nan") else None
        try:
            find_content_area([np.asarray(read_image(path, frame=frame, window=window if window else None))])
            keep.append(True)
        except (ContentAreaError, ImageReadError) as error:
            failures.append((str(path), f"--crop-content: {getattr(error, 'reason', error)}"))
            keep.append(False)
    marked = manifest[keep].assign(crop="content").reset_index(drop=True)
    return marked, failures
