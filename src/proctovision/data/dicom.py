"""DICOM to 8-bit RGB through pydicom: modality LUT, VOI window, MONOCHROME1 inversion, frames, colour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.data.images import ImageReadError


def read_dicom_rgb(path: str | Path, frame: int | None = None, window: object | None = None) -> Image.Image:
    """``window`` is ``(center, width)``; without it the file's own VOI window (or its full range) is used."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space

    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError as error:
        raise ImageReadError(path, f"not a DICOM file ({error})") from error
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds on truncated files
        raise ImageReadError(path, f"unreadable DICOM ({type(error).__name__}: {error})") from error
    if "PixelData" not in dataset:
        raise ImageReadError(path, "DICOM file has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # noqa: BLE001 - missing decoder plugins, truncated data
        syntax = getattr(dataset.file_meta, "TransferSyntaxUID", "unknown")
        raise ImageReadError(path, f"cannot decode pixel data (transfer syntax {syntax}): {error}") from error
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        index = frame or 0
        if not 0 <= index < frames:
            raise ImageReadError(path, f"frame {index} out of range (file has {frames})")
        pixels = pixels[index]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric in {"RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"} or pixels.ndim == 3:
        if photometric.startswith("YBR"):
            pixels = convert_color_space(pixels, photometric, "RGB")
        elif photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, dataset)
        return Image.fromarray(_to_uint8(pixels.astype(np.float64), None))
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    if window is not None:
        center, width = (float(value) for value in window)
        low, high = center - width / 2, center + width / 2
        values = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255
        grey = values
    elif "WindowCenter" in dataset or "VOILUTSequence" in dataset:
        grey = _to_uint8(apply_voi_lut(values, dataset).astype(np.float64), None).astype(np.float64)
    else:
        grey = _to_uint8(values, None).astype(np.float64)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey.round().astype(np.uint8), mode="L").convert("RGB")


def _to_uint8(values: np.ndarray, _: object) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return ((values - low) / (high - low) * 255).round().astype(np.uint8)
