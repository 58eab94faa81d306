"""Hostile files built on the fly, tiny on disk: a deflated DICOM that declares a huge frame of zeros."""
from __future__ import annotations

import io
import zlib
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def deflated_zeros_dicom(path: Path, rows: int = 16384, columns: int = 16384, **elements: object) -> Path:
    """A Deflated Explicit VR Little Endian file whose 8-bit frame of zeros is streamed through zlib: tiny on disk
    for 256 MiB of declared pixels at level 9, as the service was sent (1.1 MB at level 1 here)."""
    dataset = Dataset()
    dataset.SOPClassUID, dataset.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    dataset.Modality, dataset.PatientID, dataset.PatientName = "OT", "SYN0001", "SAMPLE^IRIS"
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel = rows, columns, 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = dataset.SOPClassUID, dataset.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, dataset)
    length = rows * columns
    pixel_header = b"\xe0\x7f\x10\x00OB\x00\x00" + length.to_bytes(4, "little")
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    squeezer = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)  # level 9 gives 262 KB, 3x slower
    zeros = bytes(1 << 22)
    with open(path, "wb") as stream:
        stream.write(head.getvalue())
        stream.write(squeezer.compress(body.getvalue() + pixel_header))
        for _ in range(length // len(zeros)):
            stream.write(squeezer.compress(zeros))
        stream.write(squeezer.compress(bytes(length % len(zeros))) + squeezer.flush())
    return path


def png_bytes(size: tuple[int, int], colour: int = 0) -> bytes:
    """A flat grey PNG of ``size``: megapixels in a few hundred KB."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()
