"""The one security-headers middleware of both web apps (plain ASGI, in core): what it sets and where."""
from __future__ import annotations

import asyncio

from proctovision.core.security_headers import CONTENT_SECURITY_POLICY, SecurityHeaders, with_security_headers


def headers_of(content_type: bytes, path: str = "/", extra=(), no_store=()) -> dict[bytes, bytes]:
    return dict(with_security_headers([(b"content-type", content_type), *extra], path, no_store))


def test_html_gets_the_policy_and_everything_gets_the_rest():
    page = headers_of(b"text/html; charset=utf-8")
    assert page[b"content-security-policy"] == CONTENT_SECURITY_POLICY.encode()
    assert b"frame-ancestors 'none'" in page[b"content-security-policy"]
    assert page[b"x-frame-options"] == b"DENY" and page[b"x-content-type-options"] == b"nosniff"
    assert page[b"referrer-policy"] == b"same-origin"
    data = headers_of(b"application/json")
    assert b"content-security-policy" not in data and data[b"x-content-type-options"] == b"nosniff"


def test_ours_win_and_no_store_only_where_asked_and_not_chosen():
    forged = headers_of(b"text/html", extra=[(b"X-Frame-Options", b"ALLOWALL")])
    assert [value for name, value in forged.items() if name.lower() == b"x-frame-options"] == [b"DENY"]
    assert headers_of(b"application/json", "/api/x", no_store=("/api",))[b"cache-control"] == b"no-store"
    assert b"cache-control" not in headers_of(b"application/json", "/static/x", no_store=("/api",))
    chosen = headers_of(b"application/json", "/api/x", extra=[(b"cache-control", b"max-age=60")], no_store=("/api",))
    assert chosen[b"cache-control"] == b"max-age=60"


def test_the_middleware_passes_websockets_through_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(SecurityHeaders(app)({"type": "http", "path": "/"}, None, send))
    asyncio.run(SecurityHeaders(app)({"type": "websocket", "path": "/ws"}, None, send))
    assert seen == ["http", "websocket"]
    assert (b"x-frame-options", b"DENY") in sent[0]["headers"] and (b"x-frame-options", b"DENY") not in sent[1]["headers"]
