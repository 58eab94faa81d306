"""A reading project: a folder with ``reading.json``, the case images and (by default) a SQLite database.

``init_project`` reads a manifest (optionally one split), gives every image an opaque random case id, renders
what readers will see (the content area alone where the manifest, ``--crop-content`` or the model says
``crop: content``), computes the aided arm's model outputs, and writes the study's settings. Users are
added with :func:`add_user`; each reader's assignments (orders) are made on first use (``assignments.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from proctovision.core import fileio
from proctovision.data.manifest import read_manifest
from proctovision.imaging.content_area import ContentAreaError, check_crop_rule
from proctovision.imaging.images import ImageReadError
from proctovision.reading import media
from proctovision.reading.db import Case, ReadingError, Study, User, name_key, open_engine, sqlite_url
from proctovision.reading.security import ROLES, hash_password
from proctovision.core.tasks import load_task

SETTINGS_FILE = "reading.json"
KINDS = ("labelling", "study")
ARMS = ("unaided", "aided")
ARM_ORDERS = ("unaided-first", "counterbalanced")
CONSENSUS = ("unanimous", "majority", "adjudication")
CASE_ORDERS = ("random", "uncertain-first")
KNOWN_COLUMNS = ("path", "label", "patient_id", "frame", "split")


@dataclass
class Project:
    root: Path
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Study | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)  # what init_project left out or warns of, one line each

    def session(self) -> Session:
        return self.sessions()

    def study(self, session: Session) -> Study:
        """The study's settings: fixed once made, so read once and kept (detached) instead of once per request."""
        if self.settings is None:
            study = session.scalar(select(Study))
            if study is None:
                return study
            session.expunge(study)
            self.settings = study
        return self.settings

    def close(self) -> None:
        self.engine.dispose()


def open_project(root: str | Path, migrate: bool = True) -> Project:
    """Open (and upgrade through Alembic) the project in ``root``."""
    root = Path(root)
    settings_file = root / SETTINGS_FILE
    if not settings_file.is_file():
        raise ReadingError(f"{root}: not a reading project (no {SETTINGS_FILE}); create one with `reading init`")
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    url = settings.get("db") or sqlite_url(root)
    engine, sessions = open_engine(url, migrate)
    return Project(root, url, engine, sessions)


def init_project(
    root: str | Path, manifest: str | Path, task: str, kind: str, split: str | None = None,
    arms: tuple[str, ...] | None = None, model: str | Path | None = None, washout_days: float = 0.0,
    arm_order: str = "unaided-first", repeats: int = 0, allow_changes: bool = False, consensus: str = "majority",
    readers_per_case: int | None = None, db: str | None = None, seed: int = 0, case_order: str = "random",
    crop_content: bool = False,
) -> Project:
    """Create the project folder and database; returns the opened project, with ``notes`` on cases left out
    (no content area to crop to) and on borders that look like burned-in text when no crop was asked for."""
    root = Path(root)
    if kind == "labelling" and arms is not None:
        raise ReadingError("--arms is for reader studies: a labelling project has no arms")
    arms = tuple(arms or ("unaided",))
    _check_choices(kind, arms, arm_order, consensus, case_order, model, repeats, washout_days, readers_per_case)
    if (root / SETTINGS_FILE).exists():
        raise ReadingError(f"{root}: already a reading project")
    task_def = load_task(task)
    rows = _manifest_rows(Path(manifest), split)
    crops = _crops(rows, Path(manifest))
    predictor = media.load_model(Path(model)) if model is not None else None
    if crop_content or (predictor is not None and media.model_crops(predictor)):
        crops = [True] * len(rows)
    if kind == "study":
        unknown = sorted(set(rows["label"]) - set(task_def.classes))
        if unknown:
            raise ReadingError(f"{manifest}: a reader study needs the reference label of every case; "
                               f"{len(unknown)} label value(s) are not classes of {task_def.name}")
    root.mkdir(parents=True, exist_ok=True)
    fileio.write_json(root / SETTINGS_FILE, {"format": 1, "db": db})
    try:
        project = open_project(root)
    except Exception:
        (root / SETTINGS_FILE).unlink()
        raise
    with project.session() as session:
        if session.scalar(select(func.count()).select_from(Study)):
            raise ReadingError("the database already holds a reading project; give an empty database")
        cases, shown = [], {}
        for position, (row, crop) in enumerate(zip(rows.itertuples(index=False), crops)):
            frame = "" if pd.isna(row.frame) else str(int(row.frame))
            extra = {column: str(getattr(row, column)) for column in rows.columns
                     if column not in KNOWN_COLUMNS and column.isidentifier()}
            case = Case(position=position, path=row.path, frame=frame, label=str(row.label),
                        patient_id=str(row.patient_id), extra=extra)
            case.id = _unique_token(session, {c.id for c in cases})
            try:
                shown[case.id] = media.render_case(root, case.id, case.path, int(frame) if frame else None, crop)
            except (ContentAreaError, ImageReadError) as error:  # a frame to crop is never shown whole instead
                project.notes.append(f"{row.path}: left out: {getattr(error, 'reason', error)}")
                continue
            cases.append(case)
        if not cases:
            raise ReadingError(f"{manifest}: no case could be prepared for reading")
        project.notes.extend(_text_warning(cases, shown))
        version = None
        if predictor is not None:
            version, probabilities, cams = media.model_outputs(
                root, Path(model), predictor, [(c.id, c.path, int(c.frame) if c.frame else None) for c in cases],
                shown)
            for case in cases:
                case.model_probabilities, case.has_cam = probabilities[case.id], case.id in cams
        session.add(Study(kind=kind, task=task_def.name, classes=list(task_def.classes), ordinal=task_def.ordinal,
                          arms=list(arms) if kind == "study" else ["labelling"], arm_order=arm_order,
                          washout_days=float(washout_days), repeats=int(repeats), allow_changes=allow_changes,
                          consensus=consensus, readers_per_case=readers_per_case, case_order=case_order,
                          seed=int(seed), model_version=version))
        session.add_all(cases)
        session.commit()
    return project


def _crops(rows: pd.DataFrame, manifest: Path) -> list[bool]:
    """Per row, whether the manifest's ``crop`` column (from ``ingest --crop-content``) says ``content``."""
    if "crop" not in rows.columns:
        return [False] * len(rows)
    crops = []
    for value in rows["crop"]:
        try:
            crops.append(check_crop_rule(None if pd.isna(value) else str(value).strip()) == "content")
        except ValueError as error:
            raise ReadingError(f"{manifest}: column crop: {error}") from error
    return crops


def _text_warning(cases: list[Case], shown: dict[str, media.Rendered]) -> list[str]:
    """One line when frames shown whole have a border that looks like burned-in text (names, ids, dates)."""
    texty = [case.path for case in cases if shown[case.id].border_text > media.TEXT_SHARE]
    if not texty:
        return []
    return [f"warning: {len(texty)} of {len(cases)} frame(s) are shown whole and their border has text-like "
            f"content (burned-in names or ids?), e.g. {texty[0]}; give --crop-content (or a manifest from "
            "`ingest --crop-content`) to show the content area only"]


def _unique_token(session: Session, taken: set[str]) -> str:
    from proctovision.reading.db import new_token

    while True:
        token = new_token()
        if token not in taken:
            return token


def _check_choices(kind: str, arms: tuple[str, ...], arm_order: str, consensus: str, case_order: str,
                   model: object, repeats: int, washout_days: float, readers_per_case: int | None) -> None:
    for value, allowed, name in ((kind, KINDS, "--kind"), (arm_order, ARM_ORDERS, "--order"),
                                 (consensus, CONSENSUS, "--consensus"), (case_order, CASE_ORDERS, "--case-order")):
        if value not in allowed:
            raise ReadingError(f"{name} {value!r}: use one of {', '.join(allowed)}")
    if not arms or len(set(arms)) != len(arms) or any(arm not in ARMS for arm in arms):
        raise ReadingError(f"--arms {','.join(arms)!r}: use unaided, aided or unaided,aided")
    if kind == "study" and "aided" in arms and model is None:
        raise ReadingError("the aided arm shows a model's output: give --model RUN_OR_EXPORT")
    if case_order == "uncertain-first" and model is None:
        raise ReadingError("--case-order uncertain-first needs --model")
    if repeats < 0 or washout_days < 0 or (readers_per_case is not None and readers_per_case < 1):
        raise ReadingError("--repeats and --washout-days must be at least 0, --readers-per-case at least 1")


def _manifest_rows(manifest: Path, split: str | None) -> pd.DataFrame:
    rows = read_manifest(manifest, required=("path",))
    if split is not None:
        if "split" not in rows.columns:
            raise ReadingError(f"{manifest}: no split column; give a split file or leave out --split")
        rows = rows[rows["split"] == split]
    if rows.empty:
        raise ReadingError(f"{manifest}: no images" + (f" in split {split!r}" if split else ""))
    for column in ("label", "patient_id"):
        if column not in rows.columns:
            rows[column] = ""
    if "frame" not in rows.columns:
        rows["frame"] = pd.NA
    return rows.reset_index(drop=True)


def add_user(project: Project, name: str, role: str, password: str, experience: str = "") -> int:
    """A new account with an argon2-hashed password; returns its id."""
    name = name.strip()
    if role not in ROLES:
        raise ReadingError(f"--role {role!r}: use one of {', '.join(ROLES)}")
    if not name or len(name) > 200:
        raise ReadingError("a user name needs 1 to 200 characters")
    with project.session() as session:
        if session.scalar(select(User).where(User.name_key == name_key(name))) is not None:
            raise ReadingError(f"user {name!r} exists already")
        user = User(name=name, role=role, experience=experience.strip(), password_hash=hash_password(password))
        session.add(user)
        session.commit()
        return user.id


def status(project: Project) -> dict:
    """Settings, cases, users and each reader's progress per arm (no identifiers of patients)."""
    from proctovision.reading.assignments import progress

    with project.session() as session:
        study = project.study(session)
        n_cases = session.scalar(select(func.count()).select_from(Case))
        users = session.scalars(select(User).order_by(User.id)).all()
        return {"kind": study.kind, "task": study.task, "classes": study.classes, "arms": study.arms,
                "cases": n_cases, "database": session.bind.dialect.name, "model_version": study.model_version,
                "washout_days": study.washout_days, "arm_order": study.arm_order, "repeats": study.repeats,
                "consensus": study.consensus if study.kind == "labelling" else None,
                "users": [{"name": user.name, "role": user.role, "experience": user.experience} for user in users],
                "progress": progress(session, study)}
