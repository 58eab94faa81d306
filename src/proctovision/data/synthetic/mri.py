"""Synthetic MRI-like axial slices for the fistula task: 16-bit MR DICOM files, several slices per patient.

A pelvis-like body with the anal canal at its centre; slices with an internal orifice show an
enhancing tract leaving the canal wall (T1 contrast-enhanced fistulas enhance). As on a scanner,
each slice has a smooth coil bias field, partial-volume blur (the tract is thinner than a 4 mm
slice, so it often enhances only faintly) and Rician noise from magnitude reconstruction; tract
width and contrast vary, so some tracts are hard to see. Nothing here comes from a patient.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from proctovision.core import fileio
from proctovision.data.synthetic.endoscopy import SYNTHETIC_NOTE


def bias_field(rng: np.random.Generator, size: int, strength: float = 0.3) -> np.ndarray:
    """A smooth multiplicative intensity drift, as a receive coil gives (brighter near the coil)."""
    yy, xx = np.mgrid[:size, :size].astype(float) / size - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    return 1 + strength * (ramp + 0.5 * rng.normal(0, 0.3) * (xx**2 + yy**2))


def rician(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise: the noise of magnitude MR images."""
    real = image + rng.normal(0, sigma, image.shape)
    imaginary = rng.normal(0, sigma, image.shape)
    return np.hypot(real, imaginary)


def tract_difficulty(width_px: float, enhancement: float, blur: float, noise: float) -> float:
    """0 for a wide, bright tract on a clean slice .. 1 for a thin, faint one lost in blur and noise."""
    contrast_to_noise = width_px * max(enhancement - 1300, 1.0) / (noise * (1 + blur))
    return float(np.clip(1 - (math.log(contrast_to_noise) - math.log(2)) / (math.log(40) - math.log(2)), 0, 1))


def draw_slice(rng: np.random.Generator, size: int, orifice: bool, gain: float) -> tuple[np.ndarray, float]:
    """One slice and its difficulty (how hard the tract, or its absence, is to see)."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    centre = size / 2 + rng.normal(0, size * 0.01, 2)
    image = np.full((size, size), 40.0)
    body = ((xx - centre[1]) / (size * 0.42)) ** 2 + ((yy - centre[0]) / (size * 0.34)) ** 2 < 1
    image[body] = 700
    fat = ((xx - centre[1]) / (size * 0.38)) ** 2 + ((yy - centre[0]) / (size * 0.30)) ** 2 > 1
    image[body & fat] = 1600
    radius = np.hypot(xx - centre[1], yy - centre[0])
    image[radius < size * 0.09] = 1100
    image[radius < size * 0.05] = 250
    width, enhancement = size * rng.uniform(0.008, 0.02), rng.uniform(1700, 2700)
    if orifice:
        angle = rng.uniform(0, 2 * math.pi)
        length = size * rng.uniform(0.08, 0.22)
        for step in np.linspace(size * 0.05, size * 0.05 + length, 40):
            y, x = centre[0] + step * math.sin(angle), centre[1] + step * math.cos(angle)
            image[np.hypot(xx - x, yy - y) < width] = enhancement
    blur, noise = rng.uniform(0.6, 1.6), rng.uniform(50, 110)
    image = gaussian_filter(image, sigma=blur)
    image = rician(rng, image * bias_field(rng, size), sigma=noise)
    difficulty = tract_difficulty(width, enhancement, blur, noise) if orifice else 0.4 * noise / 110
    return np.clip(image * gain, 0, 65535), difficulty


def write_dicom(path: Path, pixels: np.ndarray, patient_number: int, slice_index: int, seed: int) -> str:
    """An MR slice as a DICOM file with the tags a scanner writes (identifiers are synthetic); returns its UID."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import MRImageStorage, generate_uid

    entropy = [str(seed), str(patient_number)]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[*entropy, str(slice_index)])
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    dataset.PatientName = f"SYNTHETIC^PATIENT{patient_number:04d}"
    dataset.PatientID = f"SYN-{patient_number:04d}"
    dataset.PatientBirthDate = "19700101"
    dataset.StudyInstanceUID = generate_uid(entropy_srcs=[*entropy, "study"])
    dataset.SeriesInstanceUID = generate_uid(entropy_srcs=[*entropy, "series"])
    dataset.Modality, dataset.SeriesDescription = "MR", "SYNTHETIC T1 mDixon-W +C"
    dataset.InstanceNumber, dataset.SliceThickness = slice_index + 1, "4"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.RescaleSlope, dataset.RescaleIntercept = 1, 0
    dataset.WindowCenter, dataset.WindowWidth = 1300, 2600
    dataset.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda target: dataset.save_as(target, enforce_file_format=True))
    return str(dataset.SOPInstanceUID)


def generate_mri(out: str | Path, patients: int = 40, slices_per_patient: int = 4, size: int = 160, seed: int = 0) -> Path:
    """Write MR DICOM slices (mri/<class>/...), ``fistula.csv`` (path,label: patients come from the DICOM
    PatientID, pseudonymised at ingest), ``fistula_labels.csv`` keyed by SOPInstanceUID and ``difficulty.csv``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    rows, labels, difficulty = [], [], []
    for number in range(patients):
        has_fistula = number % 2 == 1
        label = "internal_orifice" if has_fistula else "normal"
        gain = float(rng.uniform(0.8, 1.25))
        for index in range(slices_per_patient):
            pixels, hardness = draw_slice(rng, size, has_fistula, gain)
            relative = Path("mri") / label / f"IM{number:04d}{index:02d}.dcm"
            uid = write_dicom(out / relative, pixels, number, index, seed)
            rows.append({"path": str(relative), "label": label, "synthetic": "yes"})
            labels.append({"sop_instance_uid": uid, "label": label})
            difficulty.append({"path": str(relative), "difficulty": round(hardness, 4)})
    fileio.write_csv(out / "fistula.csv", pd.DataFrame(rows))
    fileio.write_csv(out / "fistula_labels.csv", pd.DataFrame(labels))
    fileio.write_csv(out / "difficulty.csv", pd.DataFrame(difficulty))
    fileio.write_text(out / "README.txt", "\n".join([
        SYNTHETIC_NOTE, "", "MR DICOM slices drawn by ProctoVision; the patient tags (SYNTHETIC^PATIENT...) are fake.",
        "Each slice has a coil bias field, partial-volume blur and Rician noise; tract width and contrast vary,",
        "so some orifices are faint.", "",
    ]))
    return out / "fistula.csv"
