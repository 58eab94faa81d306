"""Watch a PACS: poll for new studies (QIDO-RS with a date filter), predict, push, remember.

The state file records, per study, only a hash of its UID, so it is safe to keep beside logs. It is
written atomically after every study, so a restart neither skips nor repeats one; a study whose results
were stored but not recorded (a crash in between) is recognised by its SR series and not done again.
A study is taken once its instance count has stopped changing for ``stable_s`` seconds, so a study
still arriving is not classified half-way.
"""
from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proctovision.core import fileio
from proctovision.core.errors import UserError
from proctovision.serving import dicomweb, pacs

Log = Callable[[str], None]
STATE_FORMAT = "proctovision-watch/1"
STUDY_INSTANCES = "00201208"


class WatchStateError(UserError):
    """The state file exists but cannot be read: never replaced silently (that would redo every study)."""


@dataclass
class WatchState:
    since: str
    done: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, dict] = field(default_factory=dict)
    pending: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": STATE_FORMAT, "since": self.since, "done": self.done, "failed": self.failed,
                "pending": self.pending}


def load_state(path: Path, since: str | None = None) -> WatchState:
    """The saved state, or a new one watching from ``since`` (YYYYMMDD, ``all``; default today)."""
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError("unknown format")
            return WatchState(since=str(data["since"]), done=dict(data["done"]), failed=dict(data["failed"]),
                              pending=dict(data.get("pending", {})))
        except (ValueError, KeyError, TypeError) as error:
            raise WatchStateError(f"{path}: not a watch state file ({error}); move it away to start afresh") from None
    return WatchState(since=parse_since(since))


def parse_since(since: str | None) -> str:
    if since is None:
        return datetime.date.today().strftime("%Y%m%d")
    text = since.strip().lower()
    if text == "all":
        return "all"
    try:
        return datetime.datetime.strptime(text.replace("-", ""), "%Y%m%d").strftime("%Y%m%d")
    except ValueError:
        raise UserError(f"--since {since!r}: give a date (YYYYMMDD or YYYY-MM-DD) or 'all'") from None


def save_state(path: Path, state: WatchState) -> None:
    fileio.write_json(path, state.to_dict())


def study_filters(state: WatchState, query: dict[str, str]) -> dict[str, str]:
    filters = dict(query)
    if state.since != "all" and "StudyDate" not in filters:
        filters["StudyDate"] = f"{state.since}-"
    return filters


def find_studies(client: object, filters: dict[str, str]) -> list[tuple[str, int]]:
    """(StudyInstanceUID, number of instances) of every matching study."""
    with dicomweb.pacs_errors("search for studies"):
        found = client.search_for_studies(search_filters=filters or None, get_remaining=True,
                                          fields=["NumberOfStudyRelatedInstances"])
    studies = []
    for item in found:
        uid = dicomweb.first_value(item, dicomweb.STUDY_UID)
        count = dicomweb.first_value(item, STUDY_INSTANCES)
        if uid:
            studies.append((uid, int(count) if count.isdigit() else -1))
    return studies


def is_stable(state: WatchState, key: str, count: int, now: float, stable_s: float) -> bool:
    """True once the study's instance count is unchanged for ``stable_s`` seconds (0: at once)."""
    if stable_s <= 0:
        state.pending.pop(key, None)
        return True
    seen = state.pending.get(key)
    if seen is None or seen["instances"] != count:
        state.pending[key] = {"instances": count, "since": now}
        return False
    if now - seen["since"] >= stable_s:
        state.pending.pop(key)
        return True
    return False


def poll_once(
    client: object, predictor: object, state_path: Path, state: WatchState,
    query: dict[str, str], log: Log, stable_s: float = 0, max_attempts: int = 3, now: float | None = None,
    recorder: object | None = None,
) -> int:
    """One pass over the matching studies; returns how many were classified and pushed."""
    now = time.time() if now is None else now
    processed = 0
    for uid, count in find_studies(client, study_filters(state, query)):
        key = dicomweb.uid_hash(uid)
        if key in state.done or state.failed.get(key, {}).get("attempts", 0) >= max_attempts:
            continue
        if not is_stable(state, key, count, now, stable_s):
            save_state(state_path, state)
            continue
        processed += process_study(client, predictor, uid, key, state, log, max_attempts, recorder)
        save_state(state_path, state)
    return processed


def process_study(
    client: object, predictor: object, uid: str, key: str, state: WatchState, log: Log,
    max_attempts: int, recorder: object | None = None,
) -> int:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        if pacs.has_own_results(client, uid):
            state.done[key] = {"at": stamp, "images": None, "note": "results already in the PACS"}
            log(f"study {key}: results already in the PACS, recorded as done")
            return 0
        result = pacs.predict_study(client, predictor, uid, push=True, recorder=recorder)
    except UserError as error:
        return record_failure(state, key, str(error), log, max_attempts)
    except Exception as error:  # noqa: BLE001 - one bad study must not stop the watch
        return record_failure(state, key, type(error).__name__, log, max_attempts)
    state.failed.pop(key, None)
    state.done[key] = {"at": stamp, "images": len(result.findings), "overlays": result.n_secondary_captures,
                       "skipped": len(result.skipped)}
    for name, reason in result.skipped:  # over the pixel budget, unreadable, not an image: the rest goes on
        log(f"study {key}: instance {name} skipped: {reason}")
    stored = f"SR + {result.n_secondary_captures} overlay(s) stored" if result.sr_uid else "no image, nothing stored"
    log(f"study {key}: {len(result.findings)} image(s), {len(result.skipped)} skipped, {stored} "
        f"in {result.seconds:.1f} s")
    return 1 if result.sr_uid else 0


def record_failure(state: WatchState, key: str, reason: str, log: Log, max_attempts: int) -> int:
    entry = state.failed.setdefault(key, {"attempts": 0})
    entry["attempts"] += 1
    entry["reason"] = reason
    final = " (giving up)" if entry["attempts"] >= max_attempts else " (will retry)"
    log(f"study {key}: failed, attempt {entry['attempts']} of {max_attempts}: {reason}{final}")
    return 0


def watch(
    url: str, model_folder: Path, state_path: Path, query: dict[str, str], log: Log, interval_s: float = 60,
    since: str | None = None, stable_s: float = 0, max_polls: int | None = None, max_attempts: int = 3,
    recorder: object | None = None,
) -> int:
    """Poll until interrupted (or ``max_polls`` passes); returns the number of studies pushed. A ``recorder``
    (inference.recording.Recorder) records every answer, and the SR carries each one's prediction id."""
    from proctovision.inference.predictor import load_predictor

    state = load_state(state_path, since)
    save_state(state_path, state)
    client = dicomweb.connect(url)
    predictor = load_predictor(model_folder)
    polls = pushed = 0
    while max_polls is None or polls < max_polls:
        if polls:
            time.sleep(interval_s)
        try:
            pushed += poll_once(client, predictor, state_path, state, query, log, stable_s,
                                max_attempts, recorder=recorder)
        except dicomweb.DicomWebError as error:
            log(f"poll failed: {error}")
        polls += 1
    return pushed
