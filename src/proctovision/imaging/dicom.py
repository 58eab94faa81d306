"""DICOM to 8-bit RGB through pydicom, the same way at ingest, training, prediction and serving.

Grey images: stored values → Modality LUT (Rescale Slope/Intercept) → a window → 0..255, inverted for
MONOCHROME1. Colour images (RGB, YBR, palette) come out as RGB. Patient identity never leaves this
module except as a salted pseudonym.
"""
from __future__ import annotations

import hashlib
import hmac
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.core.errors import ImageReadError, UserError
from proctovision.imaging.budget import reduction_for
from proctovision.imaging.dicom_header import (  # noqa: F401 - open_dicom, OpenedDicom, ...: the dicom API
    DECIMAL_ELEMENTS,
    INTEGER_ELEMENTS,
    MODALITIES,
    PIXEL_KEYWORDS,
    OpenedDicom,
    check_header,
    declared_values,
    frame_count,
    object_kind,
    open_dicom,
    syntax_name,
    tag_text,
    without_values,
)

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
    return info_of(open_dicom(path, pixels=False), salt)


def known_modality(dataset: object) -> str:
    """The Modality when it is one of the standard's codes, else "": any other text is a header value, not kept."""
    modality = str(getattr(dataset, "Modality", "") or "").strip()
    return modality if modality in MODALITIES else ""


def info_of(opened: OpenedDicom, salt: str) -> DicomInfo:
    dataset = opened.dataset
    check_header(opened.path, dataset, ("NumberOfFrames",))
    return DicomInfo(
        frames=frame_count(dataset),
        patient=pseudonym(str(getattr(dataset, "PatientID", "") or ""), salt),
        study=pseudonym(str(getattr(dataset, "StudyInstanceUID", "") or ""), salt),
        series=pseudonym(str(getattr(dataset, "SeriesInstanceUID", "") or ""), salt),
        sop_instance_uid=str(getattr(dataset, "SOPInstanceUID", "") or ""),
        modality=known_modality(dataset),
        photometric=str(getattr(dataset, "PhotometricInterpretation", "") or ""),
    )


def check_pixels(opened: OpenedDicom) -> None:
    """Say, in terms a person can act on, why a file's pixels cannot be read: before decoding anything."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    path, dataset = opened.path, opened.dataset
    check_header(path, dataset)
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        kind = object_kind(dataset)
        if _last_element_cut(dataset):
            anyway = "" if "Image" in kind else "; it would hold no image in any case"
            raise ImageReadError(path, f"truncated file: {kind} cut off at byte {_size(path)}{anyway}")
        if "Image" in kind:
            raise ImageReadError(path, f"no pixel data although it is a {kind}: the file was cut short or its "
                                       "pixel data removed")
        raise ImageReadError(path, f"no pixel data: {kind}, not an image")
    syntax = UID(str(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "") or ""))
    if not syntax:
        raise ImageReadError(path, "malformed header: TransferSyntaxUID (0002,0010) is missing")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as error:
        raise ImageReadError(path, f"cannot decode pixel data: unsupported transfer syntax {syntax_name(syntax)}; "
                                   "convert the file to an uncompressed or JPEG syntax first") from error
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise ImageReadError(path, f"cannot decode pixel data: transfer syntax {syntax_name(syntax)} needs a "
                                   f"decoder plugin that is not installed ({missing})")
    if not syntax.is_compressed and "PixelData" in dataset:
        from pydicom.pixels.utils import get_expected_length

        expected, present = get_expected_length(dataset), len(dataset.PixelData)
        if present < expected:
            raise ImageReadError(path, f"truncated pixel data ({present} of {expected} bytes)")


def _last_element_cut(dataset: object) -> bool:
    """A file cut mid-element: its last element holds fewer bytes than its header declares."""
    elements = getattr(dataset, "_dict", {})
    if not elements:
        return False
    last = elements[max(elements)]
    value, length = getattr(last, "value", None), getattr(last, "length", None)
    return isinstance(value, bytes) and isinstance(length, int) and length != 0xFFFFFFFF and len(value) < length


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _decode_error(path: Path, dataset: object, error: Exception) -> ImageReadError:
    syntax = syntax_name(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None))
    text = without_values(error)
    if any(word in text.lower() for word in ("truncat", "less than expected", "fragment", "end of file")):
        return ImageReadError(path, f"truncated pixel data ({syntax}: {text})")
    return ImageReadError(path, f"cannot decode pixel data (transfer syntax {syntax}): {type(error).__name__}: {text}")


def _decoder_and_options(dataset: object) -> tuple[object, dict]:
    """pydicom's decoder for the file, asked for YBR as stored (Pillow converts it to RGB in C, see ``ybr_to_rgb``)
    and, for 8-bit baseline JPEG, through Pillow's libjpeg-turbo, several times faster than the other plugins."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import as_pixel_options
    from pydicom.uid import JPEGBaseline8Bit

    syntax = dataset.file_meta.TransferSyntaxUID
    decoder = get_decoder(syntax)
    plugin = "pillow" if syntax == JPEGBaseline8Bit and "pillow" in decoder.available_plugins else ""
    return decoder, {"decoding_plugin": plugin, "validate": True, **as_pixel_options(dataset, as_rgb=False)}


def ybr_to_rgb(pixels: np.ndarray, photometric: str) -> np.ndarray:
    """Full-range YCbCr (JPEG's) to RGB through Pillow: within 1 of pydicom's numpy conversion, at a tenth of it."""
    if photometric in {"YBR_FULL", "YBR_FULL_422"} and pixels.dtype == np.uint8 and pixels.ndim == 3:
        return np.asarray(Image.fromarray(pixels, mode="YCbCr").convert("RGB"))
    if photometric in {"YBR_FULL", "YBR_FULL_422"}:
        from pydicom.pixels import convert_color_space

        return convert_color_space(pixels, "YBR_FULL", "RGB")
    return pixels


def decode_frame(opened: OpenedDicom, index: int | None) -> np.ndarray:
    """One frame decoded by itself: the other frames of a multi-frame file are not touched."""
    frames = frame_count(opened.dataset)
    position = index or 0
    if not 0 <= position < frames:
        raise ImageReadError(opened.path, f"frame {position} out of range (file has {frames})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decoder, options = _decoder_and_options(opened.dataset)
            pixels, properties = decoder.as_array(opened.dataset, index=position, **options)
            return ybr_to_rgb(pixels, str(properties.get("photometric_interpretation", "")))
    except ImageReadError:
        raise
    except Exception as error:  # noqa: BLE001 - decoders raise many kinds on damaged data
        raise _decode_error(opened.path, opened.dataset, error) from error


def iter_frames(opened: OpenedDicom) -> Iterator[np.ndarray]:
    """Every frame once, in order, each decoded exactly once."""
    try:
        decoder, options = _decoder_and_options(opened.dataset)
        iterator = decoder.iter_array(opened.dataset, **options)
    except Exception as error:  # noqa: BLE001 - decoders raise many kinds on damaged data
        raise _decode_error(opened.path, opened.dataset, error) from error
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixels, properties = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # noqa: BLE001 - decoders raise many kinds on damaged data
            raise _decode_error(opened.path, opened.dataset, error) from error
        yield ybr_to_rgb(pixels, str(properties.get("photometric_interpretation", "")))


def frame_to_rgb(pixels: np.ndarray, dataset: object, window: object | None = None) -> Image.Image:
    """One decoded frame → 8-bit RGB: colour stays colour, grey goes through the Modality LUT and the window."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    if photometric in COLOUR or pixels.ndim == 3:
        # decode_frame and iter_frames have already converted YBR to RGB
        return stretch_uint8(pixels) if pixels.dtype == np.uint8 else Image.fromarray(to_uint8(pixels.astype(np.float64)))
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    grey = window_values(values, dataset, parse_window(window))
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, mode="L").convert("RGB")


def read_dicom_rgb(path: str | Path, frame: int | None = None, window: object | None = None,
                   min_size: int | None = None) -> Image.Image:
    """One frame of a DICOM file as an 8-bit RGB picture, windowed as ``window`` says (see parse_window).

    The header is checked against the pixel budget before the file's pixel data is read at all. Only the asked
    frame is decoded, so reading frame ``i`` of a cine costs one frame, not the whole cine; with ``min_size`` a frame
    over ``LARGE_PIXELS`` is reduced before its values are windowed (see ``images.reduce_large``).
    """
    declared_values(open_dicom(path, pixels=False))
    opened = open_dicom(path)
    check_pixels(opened)
    return frame_to_rgb(reduced(decode_frame(opened, frame), min_size), opened.dataset, window)


def reduced(pixels: np.ndarray, min_size: int | None) -> np.ndarray:
    """A decoded frame over ``LARGE_PIXELS`` subsampled to no less than ``min_size`` a side, before the float copies
    of the Modality LUT and the window (8 bytes a value) are made of it."""
    factor = reduction_for(pixels.shape[1], pixels.shape[0], min_size)
    return pixels if factor == 1 else np.ascontiguousarray(pixels[::factor, ::factor])


def iter_dicom_rgb(opened: OpenedDicom, window: object | None = None) -> Iterator[Image.Image]:
    """All frames of an opened file as RGB pictures, in order, each decoded once, after the pixel-budget check."""
    declared_values(opened)
    check_pixels(opened)
    for pixels in iter_frames(opened):
        yield frame_to_rgb(pixels, opened.dataset, window)


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


def stretch_uint8(values: np.ndarray) -> Image.Image:
    """``to_uint8`` of an 8-bit RGB frame, through Pillow's lookup table: the same numbers, without a float copy."""
    picture = Image.fromarray(values)
    extrema = picture.getextrema()
    low, high = min(band[0] for band in extrema), max(band[1] for band in extrema)
    if low == 0 and high == 255:
        return picture
    if high <= low:
        return Image.new(picture.mode, picture.size)
    table = ((np.arange(256, dtype=np.float64) - low) / (high - low) * 255).round().clip(0, 255).astype(np.uint8)
    return picture.point(table.tolist() * len(picture.getbands()))


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
