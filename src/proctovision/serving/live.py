"""The live page: the browser picks a camera or capture card (getUserMedia) and sends frames over a WebSocket;
each answer carries the class, the smoothed probability and the content area, drawn on the stream by the page.

One connection is one video (one procedure): the content area is found on its first frames that are not dark,
smoothing and the decision run per connection. The page sends the next frame only when the answer to the last
one has come, so the server never queues stale frames; frames the camera produced in between are counted by the
page as dropped. Frames are neither stored nor echoed.

What ``/predict`` does, the socket does: each frame is decoded as an upload is (JPEG at the scale the model and
the quality measures need), cropped to the content area, scored, and guarded (out of distribution, too dark,
overexposed, blurred); a guarded frame gets the sentence and no class, and does not move the smoothing. A frame's
own ``probabilities`` are those ``/predict`` gives for the same bytes. The label follows ``/predict``'s rule
(:class:`LiveDecision`) applied to the probabilities smoothed over frames (EMA), so it differs from a single
upload only by the smoothing, and by what the page sends: the camera's picture re-encoded as JPEG.

With an audit log, each second of a stream is one line (``source: live``): the procedure (a random id per
connection), the second, the frames answered in it, their mean probabilities, the label at its end and the guard's
flags (any frame flagged), as video is recorded per procedure and per second.

With ``serve --monitor DIR`` the stream is recorded in the monitoring folder per second and per procedure
(:mod:`.live_record`). The page ends a procedure by sending the text ``end``: the server records the procedure and
answers ``{"procedure": {prediction_id, predicted, probabilities, frames}}`` (null without monitoring or without
frames), then closes the socket.
"""
from __future__ import annotations

import base64
import io
import logging
import secrets
import time
from collections.abc import Callable

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from proctovision.core.decision import decide
from proctovision.imaging.images import ImageReadError, read_raster
from proctovision.imaging.quality import MEASURE_WIDTH, assess_quality
from proctovision.inference.video import AREA_FRAMES, FrameModel, Smoother, content_area_of
from proctovision.serving.auth import same_origin, sign_in_page
from proctovision.serving.live_record import LiveRecording, frame_numbers
from proctovision.serving.pages import page_language, render_page
from proctovision.serving.withheld import warning_for

MAX_FRAME_BYTES = 4 * 1024 * 1024
CAM_EVERY = 10
SMOOTHING_ALPHA = 0.3
MARGIN = 0.1
NO_AREA = "No content area found yet (the picture is dark); the model cannot judge such images."


def mask_png(mask: np.ndarray) -> str:
    """The content area's mask inside its box as a PNG whose alpha is the field (base64): the page shows the camera
    through it only, so the corners of the box, where text may be burned in, stay black too."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(mask, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


class LiveDecision:
    """``/predict``'s rule on the smoothed probabilities, with hysteresis that never names a class the rule would
    not: the label changes to another class only once the rule gives it by ``margin`` (binary: the positive
    probability at threshold + margin to switch on, below threshold - margin to switch off; more classes: the
    leader ahead of the shown class by margin). Between, the rule and the last label disagree and no class is shown."""

    def __init__(self, n_classes: int, threshold: float | None, margin: float = MARGIN) -> None:
        self.threshold = threshold if n_classes == 2 else None
        self.margin = margin
        self.shown: int | None = None

    def update(self, smoothed: np.ndarray) -> int | None:
        rule = int(decide(np.asarray(smoothed)[None], self.threshold)[0])
        if self.shown is None or rule == self.shown:
            self.shown = rule
            return rule
        if self.threshold is not None:
            cleared = (smoothed[1] >= min(1.0, self.threshold + self.margin) if rule == 1
                       else smoothed[1] < max(0.0, self.threshold - self.margin))
        else:
            cleared = smoothed[rule] - smoothed[self.shown] >= self.margin
        if cleared:
            self.shown = rule
            return rule
        return None


class SecondAudit:
    """One audit line per second of a stream: frames, mean probabilities, the last label and any flag."""

    def __init__(self, audit: object | None, predictor: object) -> None:
        self.audit, self.predictor = audit, predictor
        self.procedure = secrets.token_hex(8)
        self.second: int | None = None
        self.rows: list[dict] = []

    def add(self, answer: dict, probabilities: np.ndarray | None, latency_s: float, second: int) -> None:
        if self.audit is None:
            return
        if self.second is not None and second != self.second:
            self.flush()
        self.second = second
        self.rows.append({"answer": answer, "probabilities": probabilities, "latency_s": latency_s})

    def flush(self) -> None:
        if self.audit is None or not self.rows:
            return
        rows, self.rows = self.rows, []
        scored = [row["probabilities"] for row in rows if row["probabilities"] is not None]
        mean = np.mean(scored, axis=0) if scored else np.full(len(self.predictor.classes), np.nan)
        answers = [row["answer"] for row in rows]
        scores = [answer["ood_score"] for answer in answers if answer.get("ood_score") is not None]
        flags = {name: any((answer.get("quality") or {}).get(name) for answer in answers)
                 for name in ("too_dark", "overexposed", "blurred")}
        known = [answer["in_distribution"] for answer in answers if answer.get("in_distribution") is not None]
        guard = {"in_distribution": all(known) if known else None,
                 "ood_score": round(float(np.mean(scores)), 4) if scores else None, "quality": flags}
        self.audit.record(
            input_sha256=None, probabilities=dict(zip(self.predictor.classes, mean.tolist())),
            threshold=self.predictor.threshold, decision=answers[-1]["shown"], guard=guard,
            latency_s=float(np.mean([row["latency_s"] for row in rows])), source="live",
            procedure=self.procedure, second=self.second, frames=len(rows),
            frames_withheld=sum(answer["withheld"] for answer in answers))


class LiveSession:
    """One stream's state: its content area, smoother, decision, audit and monitoring record."""

    def __init__(self, predictor: object, audit: object | None = None, clock: Callable[[], float] = time.monotonic,
                 alpha: float = SMOOTHING_ALPHA, margin: float = MARGIN, recorder: object | None = None) -> None:
        self.predictor = predictor
        self.spec = predictor.spec
        self.smoother = Smoother("ema", alpha, 9)
        self.decision = LiveDecision(len(predictor.classes), predictor.threshold, margin)
        self.first: list[np.ndarray] = []
        self.area = None
        self.area_sent = None
        self.model: FrameModel | None = None
        self.frames = 0
        self.clock, self.started = clock, clock()
        self.seconds = SecondAudit(audit, predictor)
        self.recording = LiveRecording(recorder, predictor.classes, predictor.decide) if recorder else None

    def area_model(self, pixels: np.ndarray, dark: bool) -> FrameModel | None:
        """The content area from the stream's first frames that are not dark (refined until ``AREA_FRAMES``);
        None while a model trained on content crops has no area to crop to."""
        if not dark and len(self.first) < AREA_FRAMES and (not self.first or pixels.shape == self.first[0].shape):
            self.first.append(pixels)
            self.area, _ = content_area_of(self.first)
            self.model = None
        if self.area is None and self.spec.crop == "content":
            return None
        if self.model is None:
            self.model = FrameModel(self.predictor, self.area)
        return self.model

    def answer(self, data: bytes, lock: object) -> dict:
        start = time.perf_counter()
        image = read_raster(io.BytesIO(data), min_size=max(self.spec.input_size, MEASURE_WIDTH))
        pixels = np.asarray(image)
        quality = assess_quality(image).to_dict()
        model = self.area_model(pixels, quality["too_dark"])
        self.frames += 1
        height, width = pixels.shape[:2]
        area = model.area if model else None
        box = [round(v / s, 4) for v, s in zip(area.box, (width, height, width, height))] if area else None
        answer = {"frame": self.frames, "shown": None, "withheld": True, "smoothed_probability": None,
                  "smoothed": None, "probabilities": None, "threshold": self.predictor.threshold, "margin":
                  self.decision.margin, "content_box": box, "content_mask_png_base64": None,
                  "heatmap_png_base64": None, "heatmap_box": None}
        if area is not None and area is not self.area_sent:  # the field's shape, sent when it is new
            answer["content_mask_png_base64"] = mask_png(area.mask)
            self.area_sent = area
        probabilities = None
        if model is None:
            answer.update(self.predictor.guard(None, quality), warning=NO_AREA)
        else:
            with lock:
                output, scores = model.outputs(model.batch([pixels]))
            probabilities = output[0]
            answer.update(self.predictor.guard(None if scores is None else float(scores[0]), quality))
            answer["warning"] = warning_for(answer)
            if not answer["warning"]:
                answer.update(self.shown(probabilities, model, image, lock))
                answer["heatmap_box"] = box if box and model.spec.crop == "content" else [0, 0, 1, 1]
        answer["server_ms"] = round((time.perf_counter() - start) * 1000, 1)
        latency, second = time.perf_counter() - start, int(self.clock() - self.started)
        self.seconds.add(answer, probabilities, latency, second)
        if self.recording is not None:
            self.recording.add(frame_numbers(answer, probabilities, latency), second)
        return answer

    def shown(self, probabilities: np.ndarray, model: FrameModel, image: object, lock: object) -> dict:
        """The label and numbers of a frame the guard lets through; every ``CAM_EVERY`` frames a heatmap."""
        classes = self.predictor.classes
        smoothed = self.smoother.update(probabilities)
        shown = self.decision.update(smoothed)
        heatmap = None
        if shown is not None and (self.frames - 1) % CAM_EVERY == 0:
            with lock:
                heatmap = self.predictor.heatmap_png(image, shown)
        return {
            "shown": None if shown is None else classes[shown], "withheld": False,
            "smoothed_probability": None if shown is None else round(float(smoothed[shown]), 4),
            "smoothed": {name: round(float(p), 4) for name, p in zip(classes, smoothed)},
            "probabilities": {name: round(float(p), 6) for name, p in zip(classes, probabilities)},
            "heatmap_png_base64": base64.b64encode(heatmap).decode() if heatmap else None,
        }

    def end(self) -> dict | None:
        """The stream is over: its last audit line, and with monitoring its last second and the procedure recorded
        (once). The procedure's answer for the page (``prediction_id`` only when recorded)."""
        self.seconds.flush()
        if self.recording is None:
            return None
        return self.recording.end()

    def close(self) -> None:
        """The socket is gone: nobody to tell of a failed record but the service's log (no id, no pixels in it)."""
        try:
            self.end()
        except Exception as error:  # noqa: BLE001
            logging.getLogger("proctovision.live").warning("a live procedure was not recorded for monitoring (%s)",
                                                           type(error).__name__)


def add_live_routes(app: FastAPI, holder: object, token: str | None, auth: object | None = None) -> None:
    """``GET /live`` (the page) and ``WS /ws/live`` (binary JPEG/PNG frames in, one JSON answer per frame). The
    socket answers only pages of this origin; with ``auth`` (:class:`proctovision.serving.auth.Authenticator`)
    both need a session."""
    @app.get("/live", include_in_schema=False)
    def live_page(request: Request, lang: str | None = None) -> HTMLResponse:
        if auth is not None and auth.session(request.cookies.get(auth.cookie_name)) is None:
            return sign_in_page(request, 401)
        language = page_language(lang, request.headers.get("accept-language"))
        predictor = holder.predictor
        classes = tuple(predictor.classes) if predictor else ()
        rule = {"threshold": predictor.threshold if predictor else None, "margin": MARGIN,
                "alpha": SMOOTHING_ALPHA, "positive": classes[1] if len(classes) == 2 else None}
        return HTMLResponse(render_page(language, classes, "live.html", rule=rule),
                            headers={"Content-Language": language, "Vary": "Accept-Language"})

    @app.websocket("/ws/live")
    async def live_socket(socket: WebSocket) -> None:
        if not same_origin(socket):
            await socket.close(code=1008, reason="cross-origin connection refused")
            return
        given = socket.query_params.get("token", "")
        if token is not None and not (given and secrets.compare_digest(given, token)):
            await socket.close(code=1008, reason="missing or wrong API token")
            return
        if auth is not None and auth.session(socket.cookies.get(auth.cookie_name)) is None:
            await socket.close(code=1008, reason="sign in first")
            return
        await socket.accept()
        if holder.predictor is None:
            await socket.send_json({"error": holder.error or "model is loading; try again in a few seconds"})
            await socket.close(code=1013)
            return
        session = LiveSession(holder.predictor, holder.audit, recorder=getattr(app.state, "live_recorder", None))
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "end":  # Stop: the procedure's answer, once, then the stream is closed
                    try:
                        reply = {"procedure": await run_in_threadpool(session.end)}
                    except Exception as error:  # noqa: BLE001 - the page says so; the frames were answered
                        reply = {"procedure": None, "error": f"the procedure was not recorded ({type(error).__name__})"}
                    await socket.send_json(reply)
                    await socket.close(1000)
                    return
                data = message.get("bytes")
                if data is None:
                    await socket.send_json({"error": "send frames as binary messages, or the text 'end'"})
                    continue
                if len(data) > MAX_FRAME_BYTES:
                    await socket.send_json({"error": "frame larger than 4 MB"})
                    continue
                try:
                    reply = await run_in_threadpool(session.answer, data, holder.model_lock)
                except (ImageReadError, OSError, ValueError) as error:
                    reply = {"error": f"unreadable frame ({type(error).__name__})"}
                await socket.send_json(reply)
        except WebSocketDisconnect:
            return
        finally:
            await run_in_threadpool(session.close)
