"""A monitoring folder: ``monitor.json`` (the model it watches, the database URL, the signal design),
``reference.json`` (the validation profile) and, by default, ``monitor.sqlite``.

API for callers (the CLI, serve, watch, video and the change-control plan):

* :func:`init_folder` makes one for a run or export folder; :func:`open_folder` opens it;
* :meth:`Monitor.check_model` refuses any model but the folder's; :meth:`Monitor.recorder` gives the
  :class:`~proctovision.monitoring.recorder.MonitorRecorder` a service writes its answers through;
* :meth:`Monitor.refresh_alarms` advances every chart over new answers and raises alarms;
  :meth:`Monitor.acknowledge` closes one; :meth:`Monitor.alarms` lists them;
* :meth:`Monitor.answers` reads the recorded answers (a pandas frame, numbers only) for status and reports.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pandas as pd
from sqlalchemy import func, or_, select, update

from proctovision.core import fileio
from proctovision.monitoring import reference as references
from proctovision.monitoring import signals
from proctovision.monitoring.store import (
    Alarm,
    ChartState,
    Deployment,
    MonitorError,
    PredictionRecord,
    now,
    open_engine,
    sqlite_url,
)

NOT_CHARTED = ("id", "at", "source", "unit", "status", "latency_s", "frames")  # what no chart reads
_ANSWER = PredictionRecord.__table__.c
ANSWERED = (_ANSWER.status == "answered",)
# what the charts follow: answered, and not a video's per-procedure answer (its seconds are in)
CHARTED = (*ANSWERED, or_(_ANSWER.unit.is_(None), _ANSWER.unit != "procedure"))
MARKER = "monitor.json"
REFERENCE = "reference.json"
ANSWER_COLUMNS = ("seq", "id", "at", "source", "unit", "status", "decision", "score", "ood_score",
                  "out_of_distribution", "too_dark", "overexposed", "blurred", "latency_s", "frames",
                  "appearance_red", "appearance_green", "appearance_blue")


def init_folder(folder: str | Path, model: str | Path, db_url: str | None = None, alarms_per_10000: float = 1.0,
                window: int = 100) -> "Monitor":
    """A new monitoring folder for the model in ``model`` (refused without validation predictions)."""
    folder = Path(folder)
    if (folder / MARKER).exists():
        raise MonitorError(f"{folder}: already a monitoring folder; a new model version needs a new folder")
    profile = references.build_reference(model)
    design = signals.design(profile, alarms_per_10000, window)
    folder.mkdir(parents=True, exist_ok=True)
    url = db_url or sqlite_url(folder)
    engine, sessions = open_engine(url, str(folder))
    info = profile["model"]
    with sessions.begin() as session:
        session.add(Deployment(model_sha256=info["sha256"], model_name=info["name"], task=info["task"],
                               classes=info["classes"], threshold=info["threshold"]))
        session.add_all([ChartState(signal=name, statistic=0.0, through_seq=0) for name in [*design["charts"],
                                                                                             "windows"]])
    engine.dispose()
    fileio.write_json(folder / REFERENCE, profile)
    fileio.write_json(folder / MARKER, {"format": "proctovision-monitor/1", "database": None if db_url is None
                                        else db_url, "model": {key: info[key] for key in ("sha256", "folder", "kind",
                                                                                         "task", "classes")},
                                        "design": design, "created_at": now().isoformat() + "Z"})
    return open_folder(folder)


def open_folder(folder: str | Path) -> "Monitor":
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.is_file():
        raise MonitorError(f"{folder}: not a monitoring folder (no {MARKER}); make one with "
                           "`proctovision monitor init DIR --model RUN_OR_EXPORT`")
    try:
        config = json.loads(marker.read_text(encoding="utf-8"))
        profile = json.loads((folder / REFERENCE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MonitorError(f"{folder}: {MARKER} or {REFERENCE} cannot be read ({error})") from error
    return Monitor(folder, config, profile)


class Monitor:
    """An open monitoring folder; close it (or use ``with``) to release the database."""

    def __init__(self, folder: Path, config: dict, profile: dict) -> None:
        self.folder, self.config, self.reference = folder, config, profile
        self.design = config["design"]
        self.model_sha256: str = config["model"]["sha256"]
        self.classes: list[str] = list(config["model"]["classes"])
        self.engine, self.sessions = open_engine(config.get("database") or sqlite_url(folder), str(folder))
        self._refreshing = threading.Lock()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def check_model(self, sha256: str) -> None:
        """Refuse a model other than the folder's, with both versions named."""
        if sha256 != self.model_sha256:
            raise MonitorError(f"{self.folder}: this monitoring folder watches model {self.model_sha256[:12]}, not "
                               f"{sha256[:12]}; a new model version needs its own `monitor init` (or the update "
                               "path of the change-control plan)")

    def check_model_folder(self, model: str | Path) -> None:
        self.check_model(references.model_sha256(model))

    def recorder(self, source: str, model_sha256: str) -> "MonitorRecorder":  # noqa: F821
        from proctovision.monitoring.recorder import MonitorRecorder

        self.check_model(model_sha256)
        return MonitorRecorder(self, source)

    def count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(PredictionRecord)
                                      .where(PredictionRecord.status == "answered")) or 0)

    def answers(self, since: dt.datetime | None = None, until: dt.datetime | None = None, after_seq: int = 0,
                columns: tuple[str, ...] = ANSWER_COLUMNS, where: tuple = ()) -> pd.DataFrame:
        """Recorded answers in order of arrival (all statuses, unless ``where`` narrows them: ANSWERED, CHARTED),
        numbers and flags only."""
        table = PredictionRecord.__table__
        query = select(*(table.c[name] for name in columns)).where(table.c.seq > after_seq, *where)
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        return self.read(query.order_by(table.c.seq), columns)

    def read(self, query: object, columns: tuple[str, ...], times: tuple[str, ...] = ("at",)) -> pd.DataFrame:
        """A query's rows as a frame with ``columns``; the columns in ``times`` as datetimes."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.connect() as connection:
                return pd.read_sql(query, connection)
        return self._sqlite_answers(query, columns, times)

    def rows(self, query: object) -> list:
        """A query's rows as tuples, as the driver gives them (for columns read into numpy arrays)."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.connect() as connection:
                return [tuple(row) for row in connection.execute(query)]
        raw = self.engine.raw_connection()
        try:
            return raw.driver_connection.execute(*self._sqlite_statement(query)).fetchall()
        finally:
            raw.close()

    def _sqlite_statement(self, query: object) -> tuple[str, list]:
        compiled = query.compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
        parameters = [compiled.params[name] for name in compiled.positiontup]
        return str(compiled), [value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value
                               for value in parameters]

    def _sqlite_answers(self, query: object, columns: tuple[str, ...], times: tuple[str, ...]) -> pd.DataFrame:
        """SQLite straight through its driver (several times faster than ORM rows over a million answers), with
        the same types: times as datetimes, flags as True/False/missing, probabilities as dicts."""
        statement, parameters = self._sqlite_statement(query)
        raw = self.engine.raw_connection()
        try:
            frame = pd.read_sql_query(statement, raw.driver_connection, params=parameters)
        finally:
            raw.close()
        frame.columns = list(columns)
        for name in times:
            if name in frame:
                frame[name] = pd.to_datetime(frame[name], format="ISO8601")
        for flag in ("out_of_distribution", "too_dark", "overexposed", "blurred"):
            if flag in frame:
                frame[flag] = frame[flag].map({1: True, 0: False}).astype(object)
        if "probabilities" in frame:
            frame["probabilities"] = [json.loads(text) if isinstance(text, str) else None
                                      for text in frame["probabilities"]]
        return frame

    def alarms(self, open_only: bool = False) -> list[dict]:
        with self.sessions() as session:
            query = select(Alarm).order_by(Alarm.id)
            if open_only:
                query = query.where(Alarm.acknowledged_at.is_(None))
            return [alarm_dict(alarm) for alarm in session.scalars(query)]

    def acknowledge(self, alarm_id: int, note: str, by: str | None = None) -> dict:
        """Close an open alarm with a note; its chart starts again from zero."""
        if not note.strip():
            raise MonitorError("an acknowledgement needs a --note saying what was done")
        with self.sessions.begin() as session:
            alarm = session.get(Alarm, alarm_id)
            if alarm is None:
                raise MonitorError(f"{self.folder}: no alarm {alarm_id} (see `proctovision monitor status`)")
            if alarm.acknowledged_at is not None:
                raise MonitorError(f"{self.folder}: alarm {alarm_id} was already acknowledged at "
                                   f"{alarm.acknowledged_at:%Y-%m-%d %H:%M} UTC")
            alarm.acknowledged_at, alarm.acknowledged_by, alarm.note = now(), by, note.strip()
            if alarm.signal in self.design["charts"]:
                session.execute(update(ChartState).where(ChartState.signal == alarm.signal).values(statistic=0.0))
            return alarm_dict(alarm)

    def refresh_alarms(self) -> list[dict]:
        """Advance every chart and window test over the answers it has not seen (a video's per-procedure answer
        is left out: its seconds are in); raise an alarm for each signal that crosses its limit and has none
        open. Returns the alarms raised now."""
        raised: list[dict] = []
        with self._refreshing, self.sessions.begin() as session:
            # take the write lock first, so two processes never advance the same charts at once
            session.execute(update(ChartState).values(through_seq=ChartState.through_seq))
            states = {state.signal: state for state in session.scalars(select(ChartState))}
            for name in [*self.design["charts"], "windows"]:
                if name not in states:
                    states[name] = ChartState(signal=name, statistic=0.0, through_seq=0)
                    session.add(states[name])
            frame = self.answers(after_seq=min(state.through_seq for state in states.values()), where=CHARTED,
                                 columns=tuple(name for name in ANSWER_COLUMNS if name not in NOT_CHARTED))
            if frame.empty:
                return raised
            open_signals = {alarm.signal for alarm in session.scalars(
                select(Alarm).where(Alarm.acknowledged_at.is_(None)))}
            for name in self.design["charts"]:
                state = states[name]
                new = frame[frame["seq"] > state.through_seq].reset_index(drop=True)
                chart = signals.advance_chart(name, state.statistic, new, self.design, self.reference)
                if chart["first"] is not None and name not in open_signals:
                    raised.append(self._raise(session, name, new.iloc[chart["first"]],
                                              {"statistic": chart["value"], "limit": chart["limit"]}))
                state.statistic = chart["end"]
                state.through_seq = int(new["seq"].iloc[-1]) if not new.empty else state.through_seq
            state = states["windows"]
            new = frame[frame["seq"] > state.through_seq].reset_index(drop=True)
            windows = signals.window_tests(new, self.design, self.reference)
            for window in windows:
                for name in window["crossed"]:
                    if name not in open_signals:
                        open_signals.add(name)
                        raised.append(self._raise(session, name, new.iloc[window["stop"] - 1], {
                            key: window[name][key] for key in ("n", "statistic", "p_value")}))
            if windows:
                state.through_seq = int(new["seq"].iloc[windows[-1]["stop"] - 1])
        return raised

    def _raise(self, session: object, signal: str, row: pd.Series, values: dict) -> dict:
        after = session.scalar(select(func.count()).select_from(PredictionRecord).where(
            PredictionRecord.seq <= int(row["seq"]), PredictionRecord.status == "answered"))
        at = session.scalar(select(PredictionRecord.at).where(PredictionRecord.seq == int(row["seq"])))
        alarm = Alarm(signal=signal, first_at=pd.Timestamp(at).to_pydatetime(),
                      after_predictions=int(after), values={key: float(value) for key, value in values.items()})
        session.add(alarm)
        session.flush()
        return alarm_dict(alarm)


def alarm_dict(alarm: Alarm) -> dict:
    return {"id": alarm.id, "signal": alarm.signal, "first_at": alarm.first_at.isoformat() + "Z",
            "after_predictions": alarm.after_predictions, "values": alarm.values,
            "acknowledged_at": alarm.acknowledged_at.isoformat() + "Z" if alarm.acknowledged_at else None,
            "acknowledged_by": alarm.acknowledged_by, "note": alarm.note}
