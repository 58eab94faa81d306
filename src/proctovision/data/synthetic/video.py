"""A generated endoscopy-like video with a known answer: where the lesion is in view, and where the text is.

The scene reuses the still generator of :mod:`proctovision.data.synthetic.endoscopy` (mucosa of one synthetic patient,
and a hemorrhoid still whose cushions become the lesion), animated: the camera drifts over the mucosa,
the lesion slides into the field of view at known times and out again, and the processor's burned-in
text (a made-up name, an id, a running clock) sits in the black border around an octagonal field.
No patient data: everything is drawn. Written with PyAV (H.264 by default, MJPEG on request).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from proctovision.core import fileio
from proctovision.data.synthetic import endoscopy as demo

BURNED_IN_TEXT = ("SYNTHETIC^PATIENT  ID 0000000", "DEMO HOSPITAL  ENDO-1", "DOB 01.01.1970")
TEXT_COLOUR = (235, 235, 235)
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
              ".y4m": "yuv4mpegpipe"}


@dataclass(frozen=True)
class DemoVideo:
    """What the generated video holds, for tests and the demo: lesion intervals in seconds and pixel boxes."""

    path: str
    fps: int
    n_frames: int
    size: tuple[int, int]
    lesion_segments: list[tuple[float, float]]
    text_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    field_radius: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def octagon_mask(size: tuple[int, int], radius: float) -> Image.Image:
    """The field of view: a regular octagon (as many video endoscopes show) centred in the frame."""
    width, height = size
    points = [(width / 2 + radius * math.cos(math.pi / 8 + k * math.pi / 4),
               height / 2 + radius * math.sin(math.pi / 8 + k * math.pi / 4)) for k in range(8)]
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    return mask


LESION_COLOUR = (118, 52, 100)  # the still generator's haemorrhoidal cushion, made to stand out in the video


def _still(seed: int, size: tuple[int, int], hemorrhoid: bool) -> np.ndarray:
    """One still of the demo generator: the same synthetic patient for the mucosa and the lesion."""
    rng = np.random.default_rng(seed)
    look = replace(demo.patient_look(rng, seed, hemorrhoid), severity=0.9 if hemorrhoid else 0.0)
    scene = demo.draw_scene(rng, look, "Rf1" if hemorrhoid else None)[0]
    return np.asarray(scene.convert("RGB").resize(size, Image.BICUBIC))


def _scene(seed: int, texture: tuple[int, int], sprite: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mucosa texture larger than the frame, and a lesion sprite with its soft alpha mask."""
    still = _still(seed, (texture[0] // 2, texture[1] // 2), hemorrhoid=False)
    h, w = still.shape[:2]
    inside = still[int(h * 0.18): int(h * 0.38), int(w * 0.58): int(w * 0.82)]
    middle = Image.fromarray(inside).resize(texture, Image.BICUBIC)
    cushion = _still(seed + 1, (sprite, sprite), hemorrhoid=True).astype(np.float32)
    centre = Image.fromarray((0.45 * cushion + 0.55 * np.array(LESION_COLOUR, np.float32)).astype(np.uint8))
    alpha = Image.new("L", (sprite, sprite), 0)
    draw = ImageDraw.Draw(alpha)
    draw.ellipse((sprite * 0.08, sprite * 0.08, sprite * 0.92, sprite * 0.92), fill=255)
    draw.ellipse((sprite * 0.36, sprite * 0.36, sprite * 0.64, sprite * 0.64), fill=0)
    alpha = alpha.filter(ImageFilter.GaussianBlur(sprite / 20))
    return (np.asarray(middle, dtype=np.float32), np.asarray(centre, dtype=np.float32),
            np.asarray(alpha, dtype=np.float32)[..., None] / 255.0)


def lesion_centre_x(t: float, segment: tuple[float, float], centre: float, radius: float, transit: float) -> float:
    """The lesion's centre crosses the field's edge at the segment's start (entering) and end (leaving)."""
    start, end = segment
    park = min(transit, (end - start) / 2)
    if t < start + park:
        return centre + radius * (1 - (t - start) / transit)
    if t <= end - park:
        return centre + radius * (1 - park / transit)
    return centre + radius * (1 - park / transit) - radius * (t - (end - park)) / transit * (2 - park / transit)


def _border_text(size: tuple[int, int]) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    width, height = size
    font = ImageFont.load_default(size=max(10, height // 32))
    layer = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(layer)
    boxes = []
    corners = [(0.02, 0.02), (0.02, 0.93), (0.70, 0.02)]
    for text, (fx, fy) in zip(BURNED_IN_TEXT, corners):
        box = draw.textbbox((width * fx, height * fy), text, font=font)
        draw.text((width * fx, height * fy), text, fill=TEXT_COLOUR, font=font)
        boxes.append(tuple(int(v) for v in box))
    return layer, boxes


def frames(size: tuple[int, int], fps: int, seconds: float, segments: Sequence[tuple[float, float]],
           seed: int = 0) -> Iterator[np.ndarray]:
    """The video's frames as uint8 ``[H, W, 3]``; ``segments`` are the lesion's in-view intervals (seconds)."""
    width, height = size
    radius = min(width, height) * 0.46
    texture = (int(width * 1.3), int(height * 1.3))
    mucosa, sprite, alpha = _scene(seed, texture, int(radius * 0.9))
    text_layer, _ = _border_text(size)
    font = ImageFont.load_default(size=max(10, height // 32))
    field_mask = np.asarray(octagon_mask(size, radius), dtype=np.float32)[..., None] / 255.0
    half = sprite.shape[0] // 2
    for index in range(int(round(seconds * fps))):
        t = index / fps
        dx = (texture[0] - width) * (0.5 + 0.45 * math.sin(2 * math.pi * t / 7.0))
        dy = (texture[1] - height) * (0.5 + 0.45 * math.sin(2 * math.pi * t / 5.0 + 1.0))
        view = mucosa[int(dy): int(dy) + height, int(dx): int(dx) + width].copy()
        view *= 0.93 + 0.07 * math.sin(2 * math.pi * t / 1.7)
        for segment in segments:
            if segment[0] - 1.5 <= t <= segment[1] + 1.5:
                x = lesion_centre_x(t, segment, width / 2, radius, 0.5)
                _paste(view, sprite, alpha, int(x) - half, int(height / 2 + 0.15 * radius * math.sin(t)) - half)
        picture = Image.fromarray((np.clip(view, 0, 255) * field_mask + 0).astype(np.uint8))
        border = text_layer.copy()
        ImageDraw.Draw(border).text((width * 0.70, height * 0.93), f"{int(t) // 60:02d}:{int(t) % 60:02d}:"
                                    f"{index % fps:02d}", fill=TEXT_COLOUR, font=font)
        yield np.where(field_mask > 0.5, np.asarray(picture), np.asarray(border)).astype(np.uint8)


def _paste(view: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    height, width = view.shape[:2]
    size = sprite.shape[0]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(width, left + size), min(height, top + size)
    if x0 >= x1 or y0 >= y1:
        return
    part = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    region = view[y0:y1, x0:x1]
    view[y0:y1, x0:x1] = region * (1 - alpha[part]) + sprite[part] * alpha[part]


def write_demo_video(out: str | Path, size: tuple[int, int] = (1280, 1024), fps: int = 30, seconds: float = 10.0,
                     segments: Sequence[tuple[float, float]] = ((3.0, 6.0),), seed: int = 0,
                     codec: str = "h264") -> DemoVideo:
    """Write the video (``h264`` in .mp4, or any FFmpeg encoder: ``mjpeg``, ``libx265``; raw frames in .y4m, as Chromium's fake camera reads)
    and ``<name>.truth.json`` beside it."""
    out = Path(out)
    codec = "rawvideo" if out.suffix.lower() == ".y4m" else codec
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def write(path: Path) -> None:
        nonlocal count
        with av.open(str(path), mode="w", format=CONTAINERS.get(out.suffix.lower(), "mp4")) as box:
            stream = box.add_stream("libx264" if codec == "h264" else codec, rate=fps)
            stream.width, stream.height = size
            stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            if codec == "h264":
                stream.options = {"preset": "veryfast", "crf": "20"}
            for pixels in frames(size, fps, seconds, segments, seed):
                box.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
                count += 1
            box.mux(stream.encode())

    fileio.write_with(out, write)
    _, boxes = _border_text(size)
    truth = DemoVideo(str(out), fps, count, size, [tuple(map(float, s)) for s in segments], boxes,
                      min(size) * 0.46)
    fileio.write_json(out.with_suffix(".truth.json"), truth.to_dict())
    return truth
