"""Monitoring after go-live, in one run: detection delays of three shifts, false alarms per 10,000
in-distribution answers, serving throughput with and without --monitor, live video at 30 frames/s with monitoring,
and the time of `monitor status` and `monitor report` over many recorded answers.

Model: a demo run (`proctovision demo`, or --model RUN for one already made; without it a reduced demo is trained).
Images: the demo's synthetic generator. Each model answer is computed once per image and variant (as is, (a) a
colour cast with a brightness change as another video processor gives, (b) a quarter resolution with JPEG quality
15); streams of answers are then drawn from these pools, 20 seeds per shift, and run through the monitoring folder's
own charts and window tests (monitoring.signals, the code `refresh_alarms` runs):

* (a) and (b): in distribution for --before answers, then every answer from the shifted pool;
* (c) prevalence of hemorrhoid from 25% to 60% (the folder's reference class mix re-weighted to the clinic's 25%,
  as a site that knows its referral mix sets it).

Targets: (a), (b) detected within 100 answers (median), (c) within 500; at most 1 false alarm per 10,000;
throughput with --monitor / without >= 0.97; live: no frame dropped, p95 latency within 2 ms; status <= 10 s and
report <= 60 s over 1,000,000 answers on 2 cores.

Usage: python benchmarks/monitoring.py [--model RUN] [--seeds 20] [--in-distribution 100000] [--answers 1000000]
       [--requests 200] [--video-seconds 10] [--shifts-only [--signals PREFIX] [--pools DIR]]
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision.monitoring import signals
from proctovision.monitoring.appearance import appearance_columns
from proctovision.monitoring.folder import init_folder, open_folder

COLUMNS = ("decision", "score", "ood_score", "out_of_distribution", "too_dark", "overexposed", "blurred",
           "appearance_red", "appearance_green", "appearance_blue")


def demo_model(work: Path, model: Path | None) -> Path:
    if model is not None:
        return model
    from proctovision.demo.pipeline import run_demo

    return run_demo(work / "demo", epochs=3, patients=24, images_per_patient=3)["paths"]["run"]


def variants(source: Path, out: Path) -> dict[str, list[Path]]:
    """Every generated image as is, with a processor's colour cast (a) and at low resolution and quality (b)."""
    pools: dict[str, list[Path]] = {"in": [], "a": [], "b": []}
    for path in sorted(source.glob("images/*.jpg")):
        image = Image.open(path).convert("RGB")
        cast = np.clip(np.asarray(image, dtype=np.float32) * np.array([1.25, 0.95, 0.75]) * 1.3, 0, 255)
        small = image.resize((image.width // 4, image.height // 4)).resize(image.size)
        for name, picture, quality in (("in", image, 90), ("a", Image.fromarray(cast.astype(np.uint8)), 90),
                                       ("b", small, 15)):
            target = out / name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            picture.save(target, quality=quality)
            pools[name].append(target)
    return pools


def pool_answers(predictor: object, paths: list[Path], classes: list[str]) -> pd.DataFrame:
    batch = predictor.predict_files(paths, batch_size=16)
    rows = []
    for item in batch.predictions:
        guard, quality = item.guard or {}, (item.guard or {}).get("quality") or {}
        rows.append({"decision": item.predicted, "score": item.probabilities[classes[1]],
                     "ood_score": guard.get("ood_score"), "out_of_distribution": guard.get("in_distribution") is False,
                     **{flag: bool(quality.get(flag)) for flag in ("too_dark", "overexposed", "blurred")},
                     **appearance_columns(quality)})
    return pd.DataFrame(rows)


def only(design: dict, prefix: str | None) -> dict:
    """The design restricted to the charts whose names start with ``prefix`` (no window completes), or as it is."""
    if not prefix:
        return design
    return {**design, "charts": {name: spec for name, spec in design["charts"].items() if name.startswith(prefix)},
            "window": 10**9}  # no window completes: the window tests stay silent


def first_alarm(stream: pd.DataFrame, design: dict, reference: dict) -> int | None:
    """The answer (1-based) at which any chart or window test first crosses, or None."""
    hits = []
    for name in design["charts"]:
        chart = signals.advance_chart(name, 0.0, stream, design, reference)
        if chart["first"] is not None:
            hits.append(chart["first"] + 1)
    for window in signals.window_tests(stream.reset_index(drop=True), design, reference):
        if window["crossed"]:
            hits.append(window["stop"])
            break
    return min(hits) if hits else None


def count_alarms(stream: pd.DataFrame, design: dict, reference: dict) -> dict[str, int]:
    """Alarms per signal over a long stream, each acknowledged at once (its chart restarts after it)."""
    alarms = {name: 0 for name in [*design["charts"], *design["windows"]]}
    for name in design["charts"]:
        start = 0
        while start < len(stream):
            chart = signals.advance_chart(name, 0.0, stream.iloc[start:].reset_index(drop=True), design, reference)
            if chart["first"] is None:
                break
            alarms[name], start = alarms[name] + 1, start + chart["first"] + 1
    for window in signals.window_tests(stream, design, reference):
        for name in window["crossed"]:
            alarms[name] += 1
    return alarms


def draw(pool: pd.DataFrame, n: int, rng: np.random.Generator, prevalence: float | None, positive: str) -> pd.DataFrame:
    if prevalence is None:
        return pool.iloc[rng.integers(0, len(pool), n)]
    sick, well = pool[pool["truth"] == positive].index, pool[pool["truth"] != positive].index
    chosen = rng.random(n) < prevalence
    picks = rng.integers(0, np.where(chosen, len(sick), len(well)))  # the same draws as one row at a time
    return pool.loc[np.where(chosen, sick[np.minimum(picks, len(sick) - 1)], well[np.minimum(picks, len(well) - 1)])]


def shift_figures(monitor: object, pools: dict[str, pd.DataFrame], seeds: int, before: int, after: int,
                  in_distribution: int) -> dict:
    design, reference, classes = monitor.design, monitor.reference, monitor.classes
    out = {}
    for shift in ("a", "b", "c"):
        delays = []
        ref = reference
        if shift == "c":
            # the site states its referral mix: known shares (n None), not a sample of validation answers
            ref = {**reference, "class_mix": clinic_mix(pools["in"], classes, 0.25), "n": None}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            if shift == "c":
                stream = pd.concat([draw(pools["in"], before, rng, 0.25, classes[1]),
                                    draw(pools["in"], after, rng, 0.60, classes[1])])
            else:
                stream = pd.concat([draw(pools["in"], before, rng, None, classes[1]),
                                    draw(pools[shift], after, rng, None, classes[1])])
            hit = first_alarm(stream.reset_index(drop=True), design, ref)
            delays.append(np.inf if hit is None else hit - before)
        early = sum(1 for delay in delays if delay <= 0)
        late = [delay for delay in delays if 0 < delay < np.inf]
        out[shift] = {"median": float(np.median(late)) if late else None,
                      "p90": float(np.percentile(late, 90)) if late else None, "alarm_before_shift": early,
                      "not_detected": sum(1 for delay in delays if delay == np.inf)}
    rng = np.random.default_rng(1234)
    stream = draw(pools["in"], in_distribution, rng, None, classes[1]).reset_index(drop=True)
    alarms = count_alarms(stream, design, reference)
    out["false_alarms_per_10000"] = sum(alarms.values()) / in_distribution * 10_000
    out["false_alarms_by_signal"] = {name: count for name, count in alarms.items() if count}
    return out


def clinic_mix(pool: pd.DataFrame, classes: list[str], prevalence: float) -> dict:
    """The predicted-class mix expected at a given prevalence, from the model's answers per true class."""
    sick = (pool[pool["truth"] == classes[1]]["decision"] == classes[1]).mean()
    well = (pool[pool["truth"] != classes[1]]["decision"] == classes[1]).mean()
    positive = prevalence * sick + (1 - prevalence) * well
    return {classes[0]: 1 - positive, classes[1]: positive}


def throughput(model: Path, folder: Path | None, requests: int, image: bytes) -> float:
    import httpx

    from proctovision.serving.app import create_app
    from proctovision.serving.background import running_server

    app = create_app(model, load_in_background=False, monitor=folder)
    with running_server(app) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.post("predict?heatmap=false", files={"file": ("x.jpg", image)})
        done = []

        def send(count: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(count):
                    done.append(client.post("predict?heatmap=false", files={"file": ("x.jpg", image)}).status_code)

        threads = [threading.Thread(target=send, args=(requests // 4,)) for _ in range(4)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    assert set(done) == {200}
    return len(done) / seconds


def live(model: Path, folder: Path | None, video: Path, out: Path) -> dict:
    from proctovision.inference.predictor import load_predictor
    from proctovision.inference.recording import video_answers
    from proctovision.inference.video import VideoOptions, run_live

    predictor = load_predictor(model)
    result = run_live(predictor, str(video), None, VideoOptions(live=True, annotate=False))
    if folder is not None:
        with open_folder(folder) as monitor:
            recorder = monitor.recorder("video", monitor.model_sha256)
            recorder.record(video_answers(result, predictor.decide))
            recorder.close()
    return {"dropped": result.dropped, "p95_ms": result.latency_ms(95), "frames": len(result.rows)}


def fill(folder: Path, n: int, classes: list[str], batch: int = 100_000) -> float:
    """n synthetic answers written straight into the folder's SQLite table, ``batch`` rows a transaction (random
    ids, times over a year, one in 200 flagged out of distribution); seconds taken."""
    from proctovision.monitoring.store import new_prediction_id

    columns = ("id", "at", "model_sha256", "source", "unit", "status", "probabilities", "decision", "score",
               "ood_score", "out_of_distribution", "too_dark", "overexposed", "blurred", "latency_s", "frames")
    statement = (f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    year = np.timedelta64(365 * 86_400_000_000, "us")
    with open_folder(folder) as monitor:
        sha = monitor.model_sha256
        raw = monitor.engine.raw_connection()
        raw.driver_connection.execute("PRAGMA cache_size = -262144")  # 256 MiB: the id index takes random inserts
        try:
            for offset in range(0, n, batch):
                size = min(batch, n - offset)
                p = rng.random(size)
                fraction = np.sort(rng.random(size)) * size / n + offset / n
                at = np.datetime64("2026-01-01T00:00:00", "us") + (fraction * year.astype(np.int64)).astype(
                    "timedelta64[us]")
                times = np.char.replace(np.datetime_as_string(at, unit="us"), "T", " ").tolist()
                values = p.tolist()
                probabilities = [f'{{"{classes[0]}": {1 - value!r}, "{classes[1]}": {value!r}}}' for value in values]
                rows = zip([new_prediction_id() for _ in range(size)], times, repeat(sha), repeat("serve"),
                           repeat("image"), repeat("answered"), probabilities,
                           [classes[int(value >= 0.5)] for value in values], values, (p * 10).tolist(),
                           (p > 0.995).astype(int).tolist(), repeat(0), repeat(0), repeat(0), repeat(0.02),
                           repeat(1))
                raw.driver_connection.executemany(statement, rows)
                raw.driver_connection.commit()
        finally:
            raw.close()
    return time.perf_counter() - start


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def cli_seconds(*args: str) -> tuple[float, float]:
    """Wall and CPU time of one `proctovision ...` command, from the interpreter's start to its exit (on a shared
    machine the CPU time is what an idle one would take as wall time)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "proctovision", *args], check=True, capture_output=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def timed(work: object) -> tuple[float, float]:
    """Wall and CPU time of ``work()`` in this process."""
    cpu, start = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - start, time.process_time() - cpu


def scale(folder: Path, answers: int, classes: list[str], out: Path) -> None:
    """Fill a copy of the folder, bring its charts up to date once (a service does it 100 answers at a time), then
    time status and report in this process and as the CLI commands (with the interpreter's start and imports)."""
    from proctovision.monitoring.report import write_report
    from proctovision.monitoring.summary import status

    big = Path(shutil.copytree(folder, out / "big"))
    filled = fill(big, answers, classes)
    print(f"{answers} recorded answers written in {filled:.1f} s ({load()})")
    with open_folder(big) as monitor:
        charts = timed(monitor.refresh_alarms)
        library = {"status": timed(lambda: status(monitor)),
                   "report": timed(lambda: write_report(monitor, out / "report"))}
    cli = {"status": cli_seconds("monitor", "status", str(big), "--json", str(out / "status.json")),
           "report": cli_seconds("monitor", "report", str(big), "--out", str(out / "report-cli"))}
    print(f"{answers} recorded answers, wall / CPU seconds: the charts' first pass over all of them "
          f"{charts[0]:.1f} / {charts[1]:.1f}; `monitor status` {cli['status'][0]:.1f} / {cli['status'][1]:.1f} "
          f"(target <= 10 s; in the library {library['status'][0]:.1f} / {library['status'][1]:.1f}); "
          f"`monitor report` {cli['report'][0]:.1f} / {cli['report'][1]:.1f} (target <= 60 s; in the library "
          f"{library['report'][0]:.1f} / {library['report'][1]:.1f}) ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--before", type=int, default=300)
    parser.add_argument("--after", type=int, default=1000)
    parser.add_argument("--in-distribution", type=int, default=100_000)
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--images", type=int, default=24, help="patients of generated images (3 each) for the pools")
    parser.add_argument("--scale-only", action="store_true", help="only the status and report timings (e.g. with "
                        "--answers 200000 for a short run)")
    parser.add_argument("--shifts-only", action="store_true", help="only the detection delays and false alarms")
    parser.add_argument("--pools", type=Path, default=None, help="a folder to save the pools' answers in, or to read "
                        "them from when saved there before (same --model; with --shifts-only)")
    parser.add_argument("--signals", default=None, help="only the charts whose names start with this (e.g. "
                        "appearance): one signal's own delays and false alarms")
    args = parser.parse_args()
    from proctovision.data.synthetic.endoscopy import generate_endoscopy
    from proctovision.data.synthetic.video import write_demo_video
    from proctovision.inference.predictor import load_predictor

    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as scratch:
        work = Path(scratch)
        model = demo_model(work, args.model)
        folder = work / "monitor"
        monitor = init_folder(folder, model)
        if args.scale_only:
            monitor.close()
            return scale(folder, args.answers, monitor.classes, work)
        classes = monitor.classes
        saved = args.pools is not None and all((args.pools / f"{name}.csv").is_file() for name in ("in", "a", "b"))
        if saved and not args.shifts_only:
            parser.error("answers saved by --pools serve --shifts-only runs (the other figures need the images)")
        if saved:
            pools = {name: pd.read_csv(args.pools / f"{name}.csv") for name in ("in", "a", "b")}
            print(f"pools: the model's answers saved in {args.pools}")
        else:
            generate_endoscopy(work / "pool", patients=args.images, images_per_patient=3, seed=99)
            truth = pd.read_csv(work / "pool" / "hemorrhoid.csv").set_index("path")["label"]
            predictor = load_predictor(model)
            pools = {}
            for name, paths in variants(work / "pool", work / "variants").items():
                pools[name] = pool_answers(predictor, paths, classes)
                pools[name]["truth"] = [truth[f"images/{path.name}"] for path in paths]
                if args.pools is not None:
                    args.pools.mkdir(parents=True, exist_ok=True)
                    pools[name].to_csv(args.pools / f"{name}.csv", index=False)
        shares = {name: float(pool["out_of_distribution"].mean()) for name, pool in pools.items()}
        print(f"pools: {len(pools['in'])} images each; OOD share as is {shares['in']:.1%}, (a) {shares['a']:.1%}, "
              f"(b) {shares['b']:.1%}")
        if args.signals:
            monitor.design = only(monitor.design, args.signals)
            print(f"only the charts {', '.join(monitor.design['charts'])}")
        figures = shift_figures(monitor, pools, args.seeds, args.before, args.after, args.in_distribution)
        for shift, label in (("a", "(a) processor colour cast + brightness"), ("b", "(b) resolution + JPEG"),
                             ("c", "(c) prevalence 25% -> 60%")):
            entry = figures[shift]
            median, p90 = (f"{value:.1f}" if value is not None else "-" for value in (entry["median"], entry["p90"]))
            print(f"{label}: detection delay median {median} answers, p90 {p90} "
                  f"({args.seeds} seeds; alarms before the shift: {entry['alarm_before_shift']}; not detected within "
                  f"{args.after} answers: {entry['not_detected']})")
        state = monitor.design["appearance"]
        print(f"appearance signal: {state['note'] or 'charted'} ({state['n']} validation images of {state['units']} "
              "patients)")
        print(f"false alarms per 10,000 in-distribution answers: {figures['false_alarms_per_10000']:.2f} "
              f"(over {args.in_distribution} answers; by signal: {figures['false_alarms_by_signal']})")
        if args.shifts_only:
            return
        monitor.close()

        buffer = io.BytesIO()
        Image.open(next((work / "variants" / "in").iterdir())).save(buffer, format="JPEG")
        serve_folder = Path(shutil.copytree(folder, work / "serve-monitor"))
        without = throughput(model, None, args.requests, buffer.getvalue())
        monitored = throughput(model, serve_folder, args.requests, buffer.getvalue())
        print(f"serving: {without:.1f} answers/s without --monitor, {monitored:.1f} with; ratio "
              f"{monitored / without:.3f} (target >= 0.97; {args.requests} requests each; {load()})")

        video = write_demo_video(work / "scope.mp4", size=(640, 512), fps=30, seconds=args.video_seconds,
                                 segments=[(1.0, 2.0)], seed=3).path
        plain = live(model, None, Path(video), work / "live-plain")
        watched = live(model, Path(shutil.copytree(folder, work / "video-monitor")), Path(video), work / "live")
        print(f"live 30 frames/s: dropped {plain['dropped']} without, {watched['dropped']} with monitoring; p95 "
              f"latency {plain['p95_ms']:.1f} ms without, {watched['p95_ms']:.1f} ms with ({load()})")

        scale(folder, args.answers, classes, work)


if __name__ == "__main__":
    main()
