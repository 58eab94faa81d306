"""The audit trail: one JSON line per answer the service gave, so what clinicians were told can be traced.

A line holds the time, the model (name, software version, sha256 of the model file), the sha256 of the input,
the probabilities, threshold and decision, the OOD and quality flags and the latency. Never the image, a file
name or a DICOM identifier. Files rotate by size through the standard library's RotatingFileHandler
(LOG, LOG.1, LOG.2, ... oldest last). ``proctovision audit`` summarises them so drift in what the model sees
shows up: answers per day, the share flagged, the mix of decisions.

Every line has the same fields. A few carry context where it applies: ``answer_id`` and ``withheld`` (an answer
the guard withheld); ``procedure``, ``second``, ``frames`` and ``frames_withheld`` (the live page: one line per
second of one stream, the procedure a random id per connection, as video is recorded per procedure and per second).
A clinician's "show anyway" is its own line, ``event: shown_anyway``, naming the answer and its input.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

from proctovision.core.errors import UserError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 10


class AuditError(UserError, ValueError):
    """An audit log that cannot be read or a bad --since."""


def model_identity(predictor: object) -> dict:
    from proctovision.core import fileio

    card = predictor.card
    return {
        "name": "/".join(str(part) for part in ((card.get("task") or {}).get("name"), card.get("backbone"),
                                                 card.get("mode")) if part),
        "version": (card.get("versions") or {}).get("proctovision"),
        "sha256": fileio.sha256(predictor.model_file),
        "quantization": "int8" if card.get("quantization") else None,
    }


class AuditLog:
    """Appends one line per answer; thread-safe within a process (the handler holds a lock)."""

    _counter = 0
    _counter_lock = threading.Lock()

    def __init__(self, path: str | Path, model: dict, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        self.path, self.model = Path(path), model
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with AuditLog._counter_lock:
            AuditLog._counter += 1
            name = f"proctovision.audit.{AuditLog._counter}"
        self.logger = logging.getLogger(name)
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(self.handler)

    def record(self, *, input_sha256: str, probabilities: dict[str, float], threshold: float | None, decision: str,
               guard: dict | None, latency_s: float, source: str, frame: int | None = None, **context: object) -> dict:
        guard = guard or {}
        quality = guard.get("quality") or {}
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "source": source, "model": self.model, "input_sha256": input_sha256, "frame": frame,
            "probabilities": {name: round(float(value), 6) for name, value in probabilities.items()},
            "threshold": threshold, "decision": decision,
            "in_distribution": guard.get("in_distribution"), "ood_score": guard.get("ood_score"),
            "quality": {name: quality.get(name) for name in ("too_dark", "overexposed", "blurred")},
            "latency_ms": round(latency_s * 1000, 2), **context,
        }
        self.logger.info(json.dumps(entry, separators=(",", ":")))
        return entry

    def shown_anyway(self, *, answer_id: str, input_sha256: str, source: str = "serve") -> dict:
        """A clinician asked to see an answer the guard withheld."""
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": "shown_anyway",
                 "source": source, "model": self.model, "answer_id": answer_id, "input_sha256": input_sha256}
        self.logger.info(json.dumps(entry, separators=(",", ":")))
        return entry

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


def log_files(path: str | Path) -> list[Path]:
    """The log and its rotated copies, oldest first."""
    path = Path(path)
    rotated = sorted((item for item in path.parent.glob(path.name + ".*") if item.suffix[1:].isdigit()),
                     key=lambda item: -int(item.suffix[1:]))
    return [*rotated, *([path] if path.is_file() else [])]


def read_entries(path: str | Path) -> Iterator[tuple[dict | None, str]]:
    """Each line as (entry, where); a line that is not JSON comes back as (None, 'FILE:LINE')."""
    files = log_files(path)
    if not files:
        raise AuditError(f"{path}: no audit log there")
    for file in files:
        with open(file, encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line), f"{file.name}:{number}"
                except json.JSONDecodeError:
                    yield None, f"{file.name}:{number}"


def parse_since(value: str | None) -> dt.datetime | None:
    """A date (YYYY-MM-DD), an ISO time, or a span back from now: 7d, 24h."""
    if not value:
        return None
    text = value.strip().lower()
    now = dt.datetime.now(dt.timezone.utc)
    if text[:-1].isdigit() and text[-1:] in ("d", "h"):
        amount = int(text[:-1])
        return now - (dt.timedelta(days=amount) if text.endswith("d") else dt.timedelta(hours=amount))
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise AuditError(f"--since {value!r}: give a date (2026-01-31), an ISO time, or a span such as 7d or 24h") \
            from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def flagged(entry: dict) -> bool:
    """Out of distribution, or any quality problem."""
    return entry.get("in_distribution") is False or any((entry.get("quality") or {}).values())


def summarise(entries: Iterable[tuple[dict | None, str]], since: dt.datetime | None = None) -> dict:
    """Answers per day with the share flagged and the decision mix; malformed lines counted and located."""
    days: dict[str, dict] = {}
    malformed: list[str] = []
    shown_anyway = 0
    for entry, where in entries:
        try:
            moment = dt.datetime.fromisoformat(entry["time"]) if entry else None
        except (KeyError, TypeError, ValueError):
            moment = None
        if moment is None:
            malformed.append(where)
            continue
        if since and moment < since:
            continue
        if entry.get("event", "answer") != "answer":
            shown_anyway += entry.get("event") == "shown_anyway"
            continue
        day = days.setdefault(moment.date().isoformat(), {"answers": 0, "flagged": 0, "out_of_distribution": 0,
                                                          "decisions": Counter(), "models": Counter()})
        day["answers"] += 1
        day["flagged"] += flagged(entry)
        day["out_of_distribution"] += entry.get("in_distribution") is False
        day["decisions"][str(entry.get("decision"))] += 1
        day["models"][(entry.get("model") or {}).get("sha256", "")[:12]] += 1
    total = sum(day["answers"] for day in days.values())
    return {
        "answers": total,
        "share_flagged": sum(day["flagged"] for day in days.values()) / total if total else None,
        "decisions": dict(sum((day["decisions"] for day in days.values()), Counter())),
        "days": {name: {**day, "share_flagged": day["flagged"] / day["answers"], "decisions": dict(day["decisions"]),
                        "models": dict(day["models"])} for name, day in sorted(days.items())},
        "shown_anyway": shown_anyway,
        "malformed_lines": malformed,
    }
