"""Endoscopy video, frame by frame, through the one predictor: files (every frame) and live sources (the latest
frame; frames the model cannot keep up with are dropped and counted).

File mode overlaps its three stages: PyAV decodes in its own thread (with FFmpeg's threads), batches of
consecutive frames are cropped, resized and normalised by the preprocessing spec in worker threads, and the
model runs on the previous batch meanwhile. Probabilities are smoothed over time (an exponential moving
average or a sliding window) and the shown class changes only past a hysteresis margin, so it does not
flicker. The content area (the endoscopic field) is found once per video; the annotated MP4 shows that area
alone, so no text burned into the border is ever copied, and the model sees the area only when its spec
says ``crop: content`` (training and inference share one geometry).
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import av
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from proctovision.core import fileio
from proctovision.imaging.content_area import ContentArea, ContentAreaError, find_content_area
from proctovision.core.errors import UserError

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


def open_source(source: str) -> av.container.InputContainer:
    """A video file, or a capture device: ``/dev/videoN`` (V4L2) or ``FORMAT:DEVICE`` (e.g. ``dshow:video=Cam``)."""
    try:
        if source.startswith("/dev/video"):
            return av.open(source, format="v4l2")
        if ":" in source and not Path(source).exists() and source.split(":", 1)[0] in ("v4l2", "dshow", "avfoundation"):
            kind, device = source.split(":", 1)
            return av.open(device, format=kind)
        if not Path(source).is_file():
            raise VideoError(f"{source}: no such video file or capture device")
        return av.open(source)
    except av.FFmpegError as error:
        raise VideoError(f"{source}: cannot open as video ({error})") from error


def decoded_frames(container: av.container.InputContainer, limit: int | None = None,
                   notes: list[str] | None = None, raw: bool = False) -> Iterator[tuple[float, Pixels]]:
    """``(seconds from start, RGB uint8 [H, W, 3])`` for every frame (with ``raw``, FFmpeg's frame itself, converted
    later and only to the sizes wanted); FFmpeg decodes with its own threads.

    A damaged stream ends at the damage, said in ``notes``: the frames before it are still classified."""
    if not container.streams.video:
        raise VideoError("the input has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    base = float(stream.time_base) if stream.time_base else None
    start = None
    count = 0
    try:
        for frame in container.decode(stream):
            if limit is not None and count >= limit:
                return
            if frame.pts is not None and base:
                start = frame.pts * base if start is None else start
                seconds = frame.pts * base - start
            else:
                seconds = count / float(stream.average_rate or 30)
            count += 1
            yield seconds, frame if raw else frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        if notes is None:
            raise VideoError(f"decoding stopped after {count} frame(s): {error}") from error
        notes.append(f"decoding stopped after {count} frame(s): {type(error).__name__}")


def stream_fps(container: av.container.InputContainer) -> float | None:
    rate = container.streams.video[0].average_rate if container.streams.video else None
    return float(rate) if rate else None


def rgb(pixels: Pixels) -> np.ndarray:
    """A frame as RGB uint8 ``[H, W, 3]`` at its full size."""
    return pixels.to_ndarray(format="rgb24") if isinstance(pixels, av.VideoFrame) else pixels


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


def content_area_of(frames: list[np.ndarray]) -> tuple[ContentArea | None, str | None]:
    try:
        return find_content_area(frames), None
    except ContentAreaError as error:
        return None, f"content area not found ({error}); the whole frame is shown"


class Annotator:
    """Writes the annotated MP4 in its own thread: content area only (rest black), class, bar, CAM overlay."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, classes: tuple[str, ...],
                 area: ContentArea | None, width: int, model_crops: bool = False) -> None:
        self.path, self.classes, self.area, self.model_crops = path, classes, area, model_crops
        scale = min(1.0, width / size[0])
        self.out_size = (int(size[0] * scale) // 2 * 2, int(size[1] * scale) // 2 * 2)
        self.font = ImageFont.load_default(size=18)
        self.queue: queue.Queue = queue.Queue(maxsize=64)
        self.fps = fps
        self.cam: np.ndarray | None = None
        self.error: BaseException | None = None
        self.scratch = path.with_name(f".{path.name}.partial.mp4")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, pixels: Pixels, row: FrameRow, cam_png: bytes | None = None) -> None:
        self.queue.put((pixels, row, cam_png))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            self.scratch.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: annotated video not written ({self.error})")
        self.scratch.replace(self.path)

    def abort(self) -> None:
        """Stop writing and remove the partial file: an earlier annotated.mp4 stays as it was."""
        self.error = self.error or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join()
        self.scratch.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            with av.open(str(self.scratch), mode="w", format="mp4") as box:
                stream = box.add_stream("libx264", rate=max(1, int(round(self.fps))))
                stream.width, stream.height = self.out_size[0], self.out_size[1] + PANEL_HEIGHT
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
                while (item := self.queue.get()) is not None:
                    picture = self.render(*item)
                    box.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
                box.mux(stream.encode())
        except BaseException as error:  # noqa: BLE001 - reported by close(), never lost
            self.error = error
            while self.queue.get() is not None:
                pass

    def render(self, pixels: Pixels, row: FrameRow, cam_png: bytes | None) -> np.ndarray:
        pixels = rgb(pixels)
        shown = self.area.black_outside(pixels) if self.area is not None else pixels
        if cam_png is not None:
            self.cam = self._cam_layer(cam_png, pixels.shape)
        if self.cam is not None:
            mixed = (0.5 * shown + 0.5 * self.cam).astype(np.uint8)
            shown = self.area.black_outside(mixed) if self.area is not None else mixed
        picture = Image.fromarray(shown).resize(self.out_size, Image.BILINEAR)
        canvas = Image.new("RGB", (self.out_size[0], self.out_size[1] + PANEL_HEIGHT), (0, 0, 0))
        canvas.paste(picture, (0, 0))
        self._panel(ImageDraw.Draw(canvas), row)
        return np.asarray(canvas)

    def _cam_layer(self, cam_png: bytes, shape: tuple[int, ...]) -> np.ndarray:
        import io

        overlay = Image.open(io.BytesIO(cam_png)).convert("RGB")
        layer = np.zeros(shape, dtype=np.uint8)
        if self.area is not None and self.model_crops:
            left, top, right, bottom = self.area.box
            layer[top:bottom, left:right] = np.asarray(overlay.resize((right - left, bottom - top)))
        else:
            layer[:] = np.asarray(overlay.resize((shape[1], shape[0])))
        return layer

    def _panel(self, draw: ImageDraw.ImageDraw, row: FrameRow) -> None:
        top = self.out_size[1]
        name = self.classes[row.shown]
        value = float(row.smoothed[row.shown])
        draw.text((10, top + 6), f"{name}  {value:.2f}   t={row.time_s:6.2f}s", fill=(255, 255, 255), font=self.font)
        width = self.out_size[0] - 20
        colour = (220, 60, 60) if row.shown else (60, 200, 90)
        draw.rectangle((10, top + 34, 10 + width, top + 48), outline=(120, 120, 120))
        draw.rectangle((10, top + 34, 10 + int(width * value), top + 48), fill=colour)


def run_file(predictor: object, source: str, out: Path | None, options: VideoOptions = VideoOptions(),
             progress: Callable[[int], None] | None = None) -> VideoResult:
    """Every frame of a video file, in batches of consecutive frames with decoding, preparation and inference
    overlapped."""
    container = open_source(source)
    result = VideoResult(classes=tuple(predictor.classes), source_fps=stream_fps(container),
                         backend=predictor.backend, ood_threshold=ood_threshold(predictor))
    frames = _threaded(decoded_frames(container, options.max_frames, result.errors, raw=True),
                       maxsize=4 * options.batch_size)
    head = list(islice(frames, AREA_FRAMES))
    if not head:
        raise VideoError(f"{source}: no decodable frame")
    area, note = content_area_of([rgb(pixels) for _, pixels in head])
    if note:
        result.errors.append(note)
    result.content_area = area
    model = FrameModel(predictor, area)
    smoother = Smoother(options.smoothing, options.alpha, options.window)
    hysteresis = Hysteresis(len(result.classes), predictor.threshold, options.margin)
    annotator = _annotator(out, head[0][1], result, options, model)
    start = time.perf_counter()
    batches = _batches(_chain(head, frames), options.batch_size)
    try:
        _classify_batches(batches, model, predictor, smoother, hysteresis, result, annotator, options, progress)
    except BaseException:
        if annotator is not None:
            annotator.abort()
        raise
    result.seconds = time.perf_counter() - start
    result.frames_seen = len(result.rows)
    container.close()
    if annotator is not None:
        annotator.close()
    if out is not None:
        write_outputs(result, out, options)
    return result


def _classify_batches(batches: Iterator[list], model: FrameModel, predictor: object, smoother: Smoother,
                      hysteresis: Hysteresis, result: VideoResult, annotator: Annotator | None,
                      options: VideoOptions, progress: Callable[[int], None] | None) -> None:
    """Prepare up to ``prep_threads`` + 1 batches ahead in threads while the model runs on the current one."""
    pending: deque[tuple[list, Future]] = deque()
    with ThreadPoolExecutor(max_workers=options.prep_threads) as pool:
        def submit() -> bool:
            batch = next(batches, None)
            if batch is None:
                return False
            pending.append((batch, pool.submit(model.batch, [pixels for _, pixels in batch])))
            return True

        while len(pending) < options.prep_threads + 1 and submit():
            pass
        while pending:
            batch, future = pending.popleft()
            arrays = future.result()
            submit()
            began = time.perf_counter()
            probabilities, scores = model.outputs(arrays)
            spent = (time.perf_counter() - began) / max(len(batch), 1)
            for position, ((seconds, pixels), row) in enumerate(zip(batch, probabilities)):
                smoothed = smoother.update(row)
                frame_row = FrameRow(len(result.rows), seconds, row, smoothed, hysteresis.update(smoothed),
                                     ood_score=None if scores is None else float(scores[position]))
                result.rows.append(frame_row)
                audit_frame(options, predictor, arrays[position], frame_row, result.classes, spent)
                if annotator is not None:
                    annotator.add(pixels, frame_row, _cam(predictor, model, pixels, frame_row, options))
            if progress:
                progress(len(result.rows))


def run_live(predictor: object, source: str, out: Path | None, options: VideoOptions = VideoOptions(),
             pace: bool | None = None, stop: threading.Event | None = None) -> VideoResult:
    """A live source: a capture thread keeps only the newest frame; the model takes it when ready. A frame
    replaced before the model took it is dropped and counted. A file given here is played at its own frame
    rate (``pace``), as a camera would deliver it."""
    container = open_source(source)
    pace = (not source.startswith("/dev/") and Path(source).is_file()) if pace is None else pace
    result = VideoResult(classes=tuple(predictor.classes), source_fps=stream_fps(container),
                         backend=predictor.backend, ood_threshold=ood_threshold(predictor))
    frames = decoded_frames(container, options.max_frames, result.errors, raw=True)
    head = list(islice(frames, 1))
    if not head:
        raise VideoError(f"{source}: no frame from the source")
    area, note = content_area_of([rgb(head[0][1])])
    if note:
        result.errors.append(note)
    result.content_area = area
    model = FrameModel(predictor, area)
    model.probabilities(model.batch([head[0][1]]))
    smoother = Smoother(options.smoothing, options.alpha, options.window)
    hysteresis = Hysteresis(len(result.classes), predictor.threshold, options.margin)
    annotator = _annotator(out, head[0][1], result, options, model)
    latest = LatestFrame()
    stop = stop or threading.Event()
    capture = threading.Thread(target=_capture, args=(_chain(head, frames), latest, pace, stop), daemon=True)
    start = time.perf_counter()
    capture.start()
    try:
        while (item := latest.take()) is not None:
            seconds, pixels, arrived = item
            array = model.batch([pixels])
            probabilities, scores = model.outputs(array)
            row = probabilities[0]
            smoothed = smoother.update(row)
            frame_row = FrameRow(len(result.rows), seconds, row, smoothed, hysteresis.update(smoothed),
                                 time.perf_counter() - arrived, None if scores is None else float(scores[0]))
            result.rows.append(frame_row)
            audit_frame(options, predictor, array[0], frame_row, result.classes, frame_row.latency_s)
            if annotator is not None:
                annotator.add(pixels, frame_row, _cam(predictor, model, pixels, frame_row, options))
    except KeyboardInterrupt:
        result.errors.append("stopped by the user")
    stop.set()
    capture.join(timeout=5)
    result.seconds = time.perf_counter() - start
    result.frames_seen, result.dropped = latest.arrived, latest.dropped
    container.close()
    if annotator is not None:
        annotator.close()
    if out is not None:
        write_outputs(result, out, replace(options, live=True))
    return result


class LatestFrame:
    """A one-slot mailbox: the capture side overwrites, the model side takes; overwritten frames are dropped."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.item: tuple | None = None
        self.finished = False
        self.arrived = 0
        self.dropped = 0

    def put(self, item: tuple) -> None:
        with self.condition:
            self.arrived += 1
            if self.item is not None:
                self.dropped += 1
            self.item = item
            self.condition.notify()

    def finish(self) -> None:
        with self.condition:
            self.finished = True
            self.condition.notify()

    def take(self) -> tuple | None:
        with self.condition:
            while self.item is None and not self.finished:
                self.condition.wait()
            item, self.item = self.item, None
            return item


def _capture(frames: Iterator[tuple[float, np.ndarray]], latest: LatestFrame, pace: bool,
             stop: threading.Event | None) -> None:
    start = time.perf_counter()
    try:
        for seconds, pixels in frames:
            if stop is not None and stop.is_set():
                break
            if pace:
                delay = start + seconds - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            latest.put((seconds, pixels, time.perf_counter()))
    finally:
        latest.finish()


def _cam(predictor: object, model: FrameModel, pixels: Pixels, row: FrameRow,
         options: VideoOptions) -> bytes | None:
    if options.cam_every <= 0 or row.index % options.cam_every:
        return None
    return predictor.heatmap_png(Image.fromarray(rgb(pixels)), row.shown)


def _annotator(out: Path | None, first: Pixels, result: VideoResult, options: VideoOptions,
               model: FrameModel) -> Annotator | None:
    if out is None or not options.annotate:
        return None
    out.mkdir(parents=True, exist_ok=True)
    first = rgb(first)
    size = (first.shape[1], first.shape[0])
    return Annotator(out / "annotated.mp4", size, result.source_fps or 30.0, result.classes, result.content_area,
                     options.annotate_width, model.spec.crop == "content")


def _threaded(items: Iterator, maxsize: int) -> Iterator:
    """Run an iterator in a thread, ahead of its consumer by up to ``maxsize`` items; errors re-raised here."""
    box: queue.Queue = queue.Queue(maxsize=maxsize)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                box.put(item)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            box.put(error)
        box.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := box.get()) is not done:
        if isinstance(item, BaseException):
            raise VideoError(f"decoding stopped: {item}") from item
        yield item


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def segments(result: VideoResult) -> pd.DataFrame:
    """Runs of the shown class: start/end (seconds, frames), class and the peak smoothed and raw probability."""
    rows, current = [], None
    step = 1.0 / result.source_fps if result.source_fps else 0.0
    for row in result.rows:
        if current is None or row.shown != current["class_index"]:
            if current is not None:
                rows.append(current)
            current = {"class_index": row.shown, "start_s": row.time_s, "start_frame": row.index, "peak": 0.0,
                       "peak_raw": 0.0}
        current.update(end_s=row.time_s + step, end_frame=row.index,
                       peak=max(current["peak"], float(row.smoothed[row.shown])),
                       peak_raw=max(current["peak_raw"], float(row.probabilities[row.shown])))
    if current is not None:
        rows.append(current)
    return pd.DataFrame([{
        "start_s": round(item["start_s"], 3), "end_s": round(item["end_s"], 3), "start_frame": item["start_frame"],
        "end_frame": item["end_frame"], "class": result.classes[item["class_index"]],
        "peak_probability": round(item["peak"], 4), "peak_raw_probability": round(item["peak_raw"], 4)}
        for item in rows], columns=["start_s", "end_s", "start_frame", "end_frame", "class", "peak_probability",
                                    "peak_raw_probability"])


def frames_table(result: VideoResult) -> pd.DataFrame:
    table = {"frame": [row.index for row in result.rows], "time_s": [round(row.time_s, 4) for row in result.rows]}
    for position, name in enumerate(result.classes):
        table[f"prob_{name}"] = [round(float(row.probabilities[position]), 6) for row in result.rows]
        table[f"smoothed_{name}"] = [round(float(row.smoothed[position]), 6) for row in result.rows]
    table["shown"] = [result.classes[row.shown] for row in result.rows]
    if result.ood_threshold is not None:
        table["ood_score"] = [None if row.ood_score is None else round(row.ood_score, 4) for row in result.rows]
        table["in_distribution"] = [None if row.ood_score is None else bool(row.ood_score <= result.ood_threshold)
                                    for row in result.rows]
    if any(row.latency_s is not None for row in result.rows):
        table["latency_ms"] = [round(row.latency_s * 1000, 2) if row.latency_s is not None else None
                               for row in result.rows]
    return pd.DataFrame(table)


def summary(result: VideoResult, options: VideoOptions | None = None) -> dict:
    """Frames seen, processed and dropped, rates, latency (live), and the content area found."""
    data = {
        "mode": "live" if options and options.live else "file", "backend": result.backend,
        "frames_seen": result.frames_seen, "frames_processed": len(result.rows), "frames_dropped": result.dropped,
        "seconds": round(result.seconds, 3), "fps_achieved": round(result.fps, 2),
        "source_fps": round(result.source_fps, 3) if result.source_fps else None,
        "latency_ms_p50": _round(result.latency_ms(50)), "latency_ms_p95": _round(result.latency_ms(95)),
        "content_area": result.content_area.to_dict() if result.content_area is not None else None,
        "ood_threshold": result.ood_threshold,
        "frames_out_of_distribution": None if result.ood_threshold is None else sum(
            1 for row in result.rows if row.ood_score is not None and row.ood_score > result.ood_threshold),
        "notes": result.errors,
    }
    if options is not None:
        data["smoothing"] = {"method": options.smoothing, "alpha": options.alpha, "window": options.window,
                             "hysteresis_margin": options.margin}
    return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def write_outputs(result: VideoResult, out: Path, options: VideoOptions | None = None) -> dict[str, Path]:
    """frames.csv, segments.csv/json and summary.json, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    table = segments(result)
    paths = {"frames": fileio.write_csv(out / "frames.csv", frames_table(result)),
             "segments_csv": fileio.write_csv(out / "segments.csv", table),
             "segments_json": fileio.write_json(out / "segments.json", table.to_dict(orient="records")),
             "summary": fileio.write_json(out / "summary.json", summary(result, options))}
    return paths
