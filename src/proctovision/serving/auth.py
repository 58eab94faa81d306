"""Signed-in access to the service (``serve --auth DIR``): accounts and sessions come from outside.

serving does not know where accounts live: the caller passes an :class:`Authenticator` (the CLI passes the
reading room's, so clinicians sign in with those accounts). With one, the page, ``/predict``, ``/model`` and the
live page need a valid session; the API answers 401 without one, the page serves a sign-in form. State-changing
requests also need the session's CSRF token in ``X-CSRF-Token`` (bound to the server-side session, readable
from the ``csrf_token`` cookie) and a same-origin ``Origin`` (or ``Referer``), as in the reading room. A foreign
``Origin`` is refused on state-changing routes and the live socket without sign-in too (:func:`refuse_foreign_origin`),
so a web page the clinician visits cannot use a service on their machine. An account whose password is right but
whose role may not use the service is told so (403), not that the password was wrong.
"""
from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import FastAPI, Form, HTTPException, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from proctovision.core import hosts
from proctovision.core.api_errors import error_responses
from proctovision.core.hosts import CSRF_COOKIE, CSRF_HEADER, UNSAFE_METHODS, tokens_match
from proctovision.core.i18n import page_language


class Credentials(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class SignedIn(Protocol):
    """Who a session belongs to, and the session's CSRF token."""

    name: str
    role: str
    csrf_token: str


class Authenticator(Protocol):
    """Accounts and server-side sessions, keyed by the opaque token in the cookie ``cookie_name``."""

    cookie_name: str
    session_seconds: int

    def session(self, token: str | None) -> SignedIn | None:
        """The live session of a cookie token; None when unknown, expired or signed out."""

    def throttled(self, username: str, client: str) -> int | None:
        """Seconds to wait when too many sign-ins failed for this name or client (429), else None."""

    def sign_in(self, username: str, password: str, client: str) -> tuple[str, SignedIn] | None:
        """A new session (cookie token, who), or None for a wrong name or password (recorded as a failure);
        raises ``PermissionError`` for a right password of an account that may not use the service."""

    def sign_out(self, token: str) -> None:
        """End the session of this cookie token."""


def same_origin(request: Request | WebSocket) -> bool:
    """The request (or WebSocket handshake) comes from this server's own pages: :func:`hosts.same_origin`."""
    scheme = {"ws": "http", "wss": "https"}.get(request.url.scheme, request.url.scheme)
    return hosts.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                             request.headers.get("host"), scheme)


def refuse_foreign_origin(request: Request) -> None:
    """403 for a request another site's page sent (Origin or Referer of another origin)."""
    if not same_origin(request):
        raise HTTPException(403, "cross-origin request refused")


NOT_ALLOWED = "this account may not use the clinician service"
NEXT_PAGES = ("", "live", "docs")  # where the sign-in form may send the browser back to


def require_session(auth: Authenticator, request: Request) -> SignedIn:
    """The caller's session (401 without one); unsafe methods also need the same origin and the CSRF token."""
    signed = auth.session(request.cookies.get(auth.cookie_name))
    if signed is None:
        raise HTTPException(401, "sign in first (POST /auth/session)")
    if request.method in UNSAFE_METHODS:
        if not same_origin(request):
            raise HTTPException(403, "cross-origin request refused")
        if not tokens_match(signed.csrf_token, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "missing or wrong CSRF token")
    return signed


def _set_cookies(response: Response, auth: Authenticator, request: Request, token: str, csrf: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(auth.cookie_name, token, max_age=auth.session_seconds, httponly=True, samesite="strict",
                        secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=auth.session_seconds, httponly=False, samesite="strict",
                        secure=secure, path="/")


def sign_in_page(request: Request, status: int = 200, error: str | None = None, lang: str | None = None,
                 next_page: str | None = None) -> HTMLResponse:
    """The sign-in form in the page's language; it keeps an explicit ``?lang=`` and the page asked for across
    the sign-in, and says so when a session ended."""
    from proctovision.serving.pages import render_page

    lang = lang if lang is not None else request.query_params.get("lang")
    language = page_language(lang, request.headers.get("accept-language"))
    if next_page is None:
        next_page = request.url.path.strip("/")
    ended = request.query_params.get("session") == "ended"
    return HTMLResponse(render_page(language, (), "signin.html", error=error or ("ended" if ended else None),
                                    lang_param=language if lang else "",
                                    next_page=next_page if next_page in NEXT_PAGES else ""),
                        status_code=status,
                        headers={"Content-Language": language, "Vary": "Accept-Language", "Cache-Control": "no-store"})


def add_auth_routes(app: FastAPI, auth: Authenticator) -> None:
    """``POST/GET/DELETE /auth/session`` (JSON, for scripts and the page) and ``POST /auth/login`` (the form)."""

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def attempt(request: Request, username: str, password: str) -> tuple[str, SignedIn]:
        """Sign in, or raise 403 (foreign origin), 429 (throttled) or 401."""
        if not same_origin(request):
            raise HTTPException(403, "cross-origin request refused")
        wait = auth.throttled(username, client_of(request))
        if wait:
            raise HTTPException(429, "too many failed sign-ins; try again later", headers={"Retry-After": str(wait)})
        try:
            signed = auth.sign_in(username, password, client_of(request))
        except PermissionError as error:
            raise HTTPException(403, NOT_ALLOWED) from error
        if signed is None:
            raise HTTPException(401, "wrong user name or password")
        return signed

    @app.post("/auth/session", summary="Sign in: sets the session cookie and returns the CSRF token",
              responses=error_responses(400, 401, 403, 422, 429))
    def sign_in(credentials: Credentials, request: Request, response: Response) -> dict:
        token, signed = attempt(request, credentials.username, credentials.password)
        _set_cookies(response, auth, request, token, signed.csrf_token)
        return {"name": signed.name, "role": signed.role, "csrf_token": signed.csrf_token}

    @app.post("/auth/login", include_in_schema=False)
    def sign_in_form(request: Request, username: Annotated[str, Form(max_length=200)],
                     password: Annotated[str, Form(max_length=1000)],
                     lang: Annotated[str, Form(max_length=20)] = "",
                     next_page: Annotated[str, Form(alias="next", max_length=20)] = "") -> Response:
        next_page = next_page if next_page in NEXT_PAGES else ""
        try:
            token, signed = attempt(request, username, password)
        except HTTPException as error:
            if error.status_code == 403 and error.detail != NOT_ALLOWED:
                raise
            reason = {429: "throttled", 403: "not_allowed"}.get(error.status_code, "wrong")
            return sign_in_page(request, error.status_code, reason, lang or None, next_page)
        language = page_language(lang, None) if lang else ""
        response = RedirectResponse("../" + next_page + (f"?lang={language}" if language else ""), status_code=303)
        _set_cookies(response, auth, request, token, signed.csrf_token)
        return response

    @app.get("/auth/session", summary="Who is signed in (and the session's CSRF token)",
             responses=error_responses(401))
    def who(request: Request) -> dict:
        signed = require_session(auth, request)
        return {"name": signed.name, "role": signed.role, "csrf_token": signed.csrf_token}

    @app.delete("/auth/session", status_code=204, summary="Sign out", responses=error_responses(401, 403))
    def sign_out(request: Request) -> Response:
        require_session(auth, request)
        auth.sign_out(request.cookies.get(auth.cookie_name) or "")
        response = Response(status_code=204)
        response.delete_cookie(auth.cookie_name, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response
