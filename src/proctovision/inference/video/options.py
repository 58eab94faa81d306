"""What a video run is set to and what it yields: options, the temporal smoother and the hysteresis that keep
the shown class from flickering, one row per classified frame and the whole result."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import av
import numpy as np

from proctovision.core.errors import UserError
from proctovision.imaging.content_area import ContentArea

AREA_FRAMES = 8


Pixels = np.ndarray | av.VideoFrame


PANEL_HEIGHT = 56


class VideoError(UserError):
    """A video source that cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoOptions:
    """Smoothing, hysteresis, batching and what to write. ``cam_every`` = 0: no Grad-CAM overlay."""

    smoothing: str = "ema"
    alpha: float = 0.3
    window: int = 9
    margin: float = 0.1
    batch_size: int = 16
    cam_every: int = 0
    annotate: bool = True
    annotate_width: int = 640
    live: bool = False
    max_frames: int | None = None
    prep_threads: int = 2
    audit: object | None = None


class Smoother:
    """EMA (``alpha`` = weight of the newest frame) or the mean of the last ``window`` frames."""

    def __init__(self, method: str, alpha: float, window: int) -> None:
        if method not in ("ema", "window"):
            raise UserError(f"smoothing {method!r}: use ema or window")
        if not 0 < alpha <= 1 or window < 1:
            raise UserError("smoothing needs 0 < alpha <= 1 and a window of at least 1 frame")
        self.method, self.alpha = method, alpha
        self.recent: deque[np.ndarray] = deque(maxlen=window)
        self.state: np.ndarray | None = None

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        if self.method == "window":
            self.recent.append(probabilities)
            return np.mean(self.recent, axis=0)
        self.state = probabilities if self.state is None else self.alpha * probabilities + (1 - self.alpha) * self.state
        return self.state


class Hysteresis:
    """The shown class. Binary: the positive class comes on at threshold + margin and goes off below
    threshold - margin. More classes: another class takes over once it leads the shown one by ``margin``."""

    def __init__(self, n_classes: int, threshold: float | None, margin: float) -> None:
        self.threshold = threshold if n_classes == 2 else None
        self.margin = margin
        self.shown: int | None = None

    def update(self, smoothed: np.ndarray) -> int:
        if self.threshold is not None:
            positive = smoothed[1]
            if self.shown is None:
                self.shown = int(positive >= self.threshold)
            elif self.shown == 0 and positive >= min(1.0, self.threshold + self.margin):
                self.shown = 1
            elif self.shown == 1 and positive < max(0.0, self.threshold - self.margin):
                self.shown = 0
            return self.shown
        leader = int(np.argmax(smoothed))
        if self.shown is None or smoothed[leader] - smoothed[self.shown] >= self.margin:
            self.shown = leader
        return self.shown


@dataclass
class FrameRow:
    index: int
    time_s: float
    probabilities: np.ndarray
    smoothed: np.ndarray
    shown: int
    latency_s: float | None = None
    ood_score: float | None = None


@dataclass
class VideoResult:
    rows: list[FrameRow] = field(default_factory=list)
    classes: tuple[str, ...] = ()
    frames_seen: int = 0
    dropped: int = 0
    seconds: float = 0.0
    source_fps: float | None = None
    content_area: ContentArea | None = None
    backend: str = ""
    errors: list[str] = field(default_factory=list)
    ood_threshold: float | None = None

    @property
    def fps(self) -> float:
        return len(self.rows) / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float | None:
        values = [row.latency_s for row in self.rows if row.latency_s is not None]
        return float(np.percentile(values, q) * 1000) if values else None
