"""The model's side of a frame: the preprocessing spec applied to decoded frames, probabilities and features in
batches, the out-of-distribution score and the audit line of each classified frame."""
from __future__ import annotations

import av
import numpy as np
from PIL import Image

from proctovision.imaging.content_area import ContentArea
from proctovision.inference.video.options import FrameRow, Pixels, VideoError, VideoOptions


class FrameModel:
    """The predictor's view of one video: the spec's crop (per-video content area) and its array conversion.

    FFmpeg frames are scaled down by FFmpeg's area filter in the colour conversion itself, by the factor that JPEG
    DCT scaling would use for a still (``Preprocessing.reduction``), then resized as stills are: a full-size
    conversion and resize cost five times as much (1280x1024 to 224 px: 4.7 ms against 1.5 ms a frame)."""

    def __init__(self, predictor: object, area: ContentArea | None) -> None:
        self.predictor = predictor
        self.spec = predictor.spec
        self.area = area
        self.crops = self.spec.crop == "content"
        if self.crops and area is None:
            raise VideoError("the model was trained on content-cropped images but no content area was found")
        self._reduced: dict[tuple[int, int], tuple[int, ContentArea | None]] = {}

    def model_image(self, pixels: Pixels) -> Image.Image:
        area = self.area
        if isinstance(pixels, av.VideoFrame):
            factor, area = self.reduction(pixels.width, pixels.height)
            pixels = pixels.reformat(pixels.width // factor, pixels.height // factor, "rgb24",
                                     interpolation="AREA").to_ndarray()
        return Image.fromarray(area.crop_array(pixels) if self.crops else pixels)

    def reduction(self, width: int, height: int) -> tuple[int, ContentArea | None]:
        """The decode reduction for frames of this size, chosen on what the model sees, and the area scaled to it."""
        if (width, height) not in self._reduced:
            seen = (self.area.box[2] - self.area.box[0], self.area.box[3] - self.area.box[1]) if self.crops else (
                width, height)
            factor = self.spec.reduction(*seen)
            self._reduced[(width, height)] = (factor, self.area.scaled(factor) if self.crops else None)
        return self._reduced[(width, height)]

    def to_array(self, pixels: Pixels) -> np.ndarray:
        return self.spec.prepared(self.model_image(pixels))

    def batch(self, frames: list[Pixels]) -> np.ndarray:
        return np.stack([self.to_array(pixels) for pixels in frames])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.outputs(batch)[0]

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities, and each frame's out-of-distribution score when the model ships a detector."""
        if self.predictor.ood_detector is None:
            return self.predictor.calibrate(self.predictor.raw_probabilities(batch)), None
        raw, features = self.predictor.raw_outputs(batch)
        return self.predictor.calibrate(raw), self.predictor.ood_scores(features)


def ood_threshold(predictor: object) -> float | None:
    detector = predictor.ood_detector
    return None if detector is None else float(detector.threshold)


def audit_frame(options: VideoOptions, predictor: object, array: np.ndarray, row: FrameRow, classes: tuple,
                latency_s: float) -> None:
    """One audit line per classified frame, the input named by the sha256 of the model's input array."""
    if options.audit is None:
        return
    import hashlib

    options.audit.record(
        input_sha256=hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
        probabilities={name: float(value) for name, value in zip(classes, row.probabilities)},
        threshold=predictor.threshold, decision=classes[row.shown], guard=predictor.guard(row.ood_score, None),
        latency_s=latency_s, source="video", frame=row.index)
