"""Where a server listens and whom it answers: loopback addresses reach only this machine, so the services bind
there unless asked; the same-origin and CSRF-token rules that the clinician service and the reading room share."""
from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """``localhost`` or an IPv4/IPv6 loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(origin: str | None, referer: str | None, host: str | None, scheme: str) -> bool:
    """The request comes from this server's own pages. Without Origin or Referer (a script, not a browser
    page) it passes here: the CSRF token, which only this server's pages can read, is still required.
    ``Origin: null`` (sandboxed or file pages) is refused."""
    if origin == "null":
        return False
    source = origin or referer
    if not source:
        return True
    parts = urlsplit(source)
    return bool(host) and parts.scheme == scheme and parts.netloc.lower() == host.lower()


def tokens_match(expected: str, given: str | None) -> bool:
    """A constant-time comparison of the session's CSRF token with the one a request sent."""
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())
