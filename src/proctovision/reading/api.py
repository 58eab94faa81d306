"""The reading room's JSON API and page (FastAPI; documented at /docs).

Every route but the page and login needs a session; every state-changing route also needs the session's CSRF
token in ``X-CSRF-Token`` and a same-origin request. A reader reaches only their own assignments and cases: any
other case id (another reader's, another study's, a guess) is 404, and admin routes are 403. Responses to a
reader never carry a path, a file name, a patient id, the reference label, another reader's answer, or (outside
the aided arm) the model's output.
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from proctovision.core.api_errors import error_responses
from proctovision.core.asgi import BodyLimit, allowed_methods
from proctovision.core.hosts import UNSAFE_METHODS
from proctovision.core.security_headers import SecurityHeaders
from proctovision.reading import assignments, consensus, media
from proctovision.reading.db import LoginSession, ReadingError, User
from proctovision.reading.pages import STATIC, render_page
from proctovision.reading.project import Project, open_project
from proctovision.reading.security import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    SecuritySettings,
    authenticate,
    client_address,
    close_session,
    csrf_matches,
    open_session,
    same_origin,
    session_of,
    throttled,
)


MAX_REPORTED_S = 7 * 24 * 3600.0  # no showing lasts a week; anything longer is not a time


class Credentials(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class AnswerIn(BaseModel):
    arm: str = Field(max_length=16)
    label: str = Field(max_length=200)
    confidence: float = Field(ge=0, le=100)
    hidden_s: float = Field(default=0.0, ge=0, le=MAX_REPORTED_S, allow_inf_nan=False,
                            description="time the tab was hidden while the case was shown (at most the showing)")
    idle_s: float = Field(default=0.0, ge=0, le=MAX_REPORTED_S, allow_inf_nan=False,
                          description="time without input beyond 60 s while shown (at most the showing)")


class AdjudicationIn(BaseModel):
    label: str = Field(max_length=200)


def create_app(folder: str | Path | None = None, security: SecuritySettings | None = None,
               project: Project | None = None) -> FastAPI:
    """The app for the project in ``folder`` (or an opened ``project``)."""
    project = project or open_project(folder)
    security = security or SecuritySettings()
    app = FastAPI(title="ProctoVision reading room",
                  description="Expert labelling and timed reader studies. Sign in with POST /api/session; send "
                              "the session's CSRF token in X-CSRF-Token with every POST and DELETE.")
    app.state.project, app.state.security = project, security

    def database() -> Iterator[Session]:
        with project.session() as session:
            yield session

    Db = Annotated[Session, Depends(database)]

    def signed_in(request: Request, session: Db) -> tuple[LoginSession, User]:
        found = session_of(session, request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise HTTPException(401, "sign in first")
        if request.method in UNSAFE_METHODS:
            if not same_origin(request.headers.get("origin"), request.headers.get("referer"),
                               request.headers.get("host"), request.url.scheme):
                raise HTTPException(403, "cross-origin request refused")
            if not csrf_matches(found[0], request.headers.get(CSRF_HEADER)):
                raise HTTPException(403, "missing or wrong CSRF token")
        return found

    Auth = Annotated[tuple[LoginSession, User], Depends(signed_in)]

    def admin(auth: Auth) -> User:
        if auth[1].role != "admin":
            raise HTTPException(403, "admins only")
        return auth[1]

    api = APIRouter(prefix="/api")

    @api.post("/session", summary="Sign in: sets the session cookie and returns the CSRF token",
              responses=error_responses(400, 401, 403, 413, 422, 429))
    def sign_in(credentials: Credentials, request: Request, response: Response, session: Db) -> dict:
        if not same_origin(request.headers.get("origin"), request.headers.get("referer"),
                           request.headers.get("host"), request.url.scheme):
            raise HTTPException(403, "cross-origin request refused")
        client = client_address(request.client.host if request.client else None,
                                request.headers.get("x-forwarded-for"), security)
        if throttled(session, credentials.username, client, security):
            raise HTTPException(429, "too many failed sign-ins; try again later",
                                headers={"Retry-After": str(int(security.failure_window_s))})
        user = authenticate(session, credentials.username, credentials.password, client, security)
        if user is None:
            raise HTTPException(401, "wrong user name or password")
        token, csrf = open_session(session, user, security)
        secure, age = request.url.scheme == "https", int(security.session_hours * 3600)
        response.set_cookie(SESSION_COOKIE, token, max_age=age, httponly=True, samesite="strict", secure=secure,
                            path="/")
        response.set_cookie(CSRF_COOKIE, csrf, max_age=age, httponly=False, samesite="strict", secure=secure,
                            path="/")
        return {**_me(user, project, session), "csrf_token": csrf}

    @api.get("/session", summary="Who is signed in (and the session's CSRF token)", responses=error_responses(401))
    def me(auth: Auth, session: Db) -> dict:
        return {**_me(auth[1], project, session), "csrf_token": auth[0].csrf_token}

    @api.delete("/session", status_code=204, summary="Sign out", responses=error_responses(401, 403))
    def sign_out(auth: Auth, session: Db) -> Response:
        close_session(session, auth[0])
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @api.get("/assignments", summary="This user's work: arm, done/total, open (washout)",
             responses=error_responses(401))
    def my_assignments(auth: Auth, session: Db) -> dict:
        study = project.study(session)
        return {"kind": study.kind, "classes": list(study.classes),
                "assignments": assignments.summary(session, study, auth[1])}

    @api.get("/assignments/{arm}/next", summary="The next case of an arm (204 when done)",
             responses={204: {"description": "every case of this arm is answered"},
                        **error_responses(401, 404, 409, 422)})
    def next_case(arm: str, auth: Auth, session: Db) -> Response:
        payload = assignments.next_case(session, project.study(session), auth[1], arm)
        if payload is None:
            return Response(status_code=204)
        case_id = assignments.case_of(session, auth[1], payload["case"])
        return JSONResponse({**payload, "windows": media.windows(project.root, case_id)})

    @api.post("/cases/{case}/answers", status_code=201, summary="Answer a case (committed before the 201)",
              responses=error_responses(400, 401, 403, 404, 409, 413, 422))
    def post_answer(case: str, body: AnswerIn, auth: Auth, session: Db) -> dict:
        return assignments.answer(session, project.study(session), auth[1], case, body.arm, body.label,
                                  body.confidence, body.hidden_s, body.idle_s)

    @api.get("/cases/{case}/image", summary="The case's image (PNG, full resolution, no metadata); DICOM cases "
             "also in the windows that `next` lists. Serving it starts the showing's reading time",
             response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}, **error_responses(401, 404, 422)})
    def image(case: str, auth: Auth, session: Db, window: str | None = None) -> FileResponse:
        user, study = auth[1], project.study(session)
        if window is not None and window not in media.WINDOWS:
            return _png(None)
        if user.role == "reader":
            case = assignments.open_image(session, study, user, case)
        elif not (user.role == "admin" or (user.role == "adjudicator"
                                           and case in consensus.adjudication_queue(session, study))):
            case = None
        return _png(media.image_file(project.root, case, window) if case else None)

    @api.get("/cases/{case}/cam", summary="The model's Grad-CAM overlay, covering the image exactly (only while "
             "the reader's current arm is aided; else 404)", response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}, **error_responses(401, 404, 422)})
    def cam(case: str, auth: Auth, session: Db) -> FileResponse:
        case_id = assignments.open_model_output(session, project.study(session), auth[1], case)
        return _png(media.cam_file(project.root, case_id) if case_id else None)

    @api.get("/adjudication/next", summary="Adjudicators: the next disagreement, with the experts' labels",
             responses={204: {"description": "nothing to adjudicate"}, **error_responses(401, 403)})
    def next_adjudication(auth: Auth, session: Db) -> Response:
        if auth[1].role != "adjudicator":
            raise HTTPException(403, "adjudicators only")
        payload = consensus.next_adjudication(session, project.study(session))
        if payload is None:
            return Response(status_code=204)
        return JSONResponse({**payload, "windows": media.windows(project.root, payload["case"])})

    @api.post("/adjudication/{case}", status_code=201, summary="Adjudicators: the final label of a case",
              responses=error_responses(400, 401, 403, 404, 413, 422))
    def adjudicate(case: str, body: AdjudicationIn, auth: Auth, session: Db) -> dict:
        if auth[1].role != "adjudicator":
            raise HTTPException(403, "adjudicators only")
        return consensus.adjudicate(session, project.study(session), auth[1], case, body.label)

    @api.get("/admin/progress", summary="Admins: progress per reader and arm, agreement so far",
             responses=error_responses(401, 403))
    def admin_progress(_: Annotated[User, Depends(admin)], session: Db) -> dict:
        study = project.study(session)
        so_far = consensus.agreement_so_far(session, study)
        result = {"kind": study.kind, "classes": list(study.classes),
                  "progress": assignments.progress(session, study),
                  "agreement": {key: value for key, value in so_far.items() if key != "consensus"}}
        if "consensus" in so_far:
            result["consensus"] = so_far["consensus"]
        return result

    @api.post("/admin/export", summary="Admins: write the export into the project's exports/ and download it",
              response_class=FileResponse, responses={200: {"content": {"text/csv": {}}},
                                                      **error_responses(401, 403, 413)})
    def admin_export(_: Annotated[User, Depends(admin)], session: Db) -> FileResponse:
        from proctovision.reading.export import export

        kind = project.study(session).kind
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{'manifest' if kind == 'labelling' else 'readers'}-{stamp}.csv"
        info = export(project, project.root / "exports" / name)
        return FileResponse(info["file"], media_type="text/csv", filename=name,
                            headers={"Cache-Control": "no-store"})

    app.include_router(api)
    app.add_middleware(BodyLimit, limit=security.max_body_bytes,
                       message=f"request body larger than {security.max_body_bytes // 1024} KB")
    _pages(app)
    _errors(app)
    return app


def _me(user: User, project: Project, session: Session) -> dict:
    study = project.study(session)
    return {"name": user.name, "role": user.role, "experience": user.experience, "kind": study.kind}


def _png(path: Path | None) -> FileResponse:
    if path is None or not path.is_file():
        raise HTTPException(404, "no such case")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, no-store"})


def _pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/", include_in_schema=False)
    def page(request: Request, lang: str | None = None) -> Response:
        html = render_page(lang, request.headers.get("accept-language"))
        return Response(html, media_type="text/html; charset=utf-8")

    app.add_middleware(SecurityHeaders, no_store_prefixes=("/api",))


def _errors(app: FastAPI) -> None:
    @app.exception_handler(405)
    def wrong_method(request: Request, _: Exception) -> JSONResponse:
        return JSONResponse({"detail": "method not allowed"}, status_code=405,
                            headers={"Allow": allowed_methods(request.app.router.routes, request.url.path)})

    @app.exception_handler(assignments.NotFound)
    def not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(assignments.Conflict)
    def conflict(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(ReadingError)
    def bad_request(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input (a password, say); name the fields only.
        fields = [".".join(str(part) for part in item.get("loc", ())) for item in error.errors()]
        return JSONResponse({"detail": "invalid request", "fields": fields}, status_code=422)
