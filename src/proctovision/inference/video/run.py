"""File mode (every frame, decoding, preparation and the model overlapped) and live mode (the newest frame;
frames the model cannot keep up with are dropped and counted)."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import islice
from pathlib import Path

from PIL import Image

from proctovision.inference.video.annotate import Annotator, annotator_for
from proctovision.inference.video.model import FrameModel, audit_frame, ood_threshold
from proctovision.inference.video.options import (
    AREA_FRAMES,
    FrameRow,
    Hysteresis,
    Pixels,
    Smoother,
    VideoError,
    VideoOptions,
    VideoResult,
)
from proctovision.inference.video.outputs import write_outputs
from proctovision.inference.video.source import (
    LatestFrame,
    capture_latest,
    chain,
    content_area_of,
    decoded_frames,
    in_batches,
    open_source,
    rgb,
    stream_fps,
    threaded,
)


def run_file(predictor: object, source: str, out: Path | None, options: VideoOptions = VideoOptions(),
             progress: Callable[[int], None] | None = None) -> VideoResult:
    """Every frame of a video file, in batches of consecutive frames with decoding, preparation and inference
    overlapped."""
    container = open_source(source)
    result = VideoResult(classes=tuple(predictor.classes), source_fps=stream_fps(container),
                         backend=predictor.backend, ood_threshold=ood_threshold(predictor))
    frames = threaded(decoded_frames(container, options.max_frames, result.errors, raw=True),
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
    annotator = annotator_for(out, head[0][1], result, options, model)
    start = time.perf_counter()
    batches = in_batches(chain(head, frames), options.batch_size)
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
    annotator = annotator_for(out, head[0][1], result, options, model)
    latest = LatestFrame()
    stop = stop or threading.Event()
    capture = threading.Thread(target=capture_latest, args=(chain(head, frames), latest, pace, stop), daemon=True)
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


def _cam(predictor: object, model: FrameModel, pixels: Pixels, row: FrameRow,
         options: VideoOptions) -> bytes | None:
    if options.cam_every <= 0 or row.index % options.cam_every:
        return None
    return predictor.heatmap_png(Image.fromarray(rgb(pixels)), row.shown)
