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

from proctovision.inference.video.annotate import Annotator
from proctovision.inference.video.model import FrameModel, audit_frame, ood_threshold
from proctovision.inference.video.options import (
    AREA_FRAMES,
    PANEL_HEIGHT,
    FrameRow,
    Hysteresis,
    Pixels,
    Smoother,
    VideoError,
    VideoOptions,
    VideoResult,
)
from proctovision.inference.video.outputs import frames_table, segments, summary, write_outputs
from proctovision.inference.video.run import run_file, run_live
from proctovision.inference.video.source import (
    LatestFrame,
    content_area_of,
    decoded_frames,
    open_source,
    rgb,
    stream_fps,
)

__all__ = ["AREA_FRAMES", "Annotator", "FrameModel", "FrameRow", "Hysteresis", "LatestFrame", "PANEL_HEIGHT", "Pixels", "Smoother", "VideoError", "VideoOptions", "VideoResult", "audit_frame", "content_area_of", "decoded_frames", "frames_table", "ood_threshold", "open_source", "rgb", "run_file", "run_live", "segments", "stream_fps", "summary", "write_outputs"]
