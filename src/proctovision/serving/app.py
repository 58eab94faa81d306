"""The REST service: POST /predict, GET /health, GET /model, and a page where a clinician drops an image.

Responses carry the class, the probabilities, the threshold, the out-of-distribution and image-quality
flags and a heatmap, never the file name or any DICOM header field, so nothing identifying is echoed back.
Concurrent requests share forward passes (see :mod:`proctovision.serving.batching`); Grad-CAM stays per
image and is skipped with ``?heatmap=false``. With an audit log, every answer appends one line to it. An answer
the guard withholds comes without class, numbers and heatmap until "show anyway" (:mod:`.withheld`). Errors
answer the shared body ``{"detail": ...}`` (:mod:`proctovision.core.api_errors`), documented per route;
state-changing requests from another origin are refused, with or without sign-in.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from proctovision.core.api_errors import error_responses
from proctovision.core.asgi import BodyLimit, allowed_methods
from proctovision.core.hosts import is_loopback  # noqa: F401 - used by the serve commands
from proctovision.core.security_headers import SecurityHeaders
from proctovision.imaging.budget import LARGE_PIXELS, PixelBudgetError
from proctovision.imaging.images import ImageReadError, pixel_values, read_image
from proctovision.imaging.quality import assess_quality
from proctovision.inference.predictor import (
    NO_CONTENT_AREA,
    Predictor,
    checked_array,
    expand_frames,
    load_predictor,
    read_checked_image,
)
from proctovision.serving.audit import DEFAULT_MAX_BYTES, AuditLog, model_identity
from proctovision.serving.auth import Authenticator, add_auth_routes, refuse_foreign_origin, require_session, sign_in_page
from proctovision.serving.batching import Batcher
from proctovision.serving.decoding import DecodeGate
from proctovision.serving.live import add_live_routes
from proctovision.serving.docs import add_docs
from proctovision.serving.feedback import add_feedback_routes, attach_change_control, keep_answered
from proctovision.serving.monitoring import attach_monitor, record_answers
from proctovision.serving.pages import page_language, render_page
from proctovision.serving.withheld import (  # noqa: F401 - the guard's sentences, also used by the tests
    OOD_WARNING,
    QUALITY_WARNINGS,
    WithheldAnswers,
    warning_for,
    withheld_view,
    withholds,
)

STATIC = Path(__file__).parent / "static"
MAX_FRAME_HEATMAPS = 8  # a cine of hundreds of frames gets probabilities for all, overlays for the first few
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
CHUNK = 1 << 16
DEFAULT_BATCH_IMAGES = 16
DEFAULT_BATCH_WAIT_MS = 10.0
SETTINGS_VARIABLE = "PROCTOVISION_SERVE_SETTINGS"



class ModelHolder:
    """Loads the model in the background so the server answers (503) while it loads."""

    def __init__(self, source: str | Path, batch_images: int = DEFAULT_BATCH_IMAGES,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS, audit_log: str | Path | None = None,
                 audit_max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.source = source
        self.predictor: Predictor | None = None
        self.batcher: Batcher | None = None
        self.audit: AuditLog | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.model_lock = threading.Lock()  # CAM hooks live on the shared model: one pass at a time inside it
        self.decoding = DecodeGate()  # heavy uploads decode beside light ones, not ahead of them
        self.batch_images, self.batch_wait_ms = batch_images, batch_wait_ms
        self.audit_log, self.audit_max_bytes = audit_log, audit_max_bytes
        self.withheld = WithheldAnswers()

    def load(self) -> None:
        try:
            predictor = load_predictor(self.source)
            if self.audit_log:
                self.audit = AuditLog(self.audit_log, model_identity(predictor), self.audit_max_bytes)
            self.batcher = Batcher(predictor.raw_outputs, self.model_lock, self.batch_images,
                                   self.batch_wait_ms / 1000)
            self.predictor = predictor
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
    load_in_background: bool = True, batch_images: int = DEFAULT_BATCH_IMAGES,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS, audit_log: str | Path | None = None,
    audit_max_bytes: int = DEFAULT_MAX_BYTES, auth: Authenticator | None = None, monitor: str | Path | None = None,
    keep_images_days: int | None = None,
) -> FastAPI:
    """The service; ``batch_images``/``batch_wait_ms`` bound how many images share a forward pass and how long
    the first waits for company (1 image = one request at a time). With ``auth`` (see
    :mod:`proctovision.serving.auth`) the page and API need a signed-in session, and POSTs its CSRF token."""
    holder = ModelHolder(source, batch_images, batch_wait_ms, audit_log, audit_max_bytes)
    if load_in_background:
        threading.Thread(target=holder.load, daemon=True).start()
    else:
        holder.load()
    app = FastAPI(title="ProctoVision", version="1", description="Anorectal image classification service.",
                  docs_url=None, redoc_url=None)
    too_large = f"upload larger than the {max_upload_bytes / (1024 * 1024):.3g} MB limit"
    app.add_middleware(BodyLimit, limit=max_upload_bytes + MULTIPART_OVERHEAD, message=too_large)
    app.add_middleware(SecurityHeaders)
    app.state.holder = holder
    app.mount("/assets", StaticFiles(directory=STATIC / "assets"), name="assets")

    def check_token(
        authorization: Annotated[str | None, Header()] = None,
        x_api_token: Annotated[str | None, Header()] = None,
    ) -> None:
        if token is None:
            return
        given = x_api_token or (authorization or "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given, token):
            raise HTTPException(401, "missing or wrong API token (send it as 'Authorization: Bearer <token>')")

    def check_session(request: Request) -> None:
        if auth is not None:
            require_session(auth, request)

    if monitor is not None:  # a folder that watches another model is refused at start
        attach_monitor(app, source, monitor, check_token, auth)
        attach_change_control(app, source, keep_images_days)  # only the approved version; kept images (opt-in)
    add_feedback_routes(app, auth, check_token)

    @app.exception_handler(StarletteHTTPException)
    async def plain_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = too_large if error.status_code == 413 else error.detail
        headers = error.headers
        if error.status_code == 405:  # Starlette names the first route's methods only; a path has several routes
            headers = {**(headers or {}), "Allow": allowed_methods(app.router.routes, request.url.path)}
        return JSONResponse({"detail": message}, status_code=error.status_code, headers=headers)

    @app.exception_handler(PixelBudgetError)
    async def over_budget(request: Request, error: PixelBudgetError) -> JSONResponse:
        return JSONResponse({"detail": f"image larger than the service decodes: {error.reason}",
                             "max_pixel_values": error.limit}, status_code=413)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(part) for part in item["loc"]) for item in error.errors()]
        problems = "; ".join(f"{field}: {item['msg']}" for field, item in zip(fields, error.errors()))
        return JSONResponse({"detail": f"malformed request: send the image as multipart/form-data in a field named "
                                       f"'file' ({problems})", "fields": fields}, status_code=422)

    @app.get("/", include_in_schema=False)
    def page(request: Request, lang: str | None = None) -> HTMLResponse:
        signed = auth.session(request.cookies.get(auth.cookie_name)) if auth is not None else None
        if auth is not None and signed is None:
            return sign_in_page(request, 401)
        language = page_language(lang, request.headers.get("accept-language"))
        classes = tuple(holder.predictor.classes) if holder.predictor else ()
        return HTMLResponse(render_page(language, classes, signed_in=signed.name if signed else None),
                            headers={"Content-Language": language, "Vary": "Accept-Language"})

    @app.get("/health")
    def health() -> dict:
        state = "ok" if holder.predictor else ("error" if holder.error else "loading")
        answer = {"status": state, "token_required": token is not None}
        return {**answer, "sign_in_required": True} if auth is not None else answer

    @app.get("/model", dependencies=[Depends(check_token), Depends(check_session)],
             responses=error_responses(401, 503))
    def model_card() -> dict:
        return holder.get().card

    @app.post("/predict", dependencies=[Depends(refuse_foreign_origin), Depends(check_token), Depends(check_session)],
              responses=error_responses(400, 401, 403, 413, 415, 422, 503))
    async def predict(
        file: Annotated[UploadFile, File(description="image or DICOM file")],
        heatmap: Annotated[bool, Query(description="draw Grad-CAM overlays (false: faster)")] = True,
        overlay_width: Annotated[int | None, Query(ge=64, le=1280, description=(
            "the overlay's displayed width in device pixels: a still decoded smaller for the model is decoded "
            "again at full size for the overlay, so it is not enlarged"))] = None,
    ) -> dict:
        started = time.perf_counter()
        predictor = holder.get()
        digest = hashlib.sha256()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload"
            size = 0
            with open(path, "wb") as stream:
                while chunk := await file.read(CHUNK):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        raise HTTPException(413, too_large)
                    stream.write(chunk)
                    digest.update(chunk)
            if size == 0:
                raise HTTPException(400, "the uploaded file is empty")
            try:
                weight = await run_in_threadpool(pixel_values, path)  # the header alone: 413 before any decoding
                images = await asyncio.wrap_future(holder.decoding.submit(weight, read_frames, path, predictor.spec))
                shown = images
                if (heatmap and overlay_width and len(images) == 1 and max(images[0].size) < overlay_width
                        and weight <= LARGE_PIXELS):  # the overlay from the full-size still, never a huge one
                    shown = [await asyncio.wrap_future(holder.decoding.submit(weight, read_image, path))]
            except PixelBudgetError:
                raise
            except ImageReadError as error:
                raise HTTPException(415, f"not a readable image or DICOM file: {error.reason}") from error
        arrays, qualities, judged = await run_in_threadpool(prepare_checked, predictor, images)
        raw, features = await asyncio.wrap_future(holder.batcher.submit(arrays)) if judged else (None, None)
        scores = predictor.ood_scores(features)
        answers = []
        for index, image in enumerate(images):
            if index not in judged:
                answers.append(no_content_answer(predictor, qualities[index]))
                continue
            row = judged.index(index)
            guard = predictor.guard(None if scores is None else float(scores[row]), qualities[index])
            answers.append(await run_in_threadpool(
                answer_from, predictor, shown[index], predictor.calibrate(raw[row:row + 1])[0], guard,
                holder.model_lock, heatmap and index < MAX_FRAME_HEATMAPS, heatmap))
        answer_id = holder.withheld.new_id()
        if holder.audit:
            latency = time.perf_counter() - started
            for index, item in enumerate(answers):
                holder.audit.record(input_sha256=digest.hexdigest(), probabilities=item["probabilities"] or {},
                                    threshold=item["threshold"], decision=item["predicted"], guard=item,
                                    latency_s=latency, source="serve", frame=index if len(answers) > 1 else None,
                                    answer_id=answer_id, withheld=bool(item["warning"]))
        await record_answers(app, answers, time.perf_counter() - started)
        await keep_answered(app, images, answers, predictor.spec)
        response = answers[0] if len(answers) == 1 else {
            **answers[0], "n_frames": len(answers),
            "frames": [{"frame": index, **item} for index, item in enumerate(answers)]}
        if withholds(response):
            holder.withheld.keep(answer_id, response, digest.hexdigest())
        return {**withheld_view(response), "answer_id": answer_id}

    @app.post("/answers/{answer_id}/shown", summary="Show anyway: the full answer the guard withheld (audited)",
              dependencies=[Depends(refuse_foreign_origin), Depends(check_token), Depends(check_session)],
              responses=error_responses(401, 403, 404, 422))
    def shown_anyway(answer_id: Annotated[str, Path_(max_length=64, pattern="^[0-9a-f]+$")]) -> dict:
        kept = holder.withheld.take(answer_id)
        if kept is None:
            raise HTTPException(404, "no withheld answer with this id (only the most recent are kept)")
        response, input_sha256 = kept
        if holder.audit:
            holder.audit.shown_anyway(answer_id=answer_id, input_sha256=input_sha256)
        return {**response, "answer_id": answer_id, "withheld": False, "shown_anyway": True}

    add_live_routes(app, holder, token, auth)
    add_docs(app, auth)
    if auth is not None:
        add_auth_routes(app, auth)
    return app


def read_frames(path: Path, spec: "Preprocessing") -> list[Image.Image]:  # noqa: F821
    """Every frame of an upload (one for an image, each frame of a multi-frame DICOM file), decoded as the
    predictor decodes files it checks: the spec's window, JPEG scaled down no further than the model and the
    quality measures need."""
    keys, errors = expand_frames([path])
    if errors:
        raise ImageReadError(path, errors[0][1])
    return [read_checked_image(key, spec) for key in keys]


def prepare_images(predictor: Predictor, images: list[Image.Image]) -> tuple["np.ndarray", list[dict]]:  # noqa: F821
    """The model's input batch and each image's quality measures: request-side work, done before batching."""
    import numpy as np

    return np.stack([predictor.prepare(image) for image in images]), [assess_quality(image).to_dict()
                                                                         for image in images]


def prepare_checked(predictor: Predictor, images: list[Image.Image]) -> tuple["np.ndarray | None", list[dict],  # noqa: F821
                                                                            list[int]]:
    """The model's batch of the frames it can judge, every frame's quality measures, and which frames are in the
    batch: a frame without a content area (a black camera) gets an answer without the model."""
    import numpy as np

    checked = [checked_array(image, predictor.spec) for image in images]
    judged = [index for index, (array, _) in enumerate(checked) if array is not None]
    batch = np.stack([checked[index][0] for index in judged]) if judged else None
    return batch, [quality for _, quality in checked], judged


def no_content_answer(predictor: Predictor, quality: dict) -> dict:
    """A frame with no content area: too dark, no class, no numbers, a plain sentence."""
    return {"predicted": None, "probabilities": None, "threshold": predictor.threshold,
            **predictor.guard(None, quality), "warning": NO_CONTENT_AREA, "heatmap_png_base64": None,
            "heatmap_note": None}


def answer_from(predictor: Predictor, image: Image.Image, probabilities: "np.ndarray", guard: dict,  # noqa: F821
                lock: threading.Lock, with_heatmap: bool = True, heatmap_asked: bool = True) -> dict:
    """Class, probabilities, threshold, guard and heatmap for one image whose probabilities are known."""
    predicted = predictor.decide(probabilities)
    heatmap = None
    if with_heatmap:
        with lock:
            heatmap = predictor.heatmap_png(image, predictor.classes.index(predicted))
    note = None
    if not heatmap:
        note = ("heatmap not asked for (?heatmap=false)" if not heatmap_asked else
                "heatmaps need the run folder (PyTorch); this is an ONNX-only model" if with_heatmap else
                f"overlays are drawn for the first {MAX_FRAME_HEATMAPS} frames of a multi-frame file")
    return {
        "predicted": predicted,
        "probabilities": {name: round(float(p), 6) for name, p in zip(predictor.classes, probabilities)},
        "threshold": predictor.threshold,
        **guard,
        "warning": warning_for(guard),
        "heatmap_png_base64": base64.b64encode(heatmap).decode() if heatmap else None,
        "heatmap_note": note,
    }


def app_from_environment() -> FastAPI:
    """The app factory uvicorn calls in each worker process of ``serve --workers N``; settings come as JSON."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    return create_app(**settings)
