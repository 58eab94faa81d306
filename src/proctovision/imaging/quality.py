"""Image-quality flags the model cannot judge for itself: too dark, overexposed, blurred.

Each measure is computed on the image as read (before the resize to the model's size), on a grey copy
scaled down to a fixed width so the measures do not depend on the camera's resolution. Blur is the variance of
the Laplacian (Pech-Pacheco et al., "Diatom autofocusing in brightfield microscopy", ICPR 2000): a sharp
image has strong second derivatives, a blurred one almost none.

The generic blur cut (``QualityLimits.blur_variance``) depends on the camera and the scene: synthetic endoscopy
frames measure 2-3 where photographs measure hundreds. A model therefore carries its own cut, set as the OOD
threshold is set, on its own data: the 1st percentile of its training images' sharpness (:func:`blur_cut`), so
about 1% of in-distribution images are flagged by construction.

The mean red, green and blue levels of the lit area (the view without its black border) describe its appearance:
a change of video processor (a colour cast, another brightness) moves them while the model's outputs barely move,
so monitoring follows them (``proctovision.monitoring.appearance``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

MEASURE_WIDTH = 256
APPEARANCE_WIDTH = 64  # channel means need no detail: a box-filtered thumbnail keeps them and costs little
CHANNELS = ("red", "green", "blue")
BLUR_QUANTILE = 0.01


@dataclass(frozen=True)
class QualityLimits:
    """Cut-offs on 0..255 grey levels; endoscopic views have black corners, so darkness is judged on the lit part."""

    dark_brightness: float = 35.0
    lit_level: float = 16.0
    overexposed_fraction: float = 0.25
    bright_brightness: float = 200.0
    saturated_level: float = 250.0
    blur_variance: float = 10.0


@dataclass(frozen=True)
class Quality:
    brightness: float
    saturated_fraction: float
    sharpness: float
    too_dark: bool
    overexposed: bool
    blurred: bool
    red: float | None = None
    green: float | None = None
    blue: float | None = None

    @property
    def flagged(self) -> bool:
        return self.too_dark or self.overexposed or self.blurred

    def to_dict(self) -> dict:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def grey_levels(image: Image.Image, width: int = MEASURE_WIDTH) -> np.ndarray:
    grey = image.convert("L")
    if grey.width > width:  # never enlarged: interpolation would make a small image look blurred
        grey = grey.resize((width, max(1, round(grey.height * width / grey.width))), Image.BILINEAR)
    return np.asarray(grey, dtype=np.float64)


def channel_means(image: Image.Image, lit_level: float = QualityLimits.lit_level) -> tuple[float, float, float]:
    """Mean red, green and blue levels (0..255) of the lit area, or of the whole image when little of it is lit."""
    rgb = image.convert("RGB")
    if rgb.width > APPEARANCE_WIDTH:
        rgb = rgb.resize((APPEARANCE_WIDTH, max(1, round(rgb.height * APPEARANCE_WIDTH / rgb.width))), Image.BOX)
    pixels = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    lit = np.asarray(rgb.convert("L"), dtype=np.float64).ravel() > lit_level
    chosen = pixels[lit] if lit.sum() > 0.05 * lit.size else pixels
    red, green, blue = (float(value) for value in chosen.mean(axis=0))
    return red, green, blue


def assess_quality(image: Image.Image, limits: QualityLimits = QualityLimits()) -> Quality:
    """Brightness of the lit area, share of its pixels saturated, and variance of the Laplacian, each with its flag;
    and the lit area's mean red, green and blue levels.

    Endoscopy frames keep their view in a black border (a third of a processor's frame or more): brightness and
    saturation are measured on the lit area, so the border dilutes neither, and sharpness inside it, so the rim of
    the view does not pass for detail.
    """
    grey = grey_levels(image)
    lit = grey[grey > limits.lit_level]
    measured = lit if lit.size > 0.05 * grey.size else grey.ravel()
    brightness = float(measured.mean())
    saturated = float((measured >= limits.saturated_level).mean())
    inside = ndimage.binary_erosion(grey > limits.lit_level, iterations=3)  # the view's rim is no detail
    laplacian = ndimage.laplace(grey)
    sharpness = float(laplacian[inside].var() if inside.sum() > 0.05 * grey.size else laplacian.var())
    red, green, blue = channel_means(image, limits.lit_level)
    return Quality(
        brightness=brightness, saturated_fraction=saturated, sharpness=sharpness,
        too_dark=brightness < limits.dark_brightness,
        overexposed=saturated > limits.overexposed_fraction or brightness > limits.bright_brightness,
        blurred=sharpness < limits.blur_variance, red=red, green=green, blue=blue,
    )


def blur_cut(sharpness: "np.ndarray | list[float]", quantile: float = BLUR_QUANTILE) -> float | None:
    """The blur cut of a model: the ``quantile`` of its training images' sharpness; None without measures."""
    values = np.asarray([value for value in sharpness if value is not None and np.isfinite(value)], dtype=np.float64)
    return float(np.quantile(values, quantile)) if values.size else None
