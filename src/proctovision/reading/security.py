"""Accounts and sessions: argon2 password hashes (pwdlib), server-side sessions, CSRF, Origin checks, throttling.

- The session cookie holds a random token; the database keeps only its SHA-256, with an expiry.
- Each session has its own CSRF token, given at login (JSON and a readable ``csrf_token`` cookie); a
  state-changing request must echo it in ``X-CSRF-Token`` and it must match the session's, so a forged
  cookie alone (double submit) is not enough.
- A request whose ``Origin`` (or, failing that, ``Referer``) is not this server's own is refused.
- After ``max_failures`` failed logins for one user name (or ``4 x`` that from one client) within the window,
  further attempts get 429 until the window has passed, whether the password is right or not. User names are
  compared without case (``db.name_key``) for sign-in, uniqueness and this count alike.
- The client is the connection's peer; ``X-Forwarded-For`` names it only when the peer is one of the
  ``trusted_proxies`` (``reading serve --trusted-proxy``), so a client cannot forge a fresh address per attempt.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from proctovision.core.hosts import (  # noqa: F401 - the reading room's API and CLI take them from here
    CSRF_COOKIE, CSRF_HEADER, is_loopback, same_origin, tokens_match,
)
from proctovision.reading.db import LoginFailure, LoginSession, User, name_key, now

SESSION_COOKIE = "reading_session"
ROLES = ("admin", "reader", "adjudicator", "clinician")
PASSWORDS = PasswordHash((Argon2Hasher(),))
DUMMY_HASH = PASSWORDS.hash("not a password of anyone")


@dataclass(frozen=True)
class SecuritySettings:
    session_hours: float = 12.0
    max_failures: int = 5
    failure_window_s: float = 900.0
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024


def client_address(peer: str | None, forwarded_for: str | None, settings: SecuritySettings) -> str:
    """Who is asking: the peer, or (behind a trusted proxy) the nearest address the proxies did not add."""
    peer = peer or "unknown"
    if peer not in settings.trusted_proxies or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in settings.trusted_proxies:
            return hop[:64]
    return hops[0][:64] if hops else peer


def hash_password(password: str) -> str:
    if len(password) < 8:
        from proctovision.reading.db import ReadingError

        raise ReadingError("a password needs at least 8 characters")
    return PASSWORDS.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return PASSWORDS.verify(password, hashed)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def throttled(session: Session, username: str, client: str, settings: SecuritySettings) -> bool:
    """Too many recent failures for this user name, or from this client."""
    since = now() - dt.timedelta(seconds=settings.failure_window_s)
    by_name = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.username == name_key(username), LoginFailure.at >= since))
    by_client = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.client == client, LoginFailure.at >= since))
    return by_name >= settings.max_failures or by_client >= 4 * settings.max_failures


def authenticate(session: Session, username: str, password: str, client: str,
                 settings: SecuritySettings) -> User | None:
    """The user if the password is right; a failure is recorded (and always costs one argon2 verification)."""
    key = name_key(username)
    user = session.scalar(select(User).where(User.name_key == key))
    if user is None:
        verify_password(password, DUMMY_HASH)  # the same work, so timing does not tell which names exist
    elif verify_password(password, user.password_hash):
        session.execute(delete(LoginFailure).where(LoginFailure.username == key))
        return user
    session.add(LoginFailure(username=key, client=client[:64]))
    session.execute(delete(LoginFailure).where(  # failures older than the window count no more
        LoginFailure.at < now() - dt.timedelta(seconds=settings.failure_window_s)))
    session.commit()
    return None


def open_session(session: Session, user: User, settings: SecuritySettings) -> tuple[str, str]:
    """A new server-side session: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now() - dt.timedelta(days=1)))
    session.add(LoginSession(token_sha256=digest(token), csrf_token=csrf, user_id=user.id,
                             expires_at=now() + dt.timedelta(hours=settings.session_hours)))
    session.commit()
    return token, csrf


def session_of(session: Session, token: str | None) -> tuple[LoginSession, User] | None:
    """The live session and its user for a cookie token; None if unknown, revoked or expired."""
    if not token:
        return None
    row = session.execute(select(LoginSession, User).join(User, LoginSession.user_id == User.id)
                          .where(LoginSession.token_sha256 == digest(token))).first()
    if row is None or row[0].revoked or row[0].expires_at <= now():
        return None
    return row[0], row[1]


def close_session(session: Session, login: LoginSession) -> None:
    login.revoked = True
    session.commit()


def csrf_matches(login: LoginSession, header: str | None) -> bool:
    return tokens_match(login.csrf_token, header)

