"""A DICOM file's header, read once and cheaply, checked before any pixel is decoded: numeric elements that are
numbers, the declared size within the pixel budget, a decoder for the transfer syntax.

Messages name the attribute and its tag and say why a file is refused, never the attribute's value: a header
field may hold a patient's name wherever a hostile or broken writer put it.
"""
from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from proctovision.core.errors import ImageReadError
from proctovision.imaging.budget import check_budget

INTEGER_ELEMENTS = ("NumberOfFrames", "Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored",
                    "PixelRepresentation", "PlanarConfiguration")
DECIMAL_ELEMENTS = ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
SIZE_ELEMENTS = ("NumberOfFrames", "Rows", "Columns", "SamplesPerPixel")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
DEFLATED_HEADER_BYTES = 4 << 20  # inflated bytes read for the header of a deflated file: never its pixel data
MODALITIES = frozenset("AR AU BDUS BI BMD CR CT DG DOC DX ECG EPS ES FID GM HC HD IO IOL IVOCT IVUS KER KO LEN LS MG "
                       "MR NM OAM OCT OP OPM OPT OPV OSS OT PLAN PR PT PX REG RESP RF RTDOSE RTIMAGE RTPLAN RTRECORD "
                       "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TG US VA XA XC".split())


@dataclass
class OpenedDicom:
    """A file parsed once: its dataset, and whether it lacked the 128-byte preamble (old-style files)."""

    path: Path
    dataset: object
    headerless: bool = False


def open_dicom(path: str | Path, pixels: bool = True) -> OpenedDicom:
    """Parse a file once (``pixels=False``: the header alone, a deflated file inflated only as far as its header).

    A file without preamble/meta header is read anyway when what comes out has the marks of a DICOM object;
    its transfer syntax is then the one pydicom recognised while reading it.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not pixels:
                header = deflated_header(path)
                if header is not None:
                    return OpenedDicom(path, header)
            try:
                return OpenedDicom(path, pydicom.dcmread(path, stop_before_pixels=not pixels))
            except InvalidDicomError:
                dataset = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
                if not _has_dicom_marks(dataset):
                    raise ImageReadError(path, "not a DICOM file (no preamble, no meta header, no DICOM elements)")
                _fill_transfer_syntax(dataset)
                return OpenedDicom(path, dataset, headerless=True)
    except ImageReadError:
        raise
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds on truncated or broken files
        raise ImageReadError(path, f"unreadable DICOM ({type(error).__name__}: {without_values(error)})") from error


def without_values(error: Exception) -> str:
    """A library's error text on one line with anything it quotes (a header value, read from the file) cut out."""
    import re

    return re.sub(r"'[^']*'|\"[^\"]*\"|b'[^']*'", "'…'", " ".join(str(error).split()))


def deflated_header(path: Path) -> object | None:
    """The header of a Deflated Explicit VR file, inflating at most ``DEFLATED_HEADER_BYTES`` (pydicom inflates the
    whole file, pixel data included, even to read the header: 512 MiB from a 262 KB file of zeros); None for any
    other file."""
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        with open(path, "rb") as stream:
            read_preamble(stream, False)
            meta = _read_file_meta_info(stream)
            if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
                return None
            inflater, head = zlib.decompressobj(-zlib.MAX_WBITS), b""
            while len(head) < DEFLATED_HEADER_BYTES and not inflater.eof:
                chunk = inflater.unconsumed_tail or stream.read(1 << 16)
                if not chunk:
                    break
                head += inflater.decompress(chunk, DEFLATED_HEADER_BYTES - len(head))
                if b"\xe0\x7f\x10\x00" in head or b"\xe0\x7f\x08\x00" in head or b"\xe0\x7f\x09\x00" in head:
                    break
    except Exception:  # noqa: BLE001 - not a Part 10 file: the ordinary reader says why
        return None
    dataset = read_dataset(io.BytesIO(head), False, True,
                           stop_when=lambda tag, *_: int(tag) in PIXEL_TAGS)
    dataset.file_meta = meta
    return dataset


def _has_dicom_marks(dataset: object) -> bool:
    try:
        return any(keyword in dataset for keyword in ("SOPClassUID", "SOPInstanceUID", "PixelData", "Modality",
                                                       "StudyInstanceUID"))
    except Exception:  # noqa: BLE001 - garbage read by force
        return False


def _fill_transfer_syntax(dataset: object) -> None:
    """A file without meta header carries no Transfer Syntax UID: take the encoding pydicom read it with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(dataset, "file_meta", None)
    if meta is None:
        meta = dataset.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = dataset.original_encoding
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def tag_text(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword) or 0
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def check_header(path: Path, dataset: object, keywords: tuple[str, ...] = INTEGER_ELEMENTS + DECIMAL_ELEMENTS) -> None:
    """Refuse a header whose numeric elements are not numbers, naming the element (never its value)."""
    for keyword in keywords:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if keyword not in dataset:
                    continue
                value = dataset[keyword].value
            values = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
            for item in values:
                if item is None or item == "":
                    continue
                if keyword in INTEGER_ELEMENTS:
                    if isinstance(item, (bytes, str)) or int(item) != float(item):
                        raise ValueError
                else:
                    float(item)
        except (ValueError, TypeError, OverflowError) as error:
            kind = "an integer" if keyword in INTEGER_ELEMENTS else "a number"
            raise ImageReadError(path, f"malformed header: {tag_text(keyword)} is not {kind} (value not shown)") \
                from error
    if any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        for keyword in ("Rows", "Columns"):
            if keyword not in dataset or not dataset[keyword].value:
                raise ImageReadError(path, f"malformed header: {tag_text(keyword)} is missing or zero")


def frame_count(dataset: object) -> int:
    return int(getattr(dataset, "NumberOfFrames", 1) or 1)


def declared_values(opened: OpenedDicom) -> int:
    """Rows x Columns x NumberOfFrames x SamplesPerPixel from the header, checked against the pixel budget."""
    dataset = opened.dataset
    check_header(opened.path, dataset, SIZE_ELEMENTS)

    def number(keyword: str, default: int) -> int:
        return int(getattr(dataset, keyword, default) or default)

    return check_budget(opened.path, number("Columns", 0), number("Rows", 0), number("NumberOfFrames", 1),
                        number("SamplesPerPixel", 1))


def object_kind(dataset: object) -> str:
    """What a file holds, by its SOP Class name ('RT Plan Storage', '12-lead ECG Waveform Storage', ...), from
    pydicom's dictionary and the standard's modality codes only: an unknown value is not repeated."""
    sop_class = getattr(dataset, "SOPClassUID", None)
    name = getattr(sop_class, "name", "") if sop_class is not None else ""
    known = bool(name) and name != str(sop_class)
    modality = str(getattr(dataset, "Modality", "") or "")
    modality = modality if modality in MODALITIES else ""
    if not known:
        return f"{modality} object" if modality else "object of unknown kind (no known SOP Class UID)"
    return f"{name} object ({modality})" if modality else f"{name} object"


def syntax_name(syntax: object) -> str:
    """A transfer syntax by its name in pydicom's dictionary; an unknown UID is not repeated."""
    name = getattr(syntax, "name", "")
    return f"{name} ({syntax})" if name and name != str(syntax) else "an unknown transfer syntax"
