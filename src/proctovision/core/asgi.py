"""Pure ASGI pieces the web layers share (no web framework imported): the request body limit and a 405's Allow.

Both the clinician service (uploads) and the reading room (JSON) must refuse an oversized body before it is
read into memory or spooled to disk; serving and reading may not import each other, so the limit lives here.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised to the app when a body without a (truthful) Content-Length passes the limit."""


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, if it gives one that is a plain number."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def allowed_methods(routes: Iterable[Any], path: str) -> str:
    """Every method some route of ``path`` answers, for a 405's ``Allow`` (Starlette names the first route's only,
    and a path may have several routes)."""
    return ", ".join(sorted({method for route in routes if getattr(route, "methods", None)
                             and route.path_regex.match(path) for method in route.methods}))


class BodyLimit:
    """413 for a body over ``limit`` bytes: at once when Content-Length says so, else as soon as the bytes pass it.

    Counting as the bytes arrive also bounds chunked bodies, which a parser would otherwise read (or spool to
    disk) whole before the endpoint sees them. Once the limit is passed the app gets no more of the body, and
    whatever it answers to the cut-off body is replaced by the 413 (the shared error body, ``{"detail": message}``).
    """

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message

    async def refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await self.refuse(send)
            return
        received, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = True
                raise BodyTooLarge(self.message)
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a cut-off body; the 413 goes out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self.refuse(send)
