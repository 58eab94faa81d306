"""The live page: the browser picks a camera or capture card (getUserMedia) and sends frames over a WebSocket;
each answer carries the class, the smoothed probability and the content area, drawn on the stream by the page.

One connection is one video: the content area is found on its first frames, smoothing and hysteresis run
per connection, as in :mod:`proctovision.inference.video`. The page sends the next frame only when the
answer to the last one has come, so the server never queues stale frames; frames the camera produced in
between are counted by the page as dropped. Frames are neither stored nor echoed.
"""
from __future__ import annotations

import base64
import io
import secrets
import time

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from proctovision.inference.predictor import NO_CONTENT_AREA
from proctovision.inference.video import AREA_FRAMES, FrameModel, Hysteresis, Smoother, content_area_of
from proctovision.serving.auth import same_origin, sign_in_page
from proctovision.serving.pages import page_language, render_page

MAX_FRAME_BYTES = 4 * 1024 * 1024
CAM_EVERY = 10


class LiveSession:
    """One stream's state: its content area, smoother and hysteresis."""

    def __init__(self, predictor: object, smoothing: str = "ema", alpha: float = 0.3, margin: float = 0.1) -> None:
        self.predictor = predictor
        self.smoother = Smoother(smoothing, alpha, 9)
        self.hysteresis = Hysteresis(len(predictor.classes), predictor.threshold, margin)
        self.first: list[np.ndarray] = []
        self.model: FrameModel | None = None
        self.frames = 0

    def area_model(self, pixels: np.ndarray) -> FrameModel | None:
        """The content area from the stream's first lit frames (one, then refined until ``AREA_FRAMES``); None while
        a content-cropping model has seen no lit frame yet (a camera that starts black)."""
        if self.model is None or len(self.first) < AREA_FRAMES:
            lit = content_area_of([pixels])[0] is not None
            if lit and (not self.first or pixels.shape == self.first[0].shape):
                self.first.append(pixels)
            area = content_area_of(self.first)[0] if self.first else None
            if area is None and self.predictor.spec.crop == "content":
                return None
            self.model = FrameModel(self.predictor, area)
        return self.model

    def answer(self, data: bytes, lock: object) -> dict:
        start = time.perf_counter()
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        model = self.area_model(pixels)
        if model is None:
            self.frames += 1
            return {"frame": self.frames, "shown": None, "warning": NO_CONTENT_AREA, "content_box": None,
                    "quality": {"too_dark": True, "content_area": False},
                    "server_ms": round((time.perf_counter() - start) * 1000, 1)}
        with lock:
            probabilities = model.probabilities(model.batch([pixels]))[0]
            smoothed = self.smoother.update(probabilities)
            shown = self.hysteresis.update(smoothed)
            heatmap = None
            if self.frames % CAM_EVERY == 0:
                heatmap = self.predictor.heatmap_png(Image.fromarray(pixels), shown)
        self.frames += 1
        area = model.area
        height, width = pixels.shape[:2]
        box = [round(v / s, 4) for v, s in zip(area.box, (width, height, width, height))] if area else None
        return {
            "frame": self.frames, "shown": self.predictor.classes[shown],
            "smoothed_probability": round(float(smoothed[shown]), 4),
            "probabilities": {name: round(float(p), 4) for name, p in zip(self.predictor.classes, probabilities)},
            "content_box": box,
            "heatmap_png_base64": base64.b64encode(heatmap).decode() if heatmap else None,
            "heatmap_box": box if box and model.spec.crop == "content" else [0, 0, 1, 1],
            "server_ms": round((time.perf_counter() - start) * 1000, 1),
        }


def add_live_routes(app: FastAPI, holder: object, token: str | None, auth: object | None = None) -> None:
    """``GET /live`` (the page) and ``WS /ws/live`` (binary JPEG/PNG frames in, one JSON answer per frame); with
    ``auth`` (:class:`proctovision.serving.auth.Authenticator`) both need a session, the socket a same-origin page."""
    @app.get("/live", include_in_schema=False)
    def live_page(request: Request, lang: str | None = None) -> HTMLResponse:
        if auth is not None and auth.session(request.cookies.get(auth.cookie_name)) is None:
            return sign_in_page(request, 401)
        language = page_language(lang, request.headers.get("accept-language"))
        classes = tuple(holder.predictor.classes) if holder.predictor else ()
        return HTMLResponse(render_page(language, classes, "live.html"),
                            headers={"Content-Language": language, "Vary": "Accept-Language"})

    @app.websocket("/ws/live")
    async def live_socket(socket: WebSocket) -> None:
        given = socket.query_params.get("token", "")
        if token is not None and not (given and secrets.compare_digest(given, token)):
            await socket.close(code=1008, reason="missing or wrong API token")
            return
        if auth is not None and (auth.session(socket.cookies.get(auth.cookie_name)) is None
                                 or not same_origin(socket)):
            await socket.close(code=1008, reason="sign in first")
            return
        await socket.accept()
        if holder.predictor is None:
            await socket.send_json({"error": holder.error or "model is loading; try again in a few seconds"})
            await socket.close(code=1013)
            return
        session = LiveSession(holder.predictor)
        try:
            while True:
                data = await socket.receive_bytes()
                if len(data) > MAX_FRAME_BYTES:
                    await socket.send_json({"error": "frame larger than 4 MB"})
                    continue
                try:
                    reply = await run_in_threadpool(session.answer, data, holder.model_lock)
                except (OSError, ValueError) as error:
                    reply = {"error": f"unreadable frame ({type(error).__name__})"}
                await socket.send_json(reply)
        except WebSocketDisconnect:
            return
