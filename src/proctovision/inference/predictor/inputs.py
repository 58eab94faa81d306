"""Inputs keyed by ``(path, frame)``: files and folders expanded to every frame, decoded by the preprocessing
spec in low-priority threads ahead of the model, and a reason in place of every input that cannot be read."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.imaging.content_area import ContentAreaError
from proctovision.imaging.images import ImageReadError, is_candidate_file, looks_like_dicom, read_image
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.imaging.quality import MEASURE_WIDTH, assess_quality

Progress = Callable[[int, int], None]


InputKey = tuple[str, "int | None"]


def load_input(key: InputKey, spec: Preprocessing) -> np.ndarray | str:
    """One input as the model's array, or the reason it cannot be read (decoding threads return, never raise)."""
    path, frame = key
    return or_reason(lambda: spec.to_array(read_image(path, frame=frame, window=spec.window,
                                                      min_size=spec.input_size)))


def load_checked_input(key: InputKey, spec: Preprocessing) -> tuple[np.ndarray, dict] | str:
    """One input as the model's array with its image-quality measures (taken before the resize), or the reason."""
    def read() -> tuple[np.ndarray, dict]:
        image = read_checked_image(key, spec)
        return spec.to_array(image), assess_quality(image).to_dict()

    return or_reason(read)


NO_CONTENT_AREA = ("The frame is too dark: no lit endoscopic field was found in it, so the model did not judge it "
                   "and no class is shown.")


def checked_array(image: Image.Image, spec: Preprocessing) -> tuple[np.ndarray | None, dict]:
    """The model's input and the image-quality measures; no input (None) for a frame in which a content-cropping
    model finds no content area: that is an answer (too dark, no class), not a failure."""
    quality = assess_quality(image).to_dict()
    try:
        return spec.to_array(image), quality
    except ContentAreaError:
        return None, {**quality, "too_dark": True, "content_area": False}


def read_checked_image(key: InputKey, spec: Preprocessing) -> Image.Image:
    """An input decoded for the model and for the quality measures: JPEG scaled down no further than the
    larger of the model's input size and the quality measures' width."""
    path, frame = key
    return read_image(path, frame=frame, window=spec.window, min_size=max(spec.input_size, MEASURE_WIDTH))


def or_reason(read: Callable[[], object]) -> object:
    """What ``read`` returns, or the reason it failed: one broken file must not stop the batch."""
    try:
        return read()
    except ImageReadError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - reported as the file's reason
        return f"unreadable ({type(error).__name__}: {error})"


def decoded(keys: Sequence[InputKey], spec: Preprocessing, workers: int,
            loader: Callable = load_input) -> Iterator[np.ndarray | tuple | str]:
    """Arrays (or reasons) in input order; with ``workers`` > 0 decoding runs ahead in threads.

    Threads, not processes: Pillow's decoders and resize and numpy release the GIL, so threads decode in parallel
    with each other and with ONNX Runtime, while a process pool's pickling of each array cost more than the
    decode itself (1280x1024 JPEG to 224 px on 2 cores: 279 images/s through one worker process, 415 in the
    calling thread, 676 in two threads)."""
    if workers <= 0:
        yield from (loader(key, spec) for key in keys)
        return
    ahead = max(64, workers * 32)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode", initializer=yield_to_inference) as pool:
        pending: deque[Future] = deque()
        queue = iter(keys)
        _fill(pool, pending, queue, spec, ahead, loader)
        while pending:
            result = pending.popleft().result()
            _fill(pool, pending, queue, spec, ahead, loader)
            yield result


def yield_to_inference() -> None:
    """Decoding threads at the lowest priority fill the gaps of the model's parallel operations instead of
    stalling one of its threads (every thread of an operation waits for the slowest); when they fall behind,
    inference waits for inputs and they get the cores. Measured on 2 cores: files → probabilities 128 → 134
    images/s. Linux sets niceness per thread; elsewhere this does nothing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _fill(pool: Executor, pending: deque, queue: Iterator[InputKey], spec: Preprocessing, ahead: int,
          loader: Callable = load_input) -> None:
    while len(pending) < ahead:
        key = next(queue, None)
        if key is None:
            return
        pending.append(pool.submit(loader, key, spec))


def auto_workers(n_inputs: int) -> int:
    """Decoding threads pay off past a few dozen inputs; one core stays for inference."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n_inputs < 48 or cores < 2 else min(4, cores - 1)


def expand_paths(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively for image and DICOM files, in sorted order."""
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            yield from (path for path in sorted(item.rglob("*")) if path.is_file() and is_candidate_file(path))
        else:
            yield item


def dicom_frame_count(path: Path) -> int:
    """Frames in a DICOM file, from its header alone (1 for single-frame files), within the pixel budget."""
    from proctovision.imaging import dicom

    opened = dicom.open_dicom(path, pixels=False)
    dicom.declared_values(opened)
    return max(1, dicom.frame_count(opened.dataset))


def row_keys(rows: "pd.DataFrame") -> list[InputKey]:  # noqa: F821
    """``(path, frame)`` of each manifest row; an empty or missing frame (single-frame files) is None."""
    frames = rows["frame"] if "frame" in rows.columns else [None] * len(rows)
    return [(str(path), None if frame is None or str(frame).strip() in ("", "<NA>", "nan", "None")
             or frame != frame else int(float(frame))) for path, frame in zip(rows["path"], frames)]


def expand_frames(paths: Iterable[Path]) -> tuple[list[InputKey], list[tuple[str, str]]]:
    """One key per image, one per frame of a multi-frame DICOM file; files that cannot say are errors."""
    keys: list[InputKey] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        path = Path(path)
        if not path.is_file() or not looks_like_dicom(path):
            keys.append((str(path), None))
            continue
        try:
            count = dicom_frame_count(path)
        except ImageReadError as error:
            errors.append((str(path), error.reason))
            continue
        except Exception as error:  # noqa: BLE001 - report the file, go on with the rest
            errors.append((str(path), f"unreadable DICOM header ({type(error).__name__})"))
            continue
        keys.extend((str(path), frame if count > 1 else None) for frame in range(count))
    return keys, errors
