"""Prediction: files, folders and PACS studies, and video files or live sources."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.common import ModelArgument, console, error_console, fail, progress_bar

app = typer.Typer()


@app.command()
def predict(
    model: ModelArgument,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="image or DICOM files, or folders")] = None,
    out: Annotated[Path, typer.Option(help="predictions .csv or .json")] = Path("predictions.csv"),
    batch_size: int = 16,
    heatmaps: Annotated[Optional[Path], typer.Option(help="also write a Grad-CAM overlay PNG per image here")] = None,
    dicomweb: Annotated[Optional[str], typer.Option(help="DICOMweb root URL of a PACS (auth: "
                                                    "PROCTOVISION_DICOMWEB_USER/PASSWORD or _TOKEN)")] = None,
    study: Annotated[Optional[str], typer.Option(help="with --dicomweb: the StudyInstanceUID to predict")] = None,
    push: Annotated[bool, typer.Option(help="with --dicomweb: store an SR and Grad-CAM overlays in the study")] = False,
    audit_log: Annotated[Optional[Path], typer.Option(help="with --dicomweb: append one JSON line per answer here")]
    = None,
    monitor: Annotated[Optional[Path], typer.Option(help="record every answer in this monitoring folder (adds a "
                                                    "prediction_id column)")] = None,
) -> None:
    """Predict class probabilities for files and folders; unreadable files are listed, the rest go on.

    Example: proctovision predict runs/r18 new_images/ --out predictions.csv
             proctovision predict runs/r18 --dicomweb http://pacs:8042/dicom-web --study 1.2.3.4 --push
    """
    from proctovision.inference.predictor import expand_paths, load_predictor
    from proctovision.workflows.predict import prediction_rows, record_rows, write_heatmaps, write_predictions

    if dicomweb or study or push:
        if heatmaps is not None or paths:
            fail("--dicomweb predicts a study: give no paths and no --heatmaps (--push stores the overlays)")
        return predict_dicomweb(model, dicomweb, study, push, out, batch_size, audit_log)
    if audit_log is not None:
        fail("--audit-log records answers given to clinicians: it goes with --dicomweb (and serve)")
    if not paths:
        fail("give image files or folders to predict, or --dicomweb URL --study UID")
    watcher = open_monitor(monitor, model)
    predictor = load_predictor(model)
    with console.status("Predicting"):
        batch = predictor.predict_files(expand_paths(paths), batch_size=batch_size)
    rows = prediction_rows(batch.predictions)
    if watcher is not None:
        rows = record_rows(watcher, batch, rows)
    write_predictions(out, predictor.classes, rows, batch.errors)
    outside = sum(1 for row in rows if row["in_distribution"] is False)
    if outside:
        error_console.print(f"[yellow]{outside} image(s) do not look like the training images "
                            "(in_distribution false): do not read their class as a finding[/]")
    for path, reason in batch.errors:
        error_console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
    if heatmaps is not None:
        if write_heatmaps(predictor, batch.predictions, heatmaps):
            console.print(f"heatmaps: {heatmaps}")
        else:
            error_console.print("[yellow]heatmaps need a run folder (PyTorch); an ONNX export has none[/]")
    console.print(f"{len(rows)} image(s) predicted at {batch.images_per_s:.1f} images/s; "
                  f"{len(batch.errors)} skipped\npredictions: {out}")
    if not rows:
        fail("no image could be predicted")


def open_monitor(folder: Path | None, model: Path) -> object | None:
    """The monitoring folder, opened and checked against the model before any work starts."""
    if folder is None:
        return None
    from proctovision.monitoring.folder import open_folder

    watcher = open_folder(folder)
    watcher.check_model_folder(model)
    return watcher


def predict_dicomweb(model: Path, url: str | None, study: str | None, push: bool, out: Path,
                     batch_size: int, audit_log: Path | None = None) -> None:
    from proctovision.inference.predictor import load_predictor
    from proctovision.serving.dicomweb import connect
    from proctovision.serving.pacs import predict_study
    from proctovision.workflows.predict import write_predictions

    if not (url and study):
        fail("--dicomweb URL and --study UID go together (--push needs both)")
    predictor = load_predictor(model)
    audit = None
    if audit_log:
        from proctovision.serving.audit import AuditLog, model_identity

        audit = AuditLog(audit_log, model_identity(predictor))
    with console.status("Retrieving and predicting the study"):
        result = predict_study(connect(url), predictor, study, push=push, batch_size=batch_size, audit=audit)
    rows = result.rows(predictor.classes, predictor.threshold)
    write_predictions(out, predictor.classes, rows, result.skipped, guarded=False)
    for name, reason in result.skipped:
        error_console.print(f"[yellow]skipped[/] instance {name}: {reason}", soft_wrap=True)
    console.print(f"{len(rows)} image(s) predicted in {result.seconds:.1f} s; {len(result.skipped)} skipped\n"
                  f"predictions: {out}")
    if result.sr_uid:
        console.print(f"stored in the study: 1 SR and {result.n_secondary_captures} Grad-CAM overlay(s)")
    if not rows:
        fail("the study holds no image that could be predicted")


@app.command()
def video(
    model: ModelArgument,
    source: Annotated[str, typer.Argument(metavar="INPUT", help="video file (MP4, AVI, MKV, MOV) or capture device "
                                          "(/dev/video0, v4l2:/dev/video1, dshow:video=NAME)")],
    out: Annotated[Path, typer.Option(help="folder for frames.csv, segments.csv/json, summary.json, annotated.mp4")],
    live: Annotated[bool, typer.Option(help="live: take the newest frame, drop (and count) what the model misses; "
                                       "a file is played at its own frame rate")] = False,
    smoothing: Annotated[str, typer.Option(help="ema | window")] = "ema",
    alpha: Annotated[float, typer.Option(help="EMA weight of the newest frame")] = 0.3,
    window: Annotated[int, typer.Option(help="sliding-window length in frames")] = 9,
    margin: Annotated[float, typer.Option(help="hysteresis: how far past the threshold the shown class changes")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="consecutive frames per model call (file mode)")] = 16,
    cam_every: Annotated[int, typer.Option(help="Grad-CAM overlay every Nth frame (run folders; 0 = none)")] = 0,
    annotate: Annotated[bool, typer.Option(help="write annotated.mp4 (content area only, class, bar)")] = True,
    annotate_width: Annotated[int, typer.Option(help="width of annotated.mp4 in pixels")] = 640,
    backend: Annotated[str, typer.Option(help="auto | onnx | torch")] = "auto",
    max_frames: Annotated[Optional[int], typer.Option(help="stop after this many frames from the source")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the outputs of an earlier run in --out")] = False,
    monitor: Annotated[Optional[Path], typer.Option(metavar="DIR", help="record the video in this monitoring folder: "
                                                    "one answer per second and one per procedure")] = None,
    audit_log: Annotated[Optional[Path], typer.Option(help="append one JSON line per classified frame (no image, "
                                                      "no file name), rotated by size")] = None,
) -> None:
    """Classify a video file or a live source frame by frame: smoothed probabilities, a flicker-free class,
    segments, and an annotated MP4 that shows only the endoscopic field (burned-in border text never copied).

    Example: proctovision video deploy/lite0 colonoscopy.mp4 --out video_out/
             proctovision video deploy/lite0 /dev/video0 --live --out live_out/
    """
    from proctovision.inference.predictor import load_predictor
    from proctovision.inference.video import VideoOptions, run_file, run_live, segments, summary

    if (out / "summary.json").exists() and not overwrite:
        fail(f"{out} holds an earlier video result; pass --overwrite or choose another --out")
    options = VideoOptions(smoothing=smoothing, alpha=alpha, window=window, margin=margin, batch_size=batch_size,
                           cam_every=cam_every, annotate=annotate, annotate_width=annotate_width, live=live,
                           max_frames=max_frames)
    watcher = open_monitor(monitor, model)
    predictor = load_predictor(model, backend)
    if audit_log is not None:
        from proctovision.serving.audit import AuditLog, model_identity

        options.audit = AuditLog(audit_log, model_identity(predictor))
    if cam_every and predictor.backend != "pytorch":
        fail("--cam-every needs a run folder (PyTorch); an ONNX export has no gradients")
    if live:
        console.print("live: press Ctrl-C to stop; the outputs are written then")
        result = run_live(predictor, source, out, options)
    else:
        with progress_bar("Frames") as update:
            result = run_file(predictor, source, out, options, progress=lambda done: update(done, None))
    info = summary(result, options)
    if watcher is not None:
        from proctovision.inference.recording import video_answers

        with watcher:
            recorder = watcher.recorder("video", watcher.model_sha256)
            recorded = recorder.record(video_answers(result, predictor.decide))
            recorder.close()
        console.print(f"monitoring: {len(recorded)} answer(s) recorded (per second and per procedure)")
    for note in result.errors:
        error_console.print(f"[yellow]note[/] {note}", soft_wrap=True)
    shown = segments(result)
    console.print(f"{info['frames_processed']} of {info['frames_seen']} frame(s) classified at "
                  f"{info['fps_achieved']:.1f} frames/s ({result.backend}); {info['frames_dropped']} dropped; "
                  f"{len(shown)} segment(s)" + (f"; latency p95 {info['latency_ms_p95']:.1f} ms" if live else ""))
    if info["frames_out_of_distribution"]:
        error_console.print(f"[yellow]warning[/] {info['frames_out_of_distribution']} frame(s) do not look like the "
                            "images the model was trained on (frames.csv: in_distribution)", soft_wrap=True)
    console.print(f"outputs: {out}")
