"""Decode any image file a user brings into an 8-bit RGB picture, or say why not.

Every reader returns a PIL image in RGB mode with EXIF orientation applied, so that
all later stages see one kind of input whatever the camera, scanner or colour mode.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from proctovision.core.errors import ImageReadError, UserError  # noqa: F401 - ImageReadError: the images API
from proctovision.imaging.budget import LARGE_PIXELS, PixelBudgetError, check_budget, reduction_for  # noqa: F401

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})


def looks_like_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' at byte 128; some archives drop the suffix."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as stream:
            head = stream.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or looks_like_headerless_dicom(head)


def looks_like_headerless_dicom(head: bytes) -> bool:
    """Old-style files start straight with a group 0008 (or 0002) element: no preamble, no 'DICM'."""
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)
        element = int.from_bytes(head[2:4], order)
        if group in (0x0002, 0x0008) and element < 0x0200:
            return True
    return False


def is_hidden(path: Path) -> bool:
    """Dot-files (.DS_Store, editor swap files) are never data."""
    return path.name.startswith(".")


def is_candidate_file(path: Path) -> bool:
    """Files ingest should look at: known image suffixes, DICOM, or extension-less files (DICOM archives)."""
    if is_hidden(path):
        return False
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES or suffix == ""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (16-bit, palette, RGBA, CMYK, grey) to 8-bit RGB."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def read_raster(path: Path, min_size: int | None = None) -> Image.Image:
    """Read a JPEG/PNG/TIFF/... file, applying EXIF orientation, within the pixel budget (checked on the header).

    With ``min_size``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose width and
    height both stay at or above ``min_size``: a 1280x1024 frame for a 224 px model decodes at
    320x256, about a tenth of the work, and is never smaller than the model's input. Any other format
    larger than ``LARGE_PIXELS`` is box-reduced the same way right after decoding (see ``reduce_large``).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel budget decides
            with Image.open(path) as opened:
                check_budget(path, opened.width, opened.height, 1, len(opened.getbands()))
                if min_size:
                    opened.draft(None, (min_size, min_size))
                opened.load()
                image = ImageOps.exif_transpose(reduce_large(opened, min_size))
                image = image.copy() if image is opened else image
    except PixelBudgetError:
        raise
    except FileNotFoundError as error:
        raise ImageReadError(path, "file not found") from error
    except IsADirectoryError as error:
        raise ImageReadError(path, "is a directory") from error
    except PermissionError as error:
        raise ImageReadError(path, "permission denied") from error
    except Image.DecompressionBombError as error:
        raise PixelBudgetError(path, "Pillow's decompression-bomb limit", _declared(error), 2 * Image.MAX_IMAGE_PIXELS) \
            from error
    except UnidentifiedImageError as error:
        raise ImageReadError(path, "not a recognised image format") from error
    except OSError as error:
        raise ImageReadError(path, f"corrupt or truncated image: {error}") from error
    except (ValueError, SyntaxError) as error:
        raise ImageReadError(path, f"cannot decode image: {error}") from error
    if image.width < 1 or image.height < 1:
        raise ImageReadError(path, "image has no pixels")
    return to_rgb(image)


def _declared(error: Exception) -> int:
    numbers = [int(word) for word in str(error).replace("(", " ").split() if word.isdigit()]
    return numbers[0] if numbers else 0


def reduce_large(image: Image.Image, min_size: int | None) -> Image.Image:
    """A frame over ``LARGE_PIXELS`` box-reduced to no less than ``min_size`` a side: the per-request memory stays
    that of the model's input, not of a 81-megapixel upload (Pillow's ``reduce`` averages blocks, in C)."""
    factor = reduction_for(image.width, image.height, min_size)
    if factor == 1:
        return image
    if image.mode not in {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "P"}:
        image = to_rgb(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def pixel_values(path: str | Path) -> int:
    """The pixel values a file declares (its header only), or :class:`PixelBudgetError` when over the budget:
    what a service weighs before it lets a decode start."""
    path = Path(path)
    if looks_like_dicom(path):
        from proctovision.imaging import dicom

        return dicom.declared_values(dicom.open_dicom(path, pixels=False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                return check_budget(path, opened.width, opened.height, 1, len(opened.getbands()))
    except Image.DecompressionBombError as error:
        raise PixelBudgetError(path, "Pillow's decompression-bomb limit", _declared(error), 2 * Image.MAX_IMAGE_PIXELS) \
            from error
    except (OSError, ValueError, SyntaxError):
        return 0  # not an image Pillow knows: the decode that follows says why


def read_image(
    path: str | Path, frame: int | None = None, window: object | None = None, min_size: int | None = None
) -> Image.Image:
    """Read an image or DICOM file into RGB; ``frame``/``window`` apply to DICOM only.

    ``min_size`` is a decode hint for callers that resize to a model input next: JPEGs may come back
    smaller than stored, never below ``min_size`` on either side (or their stored size if smaller), and frames of any
    format over ``LARGE_PIXELS`` are box-reduced likewise. Without it, every file is decoded at full size. Every
    reader checks the pixel budget on the file's declared size first (:mod:`proctovision.imaging.budget`).
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ImageReadError(path, "broken or looping symbolic link")
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    if looks_like_dicom(path):
        from proctovision.imaging import dicom  # pydicom is imported only for DICOM files

        return dicom.read_dicom_rgb(path, frame=frame, window=window, min_size=min_size)
    return read_raster(path, min_size=min_size)
