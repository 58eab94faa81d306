"""The monitoring database: SQLAlchemy models, the engine (SQLite in WAL mode with full sync, or PostgreSQL) and
its Alembic migrations (``monitoring/migrations``), upgraded before anything reads it.

Tables:

* ``deployment``: one row, the model this folder watches (sha256, task, classes, threshold);
* ``predictions``: one row per answer (``seq`` orders them, ``id`` is the opaque prediction id given out). Never a
  patient identifier, a file name or pixels (``appearance_*`` are three numbers: the mean red, green and blue levels
  of the lit area). ``score`` is the probability of the positive class (binary tasks) or
  of the decided class (more classes), so reports read numbers, not JSON;
* ``outcomes``: confirmed labels, one per (prediction, source) where source is pathology, report or clinician;
* ``alarms``: raised when a chart crosses its limit, kept until acknowledged (note, account, time);
* ``chart_state``: where each chart stands, so the charts advance over new answers only.
"""
from __future__ import annotations

import datetime as dt
import secrets
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
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from proctovision.core.errors import UserError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_NAME = "monitor.sqlite"
OUTCOME_SOURCES = ("pathology", "report", "clinician")


class MonitorError(UserError, ValueError):
    """A monitoring folder, model or input that cannot be used; the message says which and why."""


def now() -> dt.datetime:
    """Naive UTC, so SQLite and PostgreSQL compare the same way."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_prediction_id() -> str:
    """Opaque and random: never derived from an image, a path or a patient."""
    return secrets.token_hex(12)


class Base(DeclarativeBase):
    pass


class Deployment(Base):
    __tablename__ = "deployment"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_sha256: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(64))
    classes: Mapped[list] = mapped_column(JSON)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class PredictionRecord(Base):
    __tablename__ = "predictions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_prediction_id)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now, index=True)
    model_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # serve | live | predict | watch | video
    unit: Mapped[str] = mapped_column(String(16), default="image")  # image | second | procedure
    status: Mapped[str] = mapped_column(String(16), default="answered")  # answered | error | refused
    probabilities: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(200), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    ood_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    out_of_distribution: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    too_dark: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    overexposed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    blurred: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    latency_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    appearance_red: Mapped[float | None] = mapped_column(Float, nullable=True)  # lit area's mean levels, 0..255
    appearance_green: Mapped[float | None] = mapped_column(Float, nullable=True)
    appearance_blue: Mapped[float | None] = mapped_column(Float, nullable=True)


class Outcome(Base):
    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("prediction_id", "source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class Alarm(Base):
    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(primary_key=True)
    signal: Mapped[str] = mapped_column(String(32), index=True)
    first_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    after_predictions: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict] = mapped_column(JSON)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChartState(Base):
    __tablename__ = "chart_state"
    signal: Mapped[str] = mapped_column(String(32), primary_key=True)
    statistic: Mapped[float] = mapped_column(Float, default=0.0)
    through_seq: Mapped[int] = mapped_column(Integer, default=0)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / SQLITE_NAME).resolve()}"


def make_engine(url: str) -> Engine:
    """SQLite in WAL mode with synchronous=FULL (a committed answer survives a kill -9), or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

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
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    command.upgrade(config, "head")


def open_engine(url: str, where: str) -> tuple[Engine, sessionmaker[Session]]:
    """The engine at the newest schema; a file that is not a database, or a broken one, is one clear error and is
    left exactly as it was."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except DatabaseError as error:
        engine.dispose()
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        raise MonitorError(f"{where}: the monitoring database cannot be read ({reason}); it was left untouched: "
                           "restore it from a backup") from error
    return engine, sessionmaker(engine, expire_on_commit=False)
