"""A small synthetic data set that looks enough like endoscopy for a CNN to learn from.

Every image is drawn from scratch (no patient data): a pink mucosal field in a round
endoscopic view with the retroflexed scope in the middle. Hemorrhoids are bluish-red
cushions around the scope; the LDRf grade adds red-colour spots (Rf1) or an eroded,
bleeding patch (Rf2). Each synthetic patient has their own tint, light and image size,
so a split that ignored patients would look better than it should.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from proctovision import fileio

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: generated images, not from any patient."
GRADES = ("Rf0", "Rf1", "Rf2")
SIZES = ((320, 288), (352, 320), (300, 300), (384, 336))


@dataclass(frozen=True)
class PatientLook:
    tint: np.ndarray
    brightness: float
    size: tuple[int, int]
    vessels: int


def _patient_look(rng: np.random.Generator) -> PatientLook:
    tint = np.array([205, 112, 112], dtype=float) + rng.normal(0, 10, 3)
    return PatientLook(tint, float(rng.uniform(0.85, 1.1)), SIZES[rng.integers(len(SIZES))], int(rng.integers(4, 10)))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int = 8) -> np.ndarray:
    small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(small.resize((width, height), Image.BICUBIC), dtype=float) / 255.0


def _mucosa(rng: np.random.Generator, look: PatientLook) -> Image.Image:
    width, height = look.size
    noise = _smooth_noise(rng, width, height)
    field = look.tint[None, None, :] * (0.85 + 0.3 * noise[..., None]) * look.brightness
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(look.vessels):
        points = [(rng.uniform(0, width), rng.uniform(0, height))]
        for _ in range(6):
            x, y = points[-1]
            points.append((x + rng.normal(0, width / 10), y + rng.normal(0, height / 10)))
        draw.line(points, fill=(150, 50, 60), width=int(rng.integers(1, 3)))
    return image.filter(ImageFilter.GaussianBlur(1.0))


def _cushions(rng: np.random.Generator, image: Image.Image, grade: str | None) -> None:
    width, height = image.size
    centre_x, centre_y = width / 2, height / 2
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(2, 4))
    start = rng.uniform(0, 2 * math.pi)
    for number in range(count):
        angle = start + number * 2 * math.pi / count + rng.normal(0, 0.2)
        distance = min(width, height) * rng.uniform(0.2, 0.28)
        x, y = centre_x + distance * math.cos(angle), centre_y + distance * math.sin(angle)
        radius = min(width, height) * rng.uniform(0.12, 0.17)
        colour = tuple(int(c) for c in np.array([120, 55, 105]) + rng.normal(0, 8, 3))
        draw.ellipse((x - radius, y - radius * 0.8, x + radius, y + radius * 0.8), fill=colour)
        draw.ellipse((x - radius * 0.35, y - radius * 0.5, x - radius * 0.1, y - radius * 0.3), fill=(235, 225, 235))
        if grade == "Rf1":
            for _ in range(int(rng.integers(8, 14))):
                dot_x, dot_y = x + rng.normal(0, radius / 2.5), y + rng.normal(0, radius / 3)
                size = rng.uniform(2, 4)
                draw.ellipse((dot_x - size, dot_y - size, dot_x + size, dot_y + size), fill=(235, 20, 30))
        elif grade == "Rf2" and number == 0:
            draw.ellipse((x - radius * 0.6, y - radius * 0.4, x + radius * 0.5, y + radius * 0.5), fill=(245, 245, 215))
            draw.polygon(
                [(x, y), (x + radius * 0.3, y + radius * 1.8), (x - radius * 0.3, y + radius * 1.9)], fill=(200, 0, 10)
            )


def _endoscopic_view(image: Image.Image) -> Image.Image:
    """Black corners of a round field of view and the dark scope in the centre."""
    width, height = image.size
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((width * 0.03, height * 0.03, width * 0.97, height * 0.97), fill=255)
    dark = Image.new("RGB", image.size, (0, 0, 0))
    view = Image.composite(image, dark, mask.filter(ImageFilter.GaussianBlur(4)))
    radius = min(width, height) * 0.1
    ImageDraw.Draw(view).ellipse(
        (width / 2 - radius, height / 2 - radius, width / 2 + radius, height / 2 + radius), fill=(25, 25, 30)
    )
    return view


def draw_image(rng: np.random.Generator, look: PatientLook, hemorrhoid: bool, grade: str | None) -> Image.Image:
    image = _mucosa(rng, look)
    if hemorrhoid:
        _cushions(rng, image, grade)
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    return _endoscopic_view(image)


def generate_endoscopy(
    out: str | Path, patients: int = 48, images_per_patient: int = 4, seed: int = 0
) -> dict[str, Path]:
    """Write images plus two manifests: ``hemorrhoid.csv`` (all images) and ``ldrf.csv`` (hemorrhoid images)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hemorrhoid_rows, ldrf_rows = [], []
    for number in range(patients):
        patient = f"SYN{number:04d}"
        look = _patient_look(rng)
        has_hemorrhoid = number % 4 != 0
        grade = GRADES[number % 3] if has_hemorrhoid else None
        for shot in range(images_per_patient):
            image = draw_image(rng, look, has_hemorrhoid, grade)
            relative = Path("images") / f"{patient}_{shot:02d}.jpg"
            fileio.write_with(out / relative, lambda path, image=image: image.save(path, format="JPEG", quality=92))
            label = "hemorrhoid" if has_hemorrhoid else "normal"
            hemorrhoid_rows.append({"path": str(relative), "label": label, "patient_id": patient, "synthetic": "yes"})
            if grade:
                ldrf_rows.append({"path": str(relative), "label": grade, "patient_id": patient, "synthetic": "yes"})
    fileio.write_csv(out / "hemorrhoid.csv", pd.DataFrame(hemorrhoid_rows))
    fileio.write_csv(out / "ldrf.csv", pd.DataFrame(ldrf_rows))
    fileio.write_text(out / "README.txt", SYNTHETIC_NOTE + "\n")
    return {"hemorrhoid": out / "hemorrhoid.csv", "ldrf": out / "ldrf.csv"}
