"""The reading project's database: SQLAlchemy models, the engine (SQLite in WAL mode, or PostgreSQL), migrations.

The schema is owned by Alembic (``reading/migrations``); :func:`open_engine` upgrades a database to the newest
revision before anything reads it, so an older project keeps its answers. The audit table is append-only: the
ORM refuses to update or delete its rows, and a database trigger (revision 0002) refuses it for anyone else.
"""
from __future__ import annotations

import datetime as dt
import secrets
import threading
import unicodedata
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker, validates

from proctovision.core.errors import UserError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_NAME = "reading.sqlite"


class ReadingError(UserError, ValueError):
    """A reading project or request that cannot be used; the message says why (never a patient identifier)."""


def now() -> dt.datetime:
    """Aware UTC time; stored naive-UTC so SQLite and PostgreSQL compare the same way."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_token(nbytes: int = 12) -> str:
    """An opaque random id: never derived from a path, a file name or a patient."""
    return secrets.token_urlsafe(nbytes)


class Base(DeclarativeBase):
    pass


class Study(Base):
    """One row: the project's settings."""

    __tablename__ = "study"
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    kind: Mapped[str] = mapped_column(String(16))  # labelling | study
    task: Mapped[str] = mapped_column(String(64))
    classes: Mapped[list] = mapped_column(JSON)
    ordinal: Mapped[bool] = mapped_column(Boolean, default=False)
    arms: Mapped[list] = mapped_column(JSON)
    arm_order: Mapped[str] = mapped_column(String(32), default="unaided-first")
    washout_days: Mapped[float] = mapped_column(Float, default=0.0)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    allow_changes: Mapped[bool] = mapped_column(Boolean, default=False)
    consensus: Mapped[str] = mapped_column(String(16), default="majority")
    readers_per_case: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_order: Mapped[str] = mapped_column(String(32), default="random")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class Case(Base):
    """An image to read. ``id`` is opaque; ``path``/``patient_id``/``label`` never leave the server to a reader."""

    __tablename__ = "cases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_token)
    position: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    frame: Mapped[str] = mapped_column(String(16), default="")
    label: Mapped[str] = mapped_column(String(200), default="")  # the reference (study) or the source label
    patient_id: Mapped[str] = mapped_column(String(200), default="")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    model_probabilities: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    has_cam: Mapped[bool] = mapped_column(Boolean, default=False)


def name_key(name: str) -> str:
    """A user name as sign-in, uniqueness and the sign-in throttle compare it: case and Unicode form ignored."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()[:200]


class User(Base):
    """An account. ``name`` is shown as given; ``name_key`` (unique) makes ``Reader-C`` and ``reader-c`` one name."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    name_key: Mapped[str] = mapped_column(String(200), unique=True, nullable=True)  # set from name, never None
    role: Mapped[str] = mapped_column(String(16))  # admin | reader | adjudicator
    experience: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)

    @validates("name")
    def _keyed(self, _field: str, name: str) -> str:
        self.name_key = name_key(name)
        return name


class LoginSession(Base):
    """A server-side session; the cookie holds the token, the database only its SHA-256."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now, index=True)


class Assignment(Base):
    """One reader's work in one arm (``labelling`` for a labelling project), with its seeded order."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("user_id", "arm"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    arm: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)  # 0: read first, 1: after the washout
    seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Item(Base):
    """One position of an assignment's order; a repeat shows a case a second time, unannounced.

    ``token`` is the case id this reader sees for this item: opaque and new per item, so nothing links a case
    across arms or to its repeat. ``shown_at`` is when the image was served in the latest showing (None while
    a showing waits for its image); ``first_shown_at`` when its image was first served."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("assignment_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True, index=True, default=new_token)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    first_shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    interrupted_s: Mapped[float] = mapped_column(Float, default=0.0)
    cam_opened: Mapped[bool] = mapped_column(Boolean, default=False)


class Answer(Base):
    """The reader's current answer to one item (changed in place only where the study allows it)."""

    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    reading_time_s: Mapped[float] = mapped_column(Float)
    hidden_s: Mapped[float] = mapped_column(Float, default=0.0)
    idle_s: Mapped[float] = mapped_column(Float, default=0.0)
    interrupted_s: Mapped[float] = mapped_column(Float, default=0.0)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class Adjudication(Base):
    __tablename__ = "adjudications"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class AuditEvent(Base):
    """Append-only: every answer, change and adjudication, with what the model showed in the aided arm."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    arm: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict] = mapped_column(JSON)


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _append_only(mapper, connection, target) -> None:
    raise ReadingError("the audit table is append-only")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / SQLITE_NAME).resolve()}"


POOL_SIZE = 40  # the threads that serve requests (anyio's default): each keeps its connection once opened


def make_engine(url: str) -> Engine:
    """An engine: SQLite in WAL mode with full sync (an acknowledged answer survives a kill), or PostgreSQL.

    The pool keeps as many connections as requests can run at once: an overflow connection would be closed on
    return and opened again (a new PostgreSQL backend, or SQLite's pragmas) on a later request. No pre-ping: it
    costs a round trip per request; a connection the server dropped fails one request and the pool starts anew.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=POOL_SIZE,
                               max_overflow=10)

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_size=POOL_SIZE, max_overflow=10, pool_recycle=3600)


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` through Alembic (the migrations run on this engine)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_engine(url: str, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        _one_writer_at_a_time(sessions)
    return engine, sessions


def _one_writer_at_a_time(sessions: sessionmaker[Session]) -> None:
    """SQLite has one writer: this process's sessions queue for it on a lock, from their first flush to the end
    of the transaction, instead of in SQLite's busy handler, whose sleeps grow to 100 ms and make long tails."""
    lock = threading.Lock()

    @event.listens_for(sessions, "before_flush")
    def _take(session: Session, _context, _instances) -> None:
        if not session.info.get("writing"):
            lock.acquire()
            session.info["writing"] = True

    @event.listens_for(sessions, "after_transaction_end")
    def _give(session: Session, transaction) -> None:
        if transaction.parent is None and session.info.pop("writing", False):
            lock.release()
