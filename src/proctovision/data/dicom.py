"""DICOM to 8-bit RGB through pydicom, the same way at ingest, training, prediction and serving.

Grey images: stored values → Modality LUT (Rescale Slope/Intercept) → a window → 0..255, inverted for
MONOCHROME1. Colour images (RGB, YBR, palette) come out as RGB. Patient identity never leaves this
module except as a salted pseudonym.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.data.images import ImageReadError
from proctovision.errors import UserError

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft-tissue": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "pelvis": (40.0, 400.0),
    "brain": (40.0, 80.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}


class WindowError(UserError, ValueError):
    """A window specification that cannot be read."""


def parse_window(spec: object) -> object:
    """``None``/``file`` (the file's own VOI window, else its full range), ``C,W``, a preset name,
    or ``percentile:LOW,HIGH``. Returns a normalised string that manifests and run configs record."""
    if spec is None:
        return "file"
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return f"{float(spec[0]):g},{float(spec[1]):g}"
    text = str(spec).strip().lower()
    if text in {"", "file", "auto"}:
        return "file"
    if text in WINDOW_PRESETS:
        center, width = WINDOW_PRESETS[text]
        return f"{center:g},{width:g}"
    kind, _, rest = text.partition(":")
    try:
        if kind == "percentile":
            low, high = (float(value) for value in rest.split(","))
            if not 0 <= low < high <= 100:
                raise ValueError
            return f"percentile:{low:g},{high:g}"
        center, width = (float(value) for value in text.split(","))
        if width <= 0:
            raise ValueError
        return f"{center:g},{width:g}"
    except ValueError as error:
        presets = ", ".join(WINDOW_PRESETS)
        raise WindowError(f"window {spec!r}: use CENTER,WIDTH (width > 0), percentile:LOW,HIGH, file, or one of "
                          f"{presets}") from error


def _open(path: Path, pixels: bool = True):  # noqa: ANN202 - pydicom Dataset
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as error:
        raise ImageReadError(path, f"not a DICOM file ({error})") from error
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds on truncated or broken files
        raise ImageReadError(path, f"unreadable DICOM ({type(error).__name__}: {error})") from error


def pseudonym(value: str, salt: str) -> str:
    """A stable salted pseudonym (HMAC-SHA256): the same patient maps to the same id under one salt."""
    if not value:
        return ""
    return "P" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class DicomInfo:
    """What ingest may keep of a header: nothing identifying, identifiers only as pseudonyms."""

    frames: int
    patient: str
    study: str
    series: str
    sop_instance_uid: str
    modality: str
    photometric: str


def read_info(path: Path, salt: str) -> DicomInfo:
    """The header only (a file without pixel data is refused later, when its pixels are read)."""
    dataset = _open(path, pixels=False)
    return DicomInfo(
        frames=int(getattr(dataset, "NumberOfFrames", 1) or 1),
        patient=pseudonym(str(getattr(dataset, "PatientID", "") or ""), salt),
        study=pseudonym(str(getattr(dataset, "StudyInstanceUID", "") or ""), salt),
        series=pseudonym(str(getattr(dataset, "SeriesInstanceUID", "") or ""), salt),
        sop_instance_uid=str(getattr(dataset, "SOPInstanceUID", "") or ""),
        modality=str(getattr(dataset, "Modality", "") or ""),
        photometric=str(getattr(dataset, "PhotometricInterpretation", "") or ""),
    )


def read_dicom_rgb(path: str | Path, frame: int | None = None, window: object | None = None) -> Image.Image:
    """One frame of a DICOM file as an 8-bit RGB picture, windowed as ``window`` says (see parse_window)."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    path = Path(path)
    dataset = _open(path)
    if "PixelData" not in dataset:
        raise ImageReadError(path, "DICOM file has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # noqa: BLE001 - missing decoder plugins, truncated data
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageReadError(path, f"cannot decode pixel data (transfer syntax {syntax}): {error}") from error
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        index = frame or 0
        if not 0 <= index < frames:
            raise ImageReadError(path, f"frame {index} out of range (file has {frames})")
        pixels = pixels[index]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    if photometric in COLOUR or pixels.ndim == 3:
        # pydicom's pixel_array already converts YBR to RGB
        return Image.fromarray(to_uint8(pixels.astype(np.float64)))
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    grey = window_values(values, dataset, parse_window(window))
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, mode="L").convert("RGB")


def window_values(values: np.ndarray, dataset: object, spec: str) -> np.ndarray:
    """Modality values → 0..255 by the window spec."""
    from pydicom.pixels import apply_voi_lut

    if spec == "file":
        if "WindowCenter" in dataset or "VOILUTSequence" in dataset:
            return to_uint8(apply_voi_lut(values, dataset).astype(np.float64))
        return to_uint8(values)
    if spec.startswith("percentile:"):
        low, high = np.percentile(values, [float(v) for v in spec.removeprefix("percentile:").split(",")])
    else:
        center, width = (float(v) for v in spec.split(","))
        low, high = center - width / 2, center + width / 2
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255
    return scaled.round().astype(np.uint8)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Full range to 0..255 (a constant image becomes black)."""
    if values.dtype == np.uint8:
        return values
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return ((values - low) / (high - low) * 255).round().astype(np.uint8)


SALT_FILE = ".proctovision-salt"


def salt_for(folder: Path, given: str | None = None) -> str:
    """The pseudonym salt: given by the user, else kept in a private file beside the manifest (made once)."""
    import os
    import secrets

    if given:
        return given
    path = Path(folder) / SALT_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_hex(16)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(salt + "\n")
    return salt
