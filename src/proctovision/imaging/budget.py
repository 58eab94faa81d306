"""One pixel budget for every decoder: a file whose declared size (width x height x frames x samples) is over it is
refused before a byte of its pixels is decoded, so a small compressed file cannot make a reader spend minutes and
gigabytes. The default is Pillow's own decompression-bomb limit for an RGB picture (89.5 megapixels x 3 samples);
``PROCTOVISION_PIXEL_BUDGET`` moves it.
"""
from __future__ import annotations

import os

from PIL import Image

from proctovision.core.errors import ImageReadError

BUDGET_VARIABLE = "PROCTOVISION_PIXEL_BUDGET"
LARGE_PIXELS = 4096 * 4096  # frames above this are box-reduced to the size asked for as soon as they are decoded


class PixelBudgetError(ImageReadError):
    """A file larger than the pixel budget: refused, never decoded (the service answers 413)."""

    def __init__(self, path: object, declared: str, values: int, limit: int) -> None:
        super().__init__(path, f"image too large: {declared} = {values:,} pixel values, over the budget of "
                               f"{limit:,} (decompression-bomb guard; {BUDGET_VARIABLE} moves it)")
        self.values, self.limit = values, limit


def pixel_budget() -> int:
    """Pixel values (width x height x frames x samples) one file may declare."""
    given = os.environ.get(BUDGET_VARIABLE, "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return 3 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def check_budget(path: object, width: int, height: int, frames: int = 1, samples: int = 1) -> int:
    """The declared number of pixel values, or :class:`PixelBudgetError` when it is over the budget."""
    values = max(0, width) * max(0, height) * max(1, frames) * max(1, samples)
    limit = pixel_budget()
    if values > limit:
        shape = f"{width} x {height}" + (f" x {frames} frames" if frames > 1 else "") + (
            f" x {samples} samples" if samples > 1 else "")
        raise PixelBudgetError(path, shape, values, limit)
    return values


def reduction_for(width: int, height: int, min_size: int | None) -> int:
    """The box-reduction factor for a decoded frame: 1 up to ``LARGE_PIXELS``, above it the largest factor that keeps
    both sides at or above ``min_size`` (ordinary frames are never touched, so training and prediction agree)."""
    if not min_size or width * height <= LARGE_PIXELS:
        return 1
    return max(1, min(width, height) // min_size)
