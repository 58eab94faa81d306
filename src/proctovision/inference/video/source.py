"""Frames in: a file or a capture device opened through PyAV, decoded (scaled down by FFmpeg where the model
allows), the content area found once, the newest frame kept for live reading, and the thread helpers that overlap
decoding with the model."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from proctovision.imaging.budget import PixelBudgetError, check_budget
from proctovision.imaging.content_area import ContentArea, ContentAreaError, find_content_area
from proctovision.inference.video.options import Pixels, VideoError


def open_source(source: str) -> av.container.InputContainer:
    """A video file, or a capture device: ``/dev/videoN`` (V4L2) or ``FORMAT:DEVICE`` (e.g. ``dshow:video=Cam``),
    whose frames are within the pixel budget that stills have (each frame is decoded by itself)."""
    container = _open(source)
    if container.streams.video:
        context = container.streams.video[0].codec_context
        try:
            check_budget(source, context.width, context.height, 1, 3)
        except PixelBudgetError as error:
            container.close()
            raise VideoError(str(error)) from None
    return container


def _open(source: str) -> av.container.InputContainer:
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


def content_area_of(frames: list[np.ndarray]) -> tuple[ContentArea | None, str | None]:
    try:
        return find_content_area(frames), None
    except ContentAreaError as error:
        return None, f"content area not found ({error}); the whole frame is shown"


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


def capture_latest(frames: Iterator[tuple[float, np.ndarray]], latest: LatestFrame, pace: bool,
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


def threaded(items: Iterator, maxsize: int) -> Iterator:
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


def chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def in_batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
