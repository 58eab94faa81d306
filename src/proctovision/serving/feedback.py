"""Clinicians' feedback on the service (``serve --monitor DIR``): ``POST /feedback`` records "agree" or "correct to
<class>" with an optional reason against an answer's ``prediction_id``; under ``--auth`` the signed-in clinician is
recorded and the session's CSRF token is required, without it the feedback is anonymous. ``GET /feedback.js`` is
the page's feedback panel in the reader's language. With ``--keep-images`` the content area of each answered image
is kept under its prediction id (see :mod:`proctovision.monitoring.kept`)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from proctovision.core.api_errors import error_responses
from proctovision.serving.auth import require_session
from proctovision.serving.pages import page_language, render_page

RETENTION_EVERY = 100  # kept images between two passes of the retention limit
MAX_REASON = 500  # as monitoring.feedback keeps it; the monitoring package loads only when a service monitors


class FeedbackBody(BaseModel):
    prediction_id: str = Field(max_length=64)
    verdict: Literal["agree", "disagree"]
    label: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=MAX_REASON)


def add_feedback_routes(app: FastAPI, auth: object | None, check_token: object) -> None:
    """POST /feedback (when the app records answers) and GET /feedback.js (always: it stays idle without ids)."""

    @app.post("/feedback", status_code=201, dependencies=[Depends(check_token)],
              responses=error_responses(401, 403, 404, 422), summary="Agree with an answer, or correct it")
    async def feedback(request: Request) -> JSONResponse:
        clinician = require_session(auth, request).name if auth is not None else None
        monitor = getattr(app.state, "monitor", None)
        if monitor is None:
            raise HTTPException(404, "this service does not record answers (start it with --monitor DIR)")
        try:
            body = FeedbackBody.model_validate(await request.json())
        except (ValueError, ValidationError) as error:
            fields = [".".join(str(p) for p in item["loc"]) for item in getattr(error, "errors", lambda: [])()]
            raise HTTPException(422, "send JSON {prediction_id, verdict: agree|disagree, label?, reason?}"
                                + (f" (at fault: {', '.join(fields)})" if fields else "")) from error
        from proctovision.monitoring.feedback import FeedbackInvalid, FeedbackNotFound, record_feedback

        try:
            result = await run_in_threadpool(record_feedback, monitor, body.prediction_id, body.verdict, body.label,
                                             body.reason, clinician)
        except FeedbackNotFound as error:
            raise HTTPException(404, str(error)) from error
        except FeedbackInvalid as error:
            raise HTTPException(422, str(error)) from error
        return JSONResponse(result, status_code=201)

    @app.get("/feedback.js", include_in_schema=False)
    def feedback_script(request: Request, lang: str | None = Query(None, max_length=20)) -> Response:
        language = page_language(lang, request.headers.get("accept-language"))
        holder = getattr(app.state, "holder", None)
        classes = tuple(holder.predictor.classes) if holder is not None and holder.predictor else ()
        return Response(render_page(language, classes, name="feedback.js"),
                        media_type="text/javascript; charset=utf-8")


def attach_change_control(app: FastAPI, source: str | Path, keep_days: int | None) -> None:
    """Once a change-control plan is registered, refuse any model but the approved version; with ``keep_days``
    keep answered images in the monitoring folder no longer than that."""
    from proctovision.monitoring.change_control import check_serving
    from proctovision.monitoring.kept import check_retention, enforce_retention

    monitor = app.state.monitor
    try:
        check_serving(monitor, source)
    except Exception:
        monitor.close()
        raise
    if keep_days is not None:
        check_retention(True, keep_days)
        app.state.keeping = {"folder": Path(monitor.folder), "days": keep_days, "since_check": 0}
        enforce_retention(monitor.folder, keep_days)


async def keep_answered(app: FastAPI, images: list, answers: list[dict], spec: object) -> None:
    """After the answers are recorded: each image's content area (what the model saw) under its prediction id."""
    keeping = getattr(app.state, "keeping", None)
    if keeping is None:
        return

    from proctovision.monitoring.kept import enforce_retention, keep_image

    def keep() -> None:
        for image, answer in zip(images, answers):
            if answer.get("prediction_id"):
                keep_image(keeping["folder"], answer["prediction_id"], spec.cropped(image.convert("RGB")))
                keeping["since_check"] += 1
        if keeping["since_check"] >= RETENTION_EVERY:
            keeping["since_check"] = 0
            enforce_retention(keeping["folder"], keeping["days"])

    await run_in_threadpool(keep)
