"""The reading room's accounts for another app: ``serve --auth DIR`` signs clinicians in with them.

:class:`ProjectAccounts` offers what :class:`proctovision.serving.auth.Authenticator` asks for (serving and
reading do not import each other; the CLI hands one to the other): the same argon2 passwords, server-side
sessions with their CSRF tokens, expiry and sign-in throttling as the reading room's own API. Only clinicians
and admins get in: a reader or adjudicator of a running study must not see the model's output outside the
aided arm, so their accounts (and their reading-room sessions, whose cookie the browser sends here too) are
refused: a right password of such an account raises ``PermissionError``, so the service can say why.
"""
from __future__ import annotations

from dataclasses import dataclass

from proctovision.reading.project import Project
from proctovision.reading.security import (
    SESSION_COOKIE,
    SecuritySettings,
    authenticate,
    close_session,
    open_session,
    session_of,
    throttled,
)


SERVICE_ROLES = ("clinician", "admin")


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    csrf_token: str


class ProjectAccounts:
    """Sign-in, sessions and sign-out against a reading project's database."""

    cookie_name = SESSION_COOKIE

    def __init__(self, project: Project, security: SecuritySettings | None = None) -> None:
        self.project, self.security = project, security or SecuritySettings()
        self.session_seconds = int(self.security.session_hours * 3600)

    def session(self, token: str | None) -> Account | None:
        with self.project.session() as session:
            found = session_of(session, token)
            if found is None or found[1].role not in SERVICE_ROLES:
                return None
            return Account(found[1].name, found[1].role, found[0].csrf_token)

    def throttled(self, username: str, client: str) -> int | None:
        with self.project.session() as session:
            return int(self.security.failure_window_s) if throttled(session, username, client, self.security) \
                else None

    def sign_in(self, username: str, password: str, client: str) -> tuple[str, Account] | None:
        with self.project.session() as session:
            user = authenticate(session, username, password, client, self.security)
            if user is None:
                return None
            if user.role not in SERVICE_ROLES:
                raise PermissionError("this account may not use the clinician service")
            token, csrf = open_session(session, user, self.security)
            return token, Account(user.name, user.role, csrf)

    def sign_out(self, token: str) -> None:
        with self.project.session() as session:
            found = session_of(session, token)
            if found is not None:
                close_session(session, found[0])
