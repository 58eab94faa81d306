"""Synthetic MRI-like axial slices for the fistula task: 16-bit grey images, several slices per patient.

A pelvis-like body with the anal canal at its centre; slices with an internal orifice show an
enhancing tract leaving the canal wall (T1 contrast-enhanced fistulas enhance). Nothing here
comes from a patient.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision import fileio
from proctovision.data.demo import SYNTHETIC_NOTE


def draw_slice(rng: np.random.Generator, size: int, orifice: bool, gain: float) -> np.ndarray:
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
    if orifice:
        angle = rng.uniform(0, 2 * math.pi)
        length = size * rng.uniform(0.12, 0.22)
        for step in np.linspace(size * 0.05, size * 0.05 + length, 40):
            y, x = centre[0] + step * math.sin(angle), centre[1] + step * math.cos(angle)
            image[np.hypot(xx - x, yy - y) < size * 0.018] = 2600
    image += rng.normal(0, 60, image.shape)
    return np.clip(image * gain, 0, 65535)


def generate_mri(out: str | Path, patients: int = 40, slices_per_patient: int = 4, size: int = 160, seed: int = 0) -> Path:
    """Write 16-bit PNG slices and ``fistula.csv`` (path,label,patient_id,synthetic)."""
    out = Path(out)
    (out / "mri").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(patients):
        patient = f"SYNMR{number:04d}"
        has_fistula = number % 2 == 1
        gain = float(rng.uniform(0.8, 1.25))
        for index in range(slices_per_patient):
            pixels = draw_slice(rng, size, has_fistula, gain).astype(np.uint16)
            relative = Path("mri") / f"{patient}_slice{index:02d}.png"
            fileio.write_with(out / relative, lambda path, pixels=pixels: Image.fromarray(pixels).save(path, format="PNG"))
            label = "internal_orifice" if has_fistula else "normal"
            rows.append({"path": str(relative), "label": label, "patient_id": patient, "synthetic": "yes"})
    fileio.write_csv(out / "fistula.csv", pd.DataFrame(rows))
    fileio.write_text(out / "README.txt", SYNTHETIC_NOTE + "\n")
    return out / "fistula.csv"
