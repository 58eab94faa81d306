"""The change-control tables of the monitoring database (migration 0002): clinicians' feedback, registered plan
versions, model versions with their acceptance and approval, and the change log that audits every step.

* ``feedback``: one row per feedback given; a later one by the same clinician on the same prediction sets
  ``current`` False on the earlier one, which stays (the audit keeps both);
* ``plan_versions``: each registered plan, its text, its sha256 and its locked test set's sha256;
* ``model_versions``: each version made or judged under the plan (sha256 over weights and operating point), its
  parent, method, acceptance record and approval;
* ``change_log``: what happened, when, by which account (never a patient identifier).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from proctovision.monitoring.store import Base, now

ANONYMOUS = "anonymous"
VERDICTS = ("agree", "disagree")


class Feedback(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    clinician: Mapped[str] = mapped_column(String(200), default=ANONYMOUS)
    verdict: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    current: Mapped[bool] = mapped_column(Boolean, default=True)


class PlanVersion(Base):
    __tablename__ = "plan_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    locked_sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(Text)
    parent_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str] = mapped_column(String(32))  # deployed | recalibrate | retrain | candidate
    plan_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    acceptance: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class ChangeLog(Base):
    __tablename__ = "change_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=now, index=True)
    event: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
