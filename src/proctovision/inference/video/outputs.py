"""What a video run leaves: frames.csv, the segments of one shown class, summary.json, written atomically."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from proctovision.core import fileio
from proctovision.inference.video.options import VideoOptions, VideoResult


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
