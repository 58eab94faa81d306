"""The browser-facing security headers of the clinician service and the reading room, as one plain ASGI middleware
(no web framework needed), so both apps send the same: no sniffing, no framing, no referrer to other sites, and on
HTML a Content-Security-Policy that lets a page run only scripts and styles its own server sent as files."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
          (b"referrer-policy", b"same-origin"))


def with_security_headers(headers: list[tuple[bytes, bytes]], path: str,
                          no_store_prefixes: tuple[str, ...] = ()) -> list[tuple[bytes, bytes]]:
    """The response's headers with ours set (ours win); ``Cache-Control: no-store`` under the given path prefixes
    unless the app chose one; the CSP on HTML only, since it governs documents."""
    ours = {name for name, _ in ALWAYS}
    kept = [(name, value) for name, value in headers if name.lower() not in ours]
    names = {name.lower() for name, _ in kept}
    kept.extend(ALWAYS)
    if path.startswith(no_store_prefixes) and b"cache-control" not in names and no_store_prefixes:
        kept.append((b"cache-control", b"no-store"))
    content_type = next((value for name, value in kept if name.lower() == b"content-type"), b"")
    if content_type.startswith(b"text/html"):
        kept = [(name, value) for name, value in kept if name.lower() != b"content-security-policy"]
        kept.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
    return kept


class SecurityHeaders:
    """Adds :func:`with_security_headers` to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp, no_store_prefixes: tuple[str, ...] = ()) -> None:
        self.app, self.no_store_prefixes = app, tuple(no_store_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", [])), path,
                                                           self.no_store_prefixes)
            await send(message)

        await self.app(scope, receive, send_with_headers)
