"""Synthetic endoscopy frames that look like a processor's export, hard enough to show errors.

Every frame is drawn from scratch (no patient data): a 1280x1024 JPEG with the round or
octagonal view of a retroflexed scope in a black border that carries burned-in text (fake
names and ids, as processors print them). Inside: mucosal texture, vessels, specular
highlights, vignetting, exposure changes and defocus blur. Hemorrhoids are bluish-red cushions
around the scope whose strength varies per patient and per image; normal patients may have
prominent folds drawn the same way, so some hemorrhoid frames look normal and some normal
frames look suspicious. LDRf grades differ by graded signs: red spots (Rf1), an eroded, bleeding
patch (Rf2), each faint or clear. A patient keeps one tint, light, vessel map, device and text
across frames, so frames of one patient resemble each other and a split that ignored patients
would look better than it should.

``difficulty.csv`` records, per frame, how ambiguous its visible evidence is (0 clear .. 1 a
coin toss); the demo's simulated readers err more often on the hard frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from proctovision.core import fileio

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: generated images, not from any patient."
GRADES = ("Rf0", "Rf1", "Rf2")
FRAME_SIZE = (1280, 1024)
SCENE = 384
VIEW_DIAMETER = 944
VIEW_CENTRE = (760, 512)
BOUNDARY = 0.30
CALIBRATION = (
    "Difficulty is calibrated so that the demo model's test accuracy lands near 0.80-0.93: lesion strength "
    "overlaps between classes (faint hemorrhoids, suspicious folds in normal patients), with blur and exposure "
    "changes on top; frames of one patient resemble each other."
)
GIVEN_NAMES = ("ANNA", "BORIS", "CARLA", "DMITRI", "ELENA", "FELIX", "GRETA", "HUGO", "IRIS", "JONAS", "KEIKO", "LUCA")
FAMILY_NAMES = ("TESTPERSON", "SAMPLE", "FICTIVE", "EXAMPLE", "DUMMY", "MOCK")


@dataclass(frozen=True)
class PatientLook:
    tint: np.ndarray
    brightness: float
    vessels: np.ndarray
    octagonal: bool
    quality: int
    text: tuple[str, ...]
    severity: float


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def _vessel_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """A branching vessel pattern larger than the scene, so each frame sees a shifted part of it."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(6, 12))):
        points = [(float(rng.uniform(0, size)), float(rng.uniform(0, size)))]
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(int(rng.integers(6, 12))):
            heading += rng.normal(0, 0.5)
            x, y = points[-1]
            step = rng.uniform(size / 30, size / 12)
            points.append((x + step * math.cos(heading), y + step * math.sin(heading)))
        draw.line(points, fill=int(rng.integers(120, 255)), width=int(rng.integers(1, 4)))
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32) / 255.0


def _burned_in_text(rng: np.random.Generator, number: int) -> tuple[str, ...]:
    given, family = GIVEN_NAMES[number % len(GIVEN_NAMES)], FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]
    year, month, day = 2025, int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return (
        "SYNTHETIC", f"{family}^{given}", f"ID: SYN{number:04d}", f"Sex: {'FM'[number % 2]}",
        f"DOB: {int(rng.integers(1940, 2000))}/01/01", f"{year}/{month:02d}/{day:02d}",
        f"{int(rng.integers(8, 17)):02d}:{int(rng.integers(0, 60)):02d}", "Eh:A5 Cm:2", "SIM-ENDO 190",
    )


def _patient_look(rng: np.random.Generator, number: int, hemorrhoid: bool) -> PatientLook:
    tint = np.array([200, 108, 104], dtype=np.float32) + rng.normal(0, 12, 3).astype(np.float32)
    if hemorrhoid:
        severity = float(np.clip(rng.beta(2.4, 1.6), 0.12, 1.0))
    else:
        severity = float(rng.uniform(0.1, 0.36)) if rng.random() < 0.4 else float(rng.uniform(0.0, 0.08))
    return PatientLook(
        tint=tint, brightness=float(rng.uniform(0.85, 1.1)), vessels=_vessel_map(rng, int(SCENE * 1.5)),
        octagonal=number % 3 == 2, quality=int(rng.choice((85, 90, 95))), text=_burned_in_text(rng, number),
        severity=severity,
    )


def _blob(xx: np.ndarray, yy: np.ndarray, x: float, y: float, rx: float, ry: float) -> np.ndarray:
    return np.exp(-(((xx - x) / rx) ** 2 + ((yy - y) / ry) ** 2) * 1.6)


def _mucosa(rng: np.random.Generator, look: PatientLook, exposure: float) -> np.ndarray:
    folds = _smooth_noise(rng, SCENE, 5)
    texture = _smooth_noise(rng, SCENE, 40)
    grain = rng.normal(0, 1, (SCENE, SCENE)).astype(np.float32)
    light = (0.8 + 0.25 * folds + 0.08 * texture + 0.02 * grain) * look.brightness * exposure
    field = look.tint[None, None, :] * light[..., None]
    offset = rng.integers(0, look.vessels.shape[0] - SCENE, 2)
    vessels = look.vessels[offset[0]: offset[0] + SCENE, offset[1]: offset[1] + SCENE, None]
    return field * (1 - 0.35 * vessels * np.array([0.3, 1.0, 0.8], dtype=np.float32))


def _cushions(rng: np.random.Generator, field: np.ndarray, strength: float, grade: str | None,
              sign: float) -> list[tuple[float, float, float]]:
    """Bluish-red bulges around the scope; ``strength`` 0..1 sets how much they stand out."""
    yy, xx = np.mgrid[:SCENE, :SCENE].astype(np.float32)
    centre = SCENE / 2
    count = int(rng.integers(2, 4))
    start = rng.uniform(0, 2 * math.pi)
    colour = np.array([118, 52, 100], dtype=np.float32) + rng.normal(0, 8, 3).astype(np.float32)
    placed = []
    for number in range(count):
        angle = start + number * 2 * math.pi / count + rng.normal(0, 0.2)
        distance = SCENE * rng.uniform(0.2, 0.27)
        x, y = centre + distance * math.cos(angle), centre + distance * math.sin(angle)
        radius = SCENE * rng.uniform(0.10, 0.13) * (0.6 + 0.7 * strength)
        weight = (min(1.0, 1.4 * strength) * _blob(xx, yy, x, y, radius, radius * 0.8))[..., None]
        field[:] = field * (1 - weight) + colour * weight
        placed.append((x, y, radius))
    if grade in ("Rf1", "Rf2") or rng.random() < 0.5:
        _red_spots(rng, field, placed, grade, sign)
    if grade == "Rf2":
        _erosion(rng, field, placed[0], sign)
    return placed


def _red_spots(rng: np.random.Generator, field: np.ndarray, placed: list, grade: str, sign: float) -> None:
    """Red-colour signs: more and clearer with ``sign`` for Rf1/Rf2; a few faint ones on half of the other
    frames (Rf0 cushions, folds of normal patients), so that spots alone do not give the class away."""
    image = Image.fromarray(np.zeros((SCENE, SCENE), np.uint8))
    draw = ImageDraw.Draw(image)
    spots = int(2 + 10 * sign) if grade in ("Rf1", "Rf2") else int(1 + 3 * sign)
    for x, y, radius in placed:
        for _ in range(spots):
            dot_x, dot_y = x + rng.normal(0, radius / 2.5), y + rng.normal(0, radius / 3)
            size = rng.uniform(1.0, 2.2)
            draw.ellipse((dot_x - size, dot_y - size, dot_x + size, dot_y + size), fill=255)
    alpha = np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)), np.float32)[..., None] / 255 * (0.35 + 0.6 * sign)
    field[:] = field * (1 - alpha) + np.array([230, 25, 35], np.float32) * alpha


def _erosion(rng: np.random.Generator, field: np.ndarray, cushion: tuple[float, float, float], sign: float) -> None:
    """Rf2: a fibrin-covered erosion with a bleeding streak whose size grows with ``sign``."""
    x, y, radius = cushion
    yy, xx = np.mgrid[:SCENE, :SCENE].astype(np.float32)
    size = radius * (0.3 + 0.4 * sign)
    patch = (0.85 * _blob(xx, yy, x, y, size, size * 0.7))[..., None]
    field[:] = field * (1 - patch) + np.array([240, 235, 205], np.float32) * patch
    streak = (0.8 * sign * _blob(xx, yy, x + rng.normal(0, 3), y + radius * 1.1, size * 0.35, radius))[..., None]
    field[:] = field * (1 - streak) + np.array([190, 5, 15], np.float32) * streak


def _highlights(rng: np.random.Generator, field: np.ndarray, placed: list) -> None:
    """Specular reflections of the scope's light: small saturated spots, often on bulges."""
    image = Image.new("L", (SCENE, SCENE), 0)
    draw = ImageDraw.Draw(image)
    spots = [(x + rng.normal(0, r / 3), y - r / 3) for x, y, r in placed] if placed else []
    spots += [tuple(rng.uniform(SCENE * 0.15, SCENE * 0.85, 2)) for _ in range(int(rng.integers(2, 7)))]
    for x, y in spots:
        width, height = rng.uniform(1.5, 6), rng.uniform(1, 3.5)
        draw.ellipse((x - width, y - height, x + width, y + height), fill=255)
    alpha = np.asarray(image.filter(ImageFilter.GaussianBlur(1.0)), np.float32)[..., None] / 255
    field[:] = field * (1 - alpha) + 255 * alpha


def _scope_and_vignette(field: np.ndarray, exposure: float) -> np.ndarray:
    yy, xx = np.mgrid[:SCENE, :SCENE].astype(np.float32)
    radius = np.hypot(xx - SCENE / 2, yy - SCENE / 2) / (SCENE / 2)
    field = field * (1.05 - 0.45 * np.clip(radius, 0, 1.2) ** 2)[..., None]
    scope = np.clip((radius - 0.17) / 0.02, 0, 1)[..., None]
    return field * scope + np.array([28, 28, 34], np.float32) * exposure * (1 - scope)


def _view_mask(octagonal: bool) -> Image.Image:
    mask = Image.new("L", (VIEW_DIAMETER, VIEW_DIAMETER), 0)
    draw = ImageDraw.Draw(mask)
    if octagonal:
        cut, end = VIEW_DIAMETER * 0.2, VIEW_DIAMETER - 1
        draw.polygon([(cut, 0), (end - cut, 0), (end, cut), (end, end - cut), (end - cut, end), (cut, end),
                      (0, end - cut), (0, cut)], fill=255)
    else:
        draw.ellipse((0, 0, VIEW_DIAMETER - 1, VIEW_DIAMETER - 1), fill=255)
    return mask


_MASKS = {shape: _view_mask(shape) for shape in (False, True)}


def _frame(scene: Image.Image, look: PatientLook, shot: int) -> Image.Image:
    frame = Image.new("RGB", FRAME_SIZE, (0, 0, 0))
    view = scene.resize((VIEW_DIAMETER, VIEW_DIAMETER), Image.BICUBIC)
    corner = (VIEW_CENTRE[0] - VIEW_DIAMETER // 2, VIEW_CENTRE[1] - VIEW_DIAMETER // 2)
    frame.paste(view, corner, _MASKS[look.octagonal])
    draw = ImageDraw.Draw(frame)
    font = ImageFont.load_default(size=22)
    for line, text in enumerate(look.text[:7]):
        draw.text((24, 40 + 32 * line), text, fill=(235, 235, 235), font=font)
    draw.text((24, FRAME_SIZE[1] - 90), look.text[7], fill=(235, 235, 235), font=font)
    draw.text((24, FRAME_SIZE[1] - 58), f"{look.text[8]}  #{shot + 1}", fill=(235, 235, 235), font=font)
    return frame


def visible_strength(strength: float, blur: float, exposure: float) -> float:
    """How much lesion a viewer can see: defocus and poor exposure wash it out."""
    return strength * (1 - 0.08 * blur) * (1 - 0.8 * abs(exposure - 1.0))


def difficulty(visible: float, hemorrhoid: bool) -> float:
    """1 at the boundary between the classes' overlapping strengths, falling to 0 where evidence is clear."""
    margin = (visible - BOUNDARY) if hemorrhoid else (BOUNDARY - visible)
    return float(np.clip(1 - margin / 0.25, 0, 1) if margin > 0 else 1.0)


def patient_look(rng: np.random.Generator, number: int, hemorrhoid: bool) -> PatientLook:
    """One synthetic patient's appearance (tint, vessels, view shape, burned-in text, lesion severity)."""
    return _patient_look(rng, number, hemorrhoid)


def draw_scene(rng: np.random.Generator, look: PatientLook, grade: str | None) -> tuple[Image.Image, float, float,
                                                                                          float]:
    """The endoscope's view alone (no border, no text): the scene, its lesion strength, blur and exposure."""
    exposure = float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.3))
    blur = float(rng.choice((0.0, 0.0, 0.6, 1.2, 2.5)))
    strength = float(np.clip(look.severity + rng.normal(0, 0.1), 0.0, 1.0))
    sign = float(np.clip(rng.beta(3, 2) if grade in ("Rf1", "Rf2") else rng.beta(1, 4), 0, 1))
    field = _mucosa(rng, look, exposure)
    placed = _cushions(rng, field, strength, grade, sign) if strength > 0.02 else []
    _highlights(rng, field, placed)
    field = _scope_and_vignette(field, exposure)
    scene = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    if blur:
        scene = scene.filter(ImageFilter.GaussianBlur(blur))
    return scene, strength, blur, exposure


def draw_image(rng: np.random.Generator, look: PatientLook, hemorrhoid: bool, grade: str | None,
               shot: int = 0) -> tuple[Image.Image, float]:
    """One frame and its visible lesion strength."""
    scene, strength, blur, exposure = draw_scene(rng, look, grade)
    return _frame(scene, look, shot), visible_strength(strength, blur, exposure)


def _save_jpeg(image: Image.Image, quality: int):
    return lambda path: image.save(path, format="JPEG", quality=quality)


def generate_endoscopy(
    out: str | Path, patients: int = 48, images_per_patient: int = 4, seed: int = 0
) -> dict[str, Path]:
    """Write 1280x1024 JPEG frames plus ``hemorrhoid.csv`` (all frames), ``ldrf.csv`` (hemorrhoid frames),
    ``difficulty.csv`` (path, visible strength, difficulty) and a README that says they are synthetic."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hemorrhoid_rows, ldrf_rows, difficulty_rows = [], [], []
    for number in range(patients):
        patient = f"SYN{number:04d}"
        has_hemorrhoid = number % 2 == 1
        grade = GRADES[(number // 2) % 3] if has_hemorrhoid else None
        look = _patient_look(rng, number, has_hemorrhoid)
        for shot in range(images_per_patient):
            image, visible = draw_image(rng, look, has_hemorrhoid, grade, shot)
            relative = Path("images") / f"{patient}_{shot:02d}.jpg"
            fileio.write_with(out / relative, _save_jpeg(image, look.quality))
            label = "hemorrhoid" if has_hemorrhoid else "normal"
            hemorrhoid_rows.append({"path": str(relative), "label": label, "patient_id": patient, "synthetic": "yes"})
            difficulty_rows.append({"path": str(relative), "visible_strength": round(visible, 4),
                                    "difficulty": round(difficulty(visible, has_hemorrhoid), 4)})
            if grade:
                ldrf_rows.append({"path": str(relative), "label": grade, "patient_id": patient, "synthetic": "yes"})
    fileio.write_csv(out / "hemorrhoid.csv", pd.DataFrame(hemorrhoid_rows))
    fileio.write_csv(out / "ldrf.csv", pd.DataFrame(ldrf_rows))
    fileio.write_csv(out / "difficulty.csv", pd.DataFrame(difficulty_rows))
    fileio.write_text(out / "README.txt", readme_text())
    return {"hemorrhoid": out / "hemorrhoid.csv", "ldrf": out / "ldrf.csv"}


def readme_text() -> str:
    return "\n".join([
        SYNTHETIC_NOTE,
        "",
        "Every frame is generated: 1280x1024 JPEG like an endoscopy processor's export, with a black border",
        "whose burned-in text (names, ids, dates) is FAKE and marked SYNTHETIC. No image comes from a patient.",
        CALIBRATION,
        "difficulty.csv: per frame, the visible lesion strength and how ambiguous it is (0 clear .. 1 coin toss).",
        "",
    ])
