"""The update path under the change-control plan, on a monitoring folder: register the plan (a new version on each
edit), refit or retrain on confirmed cases, judge a candidate on the locked test set, record an approver's
approval, and tell serve which version alone it may serve. Every step goes in the change log."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from proctovision.core import fileio
from proctovision.core.errors import UserError
from proctovision.monitoring.change_plan import LoadedPlan, load_plan, parse_plan
from proctovision.monitoring.change_store import ChangeLog, ModelVersion, PlanVersion
from proctovision.monitoring.feedback import confirmed_cases
from proctovision.monitoring.folder import MARKER, REFERENCE
from proctovision.monitoring.store import PredictionRecord, now
from proctovision.monitoring.versions import version_sha256, weights_file


class ChangeError(UserError, ValueError):
    """An update the plan does not allow, or one that is not ready; the message says why."""


def log(session: object, event: str, account: str | None = None, **details: object) -> None:
    session.add(ChangeLog(event=event, account=account, at=now(), details=details or None))


def register_plan(monitor: object, path: str | Path) -> dict:
    """Register the plan; an unchanged file is a no-op, an edited one a new version. The deployed model becomes
    the first approved version when none is recorded yet."""
    loaded = load_plan(path)
    with monitor.sessions.begin() as session:
        latest = session.scalar(select(PlanVersion).order_by(PlanVersion.id.desc()).limit(1))
        if latest is not None and latest.sha256 == loaded.sha256:
            return {"version": latest.id, "sha256": latest.sha256, "new": False}
        plan = PlanVersion(sha256=loaded.sha256, locked_sha256=loaded.locked_sha256, path=str(loaded.path),
                           text=Path(path).read_text(encoding="utf-8"), at=now())
        session.add(plan)
        session.flush()
        log(session, "plan_registered", version=plan.id, sha256=plan.sha256, locked_sha256=plan.locked_sha256,
            replaces=latest.id if latest else None)
        if session.scalar(select(ModelVersion).limit(1)) is None:
            folder = Path(monitor.config["model"]["folder"])
            session.add(ModelVersion(sha256=monitor.model_sha256, weights_sha256=monitor.model_sha256,
                                     folder=str(folder), method="deployed", plan_version=plan.id, accepted=True,
                                     approved_by="(in service when the plan was registered)", approved_at=now()))
        return {"version": plan.id, "sha256": plan.sha256, "new": True}


def current_plan(monitor: object) -> tuple[int, LoadedPlan]:
    """The latest registered plan, read from its stored text; its locked test set must still be the pinned one."""
    with monitor.sessions() as session:
        latest = session.scalar(select(PlanVersion).order_by(PlanVersion.id.desc()).limit(1))
    if latest is None:
        raise ChangeError(f"{monitor.folder}: no change-control plan registered; run "
                          "`proctovision monitor plan DIR change_plan.yaml` first")
    plan = parse_plan(latest.text, latest.path)
    base = Path(latest.path).parent
    locked = plan.locked_test if plan.locked_test.is_absolute() else base / plan.locked_test
    if not locked.is_file() or fileio.sha256(locked) != latest.locked_sha256:
        raise ChangeError(f"{locked}: the locked test set is missing or changed since plan version {latest.id} "
                          "pinned it; restore it, or register a new plan version")
    return latest.id, LoadedPlan(plan=plan, path=Path(latest.path), sha256=latest.sha256, locked_test=locked,
                                 locked_sha256=latest.locked_sha256)


def approved_version(monitor: object) -> dict | None:
    """The version serve may serve: the latest approved one (None while no plan is registered)."""
    with monitor.sessions() as session:
        if session.scalar(select(PlanVersion).limit(1)) is None:
            return None
        row = session.scalar(select(ModelVersion).where(ModelVersion.approved_at.is_not(None))
                             .order_by(ModelVersion.approved_at.desc(), ModelVersion.id.desc()).limit(1))
    return None if row is None else {"sha256": row.sha256, "folder": row.folder, "approved_by": row.approved_by}


def check_serving(monitor: object, model: str | Path) -> None:
    """Once a plan exists, only the approved version may be served; anything else is refused with the reason."""
    approved = approved_version(monitor)
    if approved is not None and version_sha256(model) != approved["sha256"]:
        raise ChangeError(f"{model}: not the approved version of {monitor.folder} (approved: "
                          f"{approved['sha256'][:12]} in {approved['folder']}); under the change-control plan only "
                          "an accepted and approved version may be served")


def confirmed_answers(monitor: object) -> pd.DataFrame:
    """Confirmed cases of the version in service: prediction id, time, label and the recorded probabilities."""
    labels = confirmed_cases(monitor)
    query = select(PredictionRecord.id, PredictionRecord.at, PredictionRecord.probabilities).where(
        PredictionRecord.model_sha256 == monitor.model_sha256, PredictionRecord.status == "answered")
    with monitor.engine.connect() as connection:
        answers = pd.read_sql(query, connection)
    if labels.empty or answers.empty:
        return pd.DataFrame(columns=["prediction_id", "at", "label", "source"])
    joined = answers.merge(labels, left_on="id", right_on="prediction_id")
    probabilities = pd.DataFrame([p if isinstance(p, dict) else json.loads(p) for p in joined["probabilities"]])
    for name in monitor.classes:
        joined[f"prob_{name}"] = probabilities[name].to_numpy(float)
    return joined.drop(columns=["id", "probabilities"]).sort_values("at").reset_index(drop=True)


def ready(monitor: object, modification: str) -> tuple[int, LoadedPlan, pd.DataFrame]:
    version, loaded = current_plan(monitor)
    if not loaded.allows(modification):
        raise ChangeError(f"plan version {version} does not allow {modification} (modifications: "
                          f"{', '.join(loaded.plan.modifications)})")
    confirmed = confirmed_answers(monitor)
    if len(confirmed) < loaded.plan.min_confirmed:
        raise ChangeError(f"{len(confirmed)} confirmed cases; plan version {version} needs "
                          f"{loaded.plan.min_confirmed} before an update")
    return version, loaded, confirmed


def add_version(monitor: object, folder: Path, parent: str, method: str, plan_version: int, details: dict) -> str:
    sha = version_sha256(folder)
    with monitor.sessions.begin() as session:
        session.add(ModelVersion(sha256=sha, weights_sha256=fileio.sha256(weights_file(folder)), folder=str(
            Path(folder).resolve()), parent_sha256=parent, method=method, plan_version=plan_version,
            details=json.loads(json.dumps(details, default=str))))
        log(session, method, version=sha, parent=parent, plan_version=plan_version)
    return sha


def serving_folder(monitor: object) -> Path:
    return Path(approved_version(monitor)["folder"]) if approved_version(monitor) else Path(
        monitor.config["model"]["folder"])


def recalibrate_monitor(monitor: object, out: str | Path) -> dict:
    """``monitor recalibrate``: refit on every confirmed case of the version in service, as the plan says."""
    from proctovision.monitoring.recalibration import recalibrate

    version, loaded, confirmed = ready(monitor, "recalibrate")
    window = {"from": str(confirmed["at"].min()), "to": str(confirmed["at"].max())}
    record = recalibrate(serving_folder(monitor), confirmed, out, loaded.plan.recalibration, loaded.plan.threshold,
                         window)
    record["sha256"] = add_version(monitor, Path(out), record["lineage"]["parent_sha256"], "recalibrate", version,
                                   {"window": record["lineage"]["window"], "method": loaded.plan.recalibration})
    return record


def approve(monitor: object, candidate: str | Path, account: str) -> dict:
    """Record ``account``'s approval of an accepted candidate (the password was checked by the caller)."""
    version, loaded = current_plan(monitor)
    if account not in loaded.plan.approvers:
        raise ChangeError(f"account {account!r} is not an approver of plan version {version} "
                          f"({', '.join(loaded.plan.approvers)})")
    sha = version_sha256(candidate)
    with monitor.sessions.begin() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha))
        if row is None or not row.accepted:
            raise ChangeError(f"{candidate}: not accepted under the plan; run `proctovision monitor accept "
                              f"{candidate} --monitor {monitor.folder}` first")
        row.approved_by, row.approved_at = account, now()
        log(session, "approved", account=account, version=sha, plan_version=version)
    switch_model(monitor, Path(candidate), sha)
    return {"sha256": sha, "approved_by": account, "plan_version": version}


def switch_model(monitor: object, folder: Path, sha: str) -> None:
    """The folder now watches the approved version: its answers are recorded under its sha256 from here on."""
    marker = monitor.folder / MARKER
    config = json.loads(marker.read_text(encoding="utf-8"))
    config["model"].update(sha256=sha, folder=str(folder.resolve()))
    fileio.write_json(marker, config)
    reference = json.loads((monitor.folder / REFERENCE).read_text(encoding="utf-8"))
    reference.setdefault("model", {}).update(sha256=sha)
    fileio.write_json(monitor.folder / REFERENCE, reference)
    monitor.config, monitor.model_sha256 = config, sha


def version_history(monitor: object) -> list[dict]:
    with monitor.sessions() as session:
        rows = list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))
    return [{"sha256": row.sha256, "parent_sha256": row.parent_sha256, "method": row.method,
             "created_at": row.created_at.isoformat() + "Z", "accepted": row.accepted,
             "failed": (row.acceptance or {}).get("failed"), "approved_by": row.approved_by,
             "approved_at": row.approved_at.isoformat() + "Z" if row.approved_at else None} for row in rows]


def change_log(monitor: object) -> list[dict]:
    with monitor.sessions() as session:
        rows = list(session.scalars(select(ChangeLog).order_by(ChangeLog.id)))
    return [{"at": row.at.isoformat() + "Z", "event": row.event, "account": row.account, "details": row.details}
            for row in rows]


def accept_monitor(monitor: object, candidate: str | Path, out: str | Path | None = None, n_resamples: int = 1000,
                   seed: int = 0) -> dict:
    """``monitor accept``: the candidate against the version in service, on the pinned locked test set and, for
    information, on the kept confirmed images; the verdict goes in the version history and the change log."""
    from proctovision.monitoring.acceptance import accept
    from proctovision.monitoring.kept import kept_rows
    from proctovision.monitoring.leakage import LeakError

    version, loaded = current_plan(monitor)
    candidate = Path(candidate)
    try:
        record = accept(candidate, serving_folder(monitor), loaded, out, loaded.locked_sha256, n_resamples, seed,
                        kept_rows(monitor, confirmed_answers(monitor)))
    except LeakError as error:
        with monitor.sessions.begin() as session:
            log(session, "refused", candidate=str(candidate.resolve()), reason=str(error), plan_version=version)
        raise
    sha = record["candidate"]["sha256"]
    summary = {"passed": record["passed"], "failed": record["failed"], "at": record["at"],
               "criteria": record["criteria"], "record": str(Path(out or candidate / "acceptance") / "acceptance.json")}
    with monitor.sessions.begin() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha))
        if row is None:
            row = ModelVersion(sha256=sha, weights_sha256=fileio.sha256(weights_file(candidate)),
                               folder=str(candidate.resolve()), method="candidate", plan_version=version)
            session.add(row)
        row.accepted, row.acceptance = record["passed"], json.loads(json.dumps(summary, default=str))
        log(session, "accepted" if record["passed"] else "rejected", version=sha, failed=record["failed"],
            plan_version=version)
    return record


def retrain_monitor(monitor: object, out: str | Path, overrides: dict | None = None, run: str | Path | None = None,
                    progress: bool = False) -> dict:
    """``monitor retrain``: the parent run's data plus the kept confirmed images, locked-test patients excluded."""
    from proctovision.monitoring.kept import kept_rows
    from proctovision.monitoring.retrain import retrain

    version, loaded, confirmed = ready(monitor, "retrain")
    record = retrain(Path(run) if run else serving_folder(monitor), out, kept_rows(monitor, confirmed),
                     loaded.locked_test, overrides, progress)
    record["sha256"] = add_version(monitor, Path(out), record["parent_sha256"], "retrain", version, record)
    return record


def change_status(monitor: object) -> dict:
    """What status, the /monitor page and the report add: team figures, version history, plan versions."""
    from proctovision.monitoring.feedback import team_figures

    with monitor.sessions() as session:
        plans = [{"version": row.id, "sha256": row.sha256, "at": row.at.isoformat() + "Z"}
                 for row in session.scalars(select(PlanVersion).order_by(PlanVersion.id))]
    return {"team": team_figures(monitor), "versions": version_history(monitor), "plans": plans}
