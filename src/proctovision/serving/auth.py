"""Signed-in access to the service (``serve --auth DIR``): accounts and sessions come from outside.

serving does not know where accounts live: the caller passes an :class:`Authenticator` (the CLI passes the
reading room's, so clinicians sign in with those accounts). With one, the page, ``/predict``, ``/model`` and the
live page need a valid session; the API answers 401 without one, the page serves a sign-in form. State-changing
requests also need the session's CSRF token in ``X-CSRF-Token`` (bound to the server-side session, readable
from the ``csrf_token`` cookie) and a same-origin ``Origin`` (or ``Referer``), as in the reading room.
"""
from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import FastAPI, Form, HTTPException, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from proctovision.core import hosts
from proctovision.core.hosts import CSRF_COOKIE, CSRF_HEADER, UNSAFE_METHODS, tokens_match


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
        """A new session (cookie token, who), or None for a wrong name or password (recorded as a failure)."""

    def sign_out(self, token: str) -> None:
        """End the session of this cookie token."""


def same_origin(request: Request | WebSocket) -> bool:
    """The request (or WebSocket handshake) comes from this server's own pages: :func:`hosts.same_origin`."""
    scheme = {"ws": "http", "wss": "https"}.get(request.url.scheme, request.url.scheme)
    return hosts.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                             request.headers.get("host"), scheme)


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


def sign_in_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    from proctovision.serving.pages import page_language, render_page

    language = page_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    return HTMLResponse(render_page(language, (), "signin.html", error=error), status_code=status,
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
        signed = auth.sign_in(username, password, client_of(request))
        if signed is None:
            raise HTTPException(401, "wrong user name or password")
        return signed

    @app.post("/auth/session", summary="Sign in: sets the session cookie and returns the CSRF token")
    def sign_in(credentials: Credentials, request: Request, response: Response) -> dict:
        token, signed = attempt(request, credentials.username, credentials.password)
        _set_cookies(response, auth, request, token, signed.csrf_token)
        return {"name": signed.name, "role": signed.role, "csrf_token": signed.csrf_token}

    @app.post("/auth/login", include_in_schema=False)
    def sign_in_form(request: Request, username: Annotated[str, Form(max_length=200)],
                     password: Annotated[str, Form(max_length=1000)]) -> Response:
        try:
            token, signed = attempt(request, username, password)
        except HTTPException as error:
            if error.status_code == 403:
                raise
            return sign_in_page(request, error.status_code, "throttled" if error.status_code == 429 else "wrong")
        response = RedirectResponse("../", status_code=303)
        _set_cookies(response, auth, request, token, signed.csrf_token)
        return response

    @app.get("/auth/session", summary="Who is signed in (and the session's CSRF token)")
    def who(request: Request) -> dict:
        signed = require_session(auth, request)
        return {"name": signed.name, "role": signed.role, "csrf_token": signed.csrf_token}

    @app.delete("/auth/session", status_code=204, summary="Sign out")
    def sign_out(request: Request) -> Response:
        require_session(auth, request)
        auth.sign_out(request.cookies.get(auth.cookie_name) or "")
        response = Response(status_code=204)
        response.delete_cookie(auth.cookie_name, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response
