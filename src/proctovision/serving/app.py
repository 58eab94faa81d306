"""The REST service: POST /predict, GET /health, GET /model, and a page where a clinician drops an image.

Responses carry the class, the probabilities, the threshold and a heatmap, never the file
name or any DICOM header field, so nothing identifying is echoed back.
"""
from __future__ import annotations

import base64
import ipaddress
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proctovision.data.images import ImageReadError, read_image
from proctovision.inference.predictor import Predictor, expand_frames, load_predictor
from proctovision.serving.pages import page_language, render_page
from proctovision.serving.live import add_live_routes

STATIC = Path(__file__).parent / "static"
MAX_FRAME_HEATMAPS = 8  # a cine of hundreds of frames gets probabilities for all, overlays for the first few
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
CHUNK = 1 << 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BodyLimit:
    """413 for a body over the limit: at once when Content-Length says so, else as soon as the bytes pass it.

    Counting as the bytes arrive also bounds chunked uploads, which the multipart parser would otherwise
    spool to disk whole before the endpoint sees them.
    """

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"error": self.message}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.message)  # the endpoint's exception handler answers it
            return message

        await self.app(scope, counted, send)


class ModelHolder:
    """Loads the model in the background so the server answers (503) while it loads."""

    def __init__(self, source: str | Path) -> None:
        self.source = source
        self.predictor: Predictor | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.model_lock = threading.Lock()  # CAM hooks live on the shared model: one request at a time inside it

    def load(self) -> None:
        try:
            self.predictor = load_predictor(self.source)
        except Exception as error:  # noqa: BLE001 - reported through /health and 503s
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ready.set()

    def get(self) -> Predictor:
        if self.predictor is not None:
            return self.predictor
        if self.error:
            raise HTTPException(503, f"model failed to load: {self.error}")
        raise HTTPException(503, "model is loading; try again in a few seconds")


def create_app(
    source: str | Path, token: str | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    load_in_background: bool = True,
) -> FastAPI:
    holder = ModelHolder(source)
    if load_in_background:
        threading.Thread(target=holder.load, daemon=True).start()
    else:
        holder.load()
    app = FastAPI(title="ProctoVision", version="1", description="Anorectal image classification service.")
    too_large = f"upload larger than the {max_upload_bytes / (1024 * 1024):.3g} MB limit"
    app.add_middleware(BodyLimit, limit=max_upload_bytes + MULTIPART_OVERHEAD, message=too_large)
    app.state.holder = holder

    def check_token(
        authorization: Annotated[str | None, Header()] = None,
        x_api_token: Annotated[str | None, Header()] = None,
    ) -> None:
        if token is None:
            return
        given = x_api_token or (authorization or "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given, token):
            raise HTTPException(401, "missing or wrong API token (send it as 'Authorization: Bearer <token>')")

    @app.exception_handler(StarletteHTTPException)
    async def plain_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = too_large if error.status_code == 413 else error.detail
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        return JSONResponse(
            {"error": f"malformed request: send the image as multipart/form-data in a field named 'file' ({problems})"},
            status_code=422,
        )

    @app.get("/", include_in_schema=False)
    def page(request: Request, lang: str | None = None) -> HTMLResponse:
        language = page_language(lang, request.headers.get("accept-language"))
        classes = tuple(holder.predictor.classes) if holder.predictor else ()
        return HTMLResponse(render_page(language, classes),
                            headers={"Content-Language": language, "Vary": "Accept-Language"})

    @app.get("/health")
    def health() -> dict:
        state = "ok" if holder.predictor else ("error" if holder.error else "loading")
        return {"status": state, "token_required": token is not None}

    @app.get("/model", dependencies=[Depends(check_token)])
    def model_card() -> dict:
        return holder.get().card

    @app.post("/predict", dependencies=[Depends(check_token)])
    async def predict(file: Annotated[UploadFile, File(description="image or DICOM file")]) -> dict:
        predictor = holder.get()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload"
            size = 0
            with open(path, "wb") as stream:
                while chunk := await file.read(CHUNK):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        raise HTTPException(413, too_large)
                    stream.write(chunk)
            if size == 0:
                raise HTTPException(400, "the uploaded file is empty")
            try:
                images = await run_in_threadpool(read_frames, path, predictor.spec)
            except ImageReadError as error:
                raise HTTPException(415, f"not a readable image or DICOM file: {error.reason}") from error
        answers = [await run_in_threadpool(answer, predictor, image, holder.model_lock, index < MAX_FRAME_HEATMAPS)
                   for index, image in enumerate(images)]
        if len(answers) == 1:
            return answers[0]
        return {**answers[0], "n_frames": len(answers),
                "frames": [{"frame": index, **item} for index, item in enumerate(answers)]}

    add_live_routes(app, holder, token)
    return app


def read_frames(path: Path, spec: "Preprocessing") -> list[Image.Image]:  # noqa: F821
    """Every frame of an upload (one for an image, each frame of a multi-frame DICOM file), decoded as the
    predictor decodes files: the spec's window, JPEG scaled down no further than the model's input size."""
    keys, errors = expand_frames([path])
    if errors:
        raise ImageReadError(path, errors[0][1])
    return [read_image(path, frame=frame, window=spec.window, min_size=spec.input_size) for _, frame in keys]


def answer(predictor: Predictor, image: Image.Image, lock: threading.Lock, with_heatmap: bool = True) -> dict:
    """Class, probabilities, threshold and heatmap for one image: blocking work, run off the event loop."""
    with lock:
        probabilities = predictor.predict_images([image])[0]
        predicted = predictor.decide(probabilities)
        heatmap = predictor.heatmap_png(image, predictor.classes.index(predicted)) if with_heatmap else None
    return {
        "predicted": predicted,
        "probabilities": {name: round(float(p), 6) for name, p in zip(predictor.classes, probabilities)},
        "threshold": predictor.threshold,
        "heatmap_png_base64": base64.b64encode(heatmap).decode() if heatmap else None,
        "heatmap_note": None if heatmap else (
            "heatmaps need the run folder (PyTorch); this is an ONNX-only model" if with_heatmap else
            f"overlays are drawn for the first {MAX_FRAME_HEATMAPS} frames of a multi-frame file"),
    }
