"""Each reader's work: seeded orders per arm, unannounced repeats, the washout, the next case and the answer.

A reader addresses each item by its own opaque token (the ``case`` of the API), so the same image has unrelated
ids in the two arms and in a repeat. Reading time is measured by the server: from the moment the image of the
latest showing (``next``) is served to the answer, minus the time the client reports as hidden (tab in the
background) or idle (no input for more than 60 s); an answer before the image was served is refused. A case
shown again after the tab was closed is timed from the new showing; the earlier showing is kept as
``interrupted_s``. The model's output is served only for items of the reader's current arm when it is aided.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import statistics

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from proctovision.reading.db import Answer, Assignment, AuditEvent, Case, Item, ReadingError, Study, User, now

READING_ROLE = "reader"
REPORT_SLACK_S = 1.0  # the client's clock may run a little ahead of the server's


class NotFound(ReadingError):
    """Not this user's case or arm (404: whether it exists elsewhere is not said)."""


class Conflict(ReadingError):
    """The request does not fit the state (answered already, not shown yet, arm closed): 409."""


def reader_rank(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == READING_ROLE,
                                                                       User.id < user.id))


def ensure_assignments(session: Session, study: Study, user: User) -> list[Assignment]:
    """The user's assignments, made (with their seeded orders) on first use; none for admins and adjudicators."""
    if user.role != READING_ROLE:
        return []
    existing = session.scalars(select(Assignment).where(Assignment.user_id == user.id)
                               .order_by(Assignment.sequence)).all()
    if existing:
        return list(existing)
    arms = list(study.arms)
    if study.kind == "study" and study.arm_order == "counterbalanced" and reader_rank(session, user) % 2 == 1:
        arms.reverse()
    made = []
    for sequence, arm in enumerate(arms):
        seed = (study.seed * 1_000_003 + user.id * 7919 + sequence * 104_729) % (2 ** 31)
        assignment = Assignment(user_id=user.id, arm=arm, sequence=sequence, seed=seed)
        session.add(assignment)
        session.flush()
        for position, (case_id, repeat) in enumerate(_order(session, study, seed)):
            session.add(Item(assignment_id=assignment.id, position=position, case_id=case_id, repeat=repeat))
        made.append(assignment)
    try:
        session.commit()
    except IntegrityError:  # the same reader's two first requests raced; the other one made them
        session.rollback()
        return ensure_assignments(session, study, user)
    return made


def _order(session: Session, study: Study, seed: int) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    cases = session.scalars(select(Case).order_by(Case.position)).all()
    if study.kind == "labelling" and study.readers_per_case:
        cases = _share(session, cases, study.readers_per_case, rng)
    order = [case.id for case in cases]
    rng.shuffle(order)
    if study.case_order == "uncertain-first":
        sure = {case.id: max((case.model_probabilities or {"": 0.0}).values()) for case in cases}
        order.sort(key=lambda case_id: sure[case_id])
    items = [(case_id, False) for case_id in order]
    for case_id in rng.sample(order, min(study.repeats, len(order))):
        first = next(index for index, (other, _) in enumerate(items) if other == case_id)
        items.insert(rng.randint(min(first + 2, len(items)), len(items)), (case_id, True))
    return items


def _share(session: Session, cases: list[Case], per_case: int, rng: random.Random) -> list[Case]:
    """Labelling with k readers per case: this reader takes up to ceil(n*k/readers) of the least-covered cases."""
    readers = max(1, session.scalar(select(func.count()).select_from(User).where(User.role == READING_ROLE)))
    quota = -(-len(cases) * per_case // readers)
    covered = dict(session.execute(select(Item.case_id, func.count()).where(Item.repeat.is_(False))
                                   .group_by(Item.case_id)).all())
    open_cases = [case for case in cases if covered.get(case.id, 0) < per_case]
    rng.shuffle(open_cases)
    open_cases.sort(key=lambda case: covered.get(case.id, 0))
    return sorted(open_cases[:quota], key=lambda case: case.position)


def opens_at(session: Session, study: Study, assignment: Assignment) -> dt.datetime | None:
    """When the assignment opens: None if open now; a far date while the earlier arm is unfinished."""
    if assignment.sequence == 0:
        return None
    before = session.scalar(select(Assignment).where(Assignment.user_id == assignment.user_id,
                                                     Assignment.sequence == assignment.sequence - 1))
    return _opening(study, before)


def _opening(study: Study, before: Assignment | None) -> dt.datetime | None:
    """When an arm opens after the reader's earlier arm ``before`` (None: it is the first arm)."""
    if before is None:
        return None
    if before.finished_at is None:
        return dt.datetime.max
    opening = before.finished_at + dt.timedelta(days=study.washout_days)
    return None if now() >= opening else opening


def assignment_for(session: Session, study: Study, user: User, arm: str) -> Assignment:
    for assignment in ensure_assignments(session, study, user):
        if assignment.arm == arm:
            return assignment
    raise NotFound("no such arm for this user")


def _unanswered(session: Session, assignment: Assignment):
    return (select(Item).outerjoin(Answer, Answer.item_id == Item.id)
            .where(Item.assignment_id == assignment.id, Answer.id.is_(None)).order_by(Item.position))


def counts(session: Session, assignment: Assignment) -> tuple[int, int]:
    """(answered, total) items of the assignment, in one query."""
    total, done = session.execute(
        select(func.count(Item.id), func.count(Answer.id)).select_from(Item)
        .outerjoin(Answer, Answer.item_id == Item.id).where(Item.assignment_id == assignment.id)).one()
    return int(done), int(total)


def summary(session: Session, study: Study, user: User) -> list[dict]:
    lines = []
    for assignment in ensure_assignments(session, study, user):
        done, total = counts(session, assignment)
        opening = opens_at(session, study, assignment)
        lines.append({"arm": assignment.arm, "kind": study.kind, "done": done, "total": total,
                      "open": opening is None, "finished": done == total,
                      "opens_at": None if opening in (None, dt.datetime.max) else opening.isoformat() + "Z"})
    return lines


def next_case(session: Session, study: Study, user: User, arm: str) -> dict | None:
    """The next unanswered case of the arm (a new showing: timed once its image is served), or None when the arm
    is done. Read-only but for a showing that replaces an earlier one whose image was served."""
    assignment = assignment_for(session, study, user, arm)
    if opens_at(session, study, assignment) is not None:
        raise Conflict("this arm is not open yet (washout)")
    item = session.scalars(_unanswered(session, assignment).limit(1)).first()
    done, total = counts(session, assignment)
    if item is None:
        if assignment.finished_at is None:
            assignment.finished_at = now()
            session.commit()
        return None
    if item.shown_at is not None:  # an earlier showing whose image was served: its time is kept apart
        item.interrupted_s += (now() - item.shown_at).total_seconds()
        item.shown_at = None  # this showing is timed from its image being served (open_image)
        session.commit()
    payload = {"case": item.token, "arm": arm, "position": done + 1, "total": total,
               "classes": list(study.classes), "image": f"api/cases/{item.token}/image",
               "allow_changes": study.allow_changes}
    if arm == "aided":
        case = session.get(Case, item.case_id)
        payload["model"] = {"version": study.model_version, "probabilities": case.model_probabilities,
                            "cam": f"api/cases/{item.token}/cam" if case.has_cam else None}
    return payload


def _item_of(session: Session, user: User, token: str) -> tuple[Item, Assignment] | None:
    """The user's item with this token, and its assignment (None for anyone else's or a guess)."""
    row = session.execute(select(Item, Assignment).join(Assignment, Item.assignment_id == Assignment.id)
                          .where(Item.token == token, Assignment.user_id == user.id)).first()
    return (row[0], row[1]) if row else None


def case_of(session: Session, user: User, token: str) -> str:
    """The case behind one of the user's item tokens (server side only: never sent to a reader)."""
    found = _item_of(session, user, token)
    if found is None:
        raise NotFound("no such case for this user")
    return found[0].case_id


def _offered(session: Session, item: Item, assignment: Assignment) -> bool:
    """Shown before, or the assignment's current item (the one ``next`` offers): never a later one."""
    if item.first_shown_at is not None:
        return True
    current = session.scalars(_unanswered(session, assignment).limit(1)).first()
    return current is not None and current.id == item.id


def open_image(session: Session, study: Study, user: User, token: str) -> str | None:
    """The case whose image the reader may see under ``token`` (an item offered to them, in an open arm), else
    None. The first serving in a showing starts its reading time."""
    found = _item_of(session, user, token)
    if found is None or opens_at(session, study, found[1]) is not None or not _offered(session, *found):
        return None
    item = found[0]
    if item.shown_at is None:  # only the current, unanswered item waits for its image (answers need it served)
        item.shown_at = now()
        item.first_shown_at = item.first_shown_at or item.shown_at
        session.commit()
    return item.case_id


def current_assignment(session: Session, study: Study, user: User) -> Assignment | None:
    """The arm the reader is in now: the first of their arms with an unanswered item, if it is open."""
    for assignment in ensure_assignments(session, study, user):
        if session.scalars(_unanswered(session, assignment).limit(1)).first() is not None:
            return assignment if opens_at(session, study, assignment) is None else None
    return None


def open_model_output(session: Session, study: Study, user: User, token: str) -> str | None:
    """The case whose model output (the CAM) the reader may see under ``token``: an item offered to them in
    their current arm while that arm is aided; else None. Records that the CAM was opened."""
    found = _item_of(session, user, token)
    if found is None or found[1].arm != "aided" or not _offered(session, *found):
        return None
    current = current_assignment(session, study, user)
    if current is None or current.id != found[1].id:
        return None
    if not found[0].cam_opened:
        found[0].cam_opened = True
        session.commit()
    return found[0].case_id


def answer(session: Session, study: Study, user: User, token: str, arm: str, label: str, confidence: float,
           hidden_s: float = 0.0, idle_s: float = 0.0) -> dict:
    """Record the answer to the item ``token`` (committed before this returns); a change where the study
    allows it."""
    found = _item_of(session, user, token)
    if found is None or found[1].arm != arm:
        raise NotFound("no such case for this user")
    item, assignment = found
    case_id = item.case_id
    if opens_at(session, study, assignment) is not None:
        raise Conflict("this arm is not open yet (washout)")
    if label not in study.classes:
        raise ReadingError("label is not a class of this study")
    if not 0 <= confidence <= 100:
        raise ReadingError("confidence must lie between 0 and 100")
    previous = session.scalar(select(Answer).where(Answer.item_id == item.id))
    moment = now()
    if previous is not None:
        if not study.allow_changes:
            raise Conflict("answered already; this study does not allow changes")
        previous.label, previous.confidence, previous.changes = label, float(confidence), previous.changes + 1
        session.add(_event(study, user, case_id, arm, "change", item, previous))
        session.commit()
        return {"case": token, "arm": arm, "label": label, "changed": True}
    if item.shown_at is None:
        raise Conflict("this case's image has not been served in this showing: load it before answering"
                       if _offered(session, item, assignment) else "this case has not been shown yet")
    elapsed = max(0.0, (moment - item.shown_at).total_seconds())
    if not all(math.isfinite(value) and value >= 0 for value in (hidden_s, idle_s)) \
            or hidden_s + idle_s > elapsed + REPORT_SLACK_S:
        raise ReadingError("hidden_s and idle_s must be finite and together no longer than the showing")
    hidden = min(max(0.0, float(hidden_s)), elapsed)
    idle = min(max(0.0, float(idle_s)), elapsed - hidden)
    row = Answer(item_id=item.id, user_id=user.id, case_id=case_id, arm=arm, label=label,
                 confidence=float(confidence), reading_time_s=round(elapsed - hidden - idle, 3),
                 hidden_s=round(hidden, 3), idle_s=round(idle, 3), interrupted_s=round(item.interrupted_s, 3),
                 answered_at=moment)
    session.add(row)
    session.add(_event(study, user, case_id, arm, "answer", item, row))
    try:
        session.commit()
    except IntegrityError as error:  # the same item answered twice at once
        session.rollback()
        raise Conflict("answered already") from error
    return {"case": token, "arm": arm, "label": label, "changed": False, "reading_time_s": row.reading_time_s}


def _event(study: Study, user: User, case_id: str, arm: str, kind: str, item: Item, row: Answer) -> AuditEvent:
    payload = {"label": row.label, "confidence": row.confidence, "reading_time_s": row.reading_time_s,
               "hidden_s": row.hidden_s, "idle_s": row.idle_s, "interrupted_s": row.interrupted_s,
               "position": item.position, "repeat": item.repeat}
    if arm == "aided":
        item_case = object_session(item).get(Case, case_id)
        payload.update(model_version=study.model_version, model_probabilities=item_case.model_probabilities,
                       cam_shown=item_case.has_cam, cam_opened=item.cam_opened)
    return AuditEvent(user_id=user.id, case_id=case_id, arm=arm, event=kind, payload=payload)


def progress(session: Session, study: Study) -> list[dict]:
    """Per reader and arm: done/total, whether it is open, the median reading time and the seconds since the
    arm's last answer, so a coordinator sees who is stuck (for the admin and ``reading status``); 3 queries."""
    readers = session.execute(select(User.id, User.name, User.experience).where(User.role == READING_ROLE)
                              .order_by(User.id)).all()
    arms: dict[int, list[Assignment]] = {}
    for assignment in session.scalars(select(Assignment).order_by(Assignment.user_id, Assignment.sequence)):
        arms.setdefault(assignment.user_id, []).append(assignment)
    totals = dict(session.execute(select(Item.assignment_id, func.count()).group_by(Item.assignment_id)).all())
    times: dict[int, list[float]] = {}
    last: dict[int, dt.datetime] = {}
    for assignment_id, seconds, at in session.execute(
            select(Item.assignment_id, Answer.reading_time_s, Answer.answered_at)
            .join(Answer, Answer.item_id == Item.id)):
        times.setdefault(assignment_id, []).append(seconds)
        last[assignment_id] = max(at, last.get(assignment_id, at))
    moment, lines = now(), []
    for user_id, name, experience in readers:
        own = arms.get(user_id, [])
        for index, assignment in enumerate(own):
            seconds = times.get(assignment.id, [])
            latest = last.get(assignment.id)
            lines.append({
                "reader": name, "experience": experience, "arm": assignment.arm, "done": len(seconds),
                "total": int(totals.get(assignment.id, 0)),
                "open": _opening(study, own[index - 1] if index else None) is None,
                "median_reading_s": round(statistics.median(seconds), 1) if seconds else None,
                "since_last_answer_s": round((moment - latest).total_seconds()) if latest else None})
    return lines
