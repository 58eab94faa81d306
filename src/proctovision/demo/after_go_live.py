"""After go-live, on the demo's own model: the loop a clinic runs once the model is deployed, each step calling what
the CLI command printed beside it calls, everything under ``OUT/after_go_live``.

The demo's run is exported and a monitoring folder watches the export. A change-control plan is registered whose
locked test set is the demo's own test patients. A clinic's stream of fresh synthetic frames is recorded as
``predict --monitor`` records it: frames as the processor should give them, then frames at a quarter of the
resolution with heavy JPEG compression (a processor set wrong), which the OOD charts catch, then frames again once
the alarm is acknowledged. Pathology outcomes come in for the sound frames; the temperature and threshold are
refitted on them and the recalibrated version passes acceptance. Two candidates must not: one trained on shuffled
labels fails, naming its criteria; one trained on a fresh split of the demo's patients (which puts locked-test
patients into training, as in Study 004) is refused, naming the overlap. The demo's admin approves the
recalibrated version; ``monitor status`` and ``monitor report`` close the loop.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision.core import fileio
from proctovision.core.config import load_config
from proctovision.core.console import console
from proctovision.core.errors import UserError
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.split import holdout_split
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.deploy.export import export_run
from proctovision.inference.predictor import expand_paths, load_predictor
from proctovision.monitoring import change_control
from proctovision.monitoring.folder import init_folder, open_folder
from proctovision.monitoring.outcomes import import_outcomes
from proctovision.monitoring.report import write_report
from proctovision.monitoring.summary import status as monitor_status
from proctovision.workflows.predict import prediction_rows, record_rows, write_predictions
from proctovision.workflows.training import train

FOLDER = "after_go_live"
TASKS = ("hemorrhoid",)
# Written before go-live. The locked test set is small (the demo's 9 test patients): the sensitivity's CI bound is
# set low, and the Brier score judges calibration (a calibration slope on 36 images is too unstable to bound; it
# is undefined where a model separates them). roc_auc non-inferiority is what a model that learned nothing fails.
PLAN = """\
modifications: [recalibrate, retrain]
locked_test: locked_test.csv    # the demo's test patients; its sha256 is pinned at registration
min_confirmed: 40
criteria:
  - metric: roc_auc
    non_inferior_margin: 0.02
  - metric: sensitivity
    at_least: 0.75
    ci_lower_at_least: 0.50
  - metric: brier
    at_most: 0.20
approvers: [admin]
"""
SHIFT = "a quarter of the resolution and JPEG quality 15 (a processor set wrong)"


@dataclass
class LoopResult:
    """What the loop left, for the demo's summary and its test."""

    folder: Path
    streams: dict[str, int]
    alarms: dict[str, list[dict]]
    accepted: dict
    shuffled: dict
    refused: str
    approved: dict
    status: dict
    report: dict[str, Path]
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step


def command(line: str) -> None:
    """The command line a user types for the step that follows."""
    console.print(f"  $ proctovision {line}", markup=False, soft_wrap=True, style="cyan")


def write_plan(folder: Path, split_path: Path) -> Path:
    """change_plan.yaml and its locked test set: the demo's test rows (path, label, patient, image sha256)."""
    rows = read_manifest(split_path)
    locked = rows[rows["split"] == "test"].drop(columns="split")
    write_manifest(locked, folder / "locked_test.csv")
    return fileio.write_text(folder / "change_plan.yaml", PLAN)


def degrade(source: Path, target: Path) -> Path:
    """The frame as a processor set to a quarter of the resolution with heavy compression would give it."""
    with Image.open(source) as image:
        frame = image.convert("RGB")
    small = frame.resize((frame.width // 4, frame.height // 4)).resize(frame.size)
    return fileio.write_with(target, lambda path: small.save(path, format="JPEG", quality=15))


def clinic_streams(folder: Path, patients: int, images_per_patient: int, seed: int) -> dict[str, str]:
    """Fresh synthetic patients in three folders: ``before`` (40% of the patients, frames as generated),
    ``shifted`` (20%, degraded) and ``after`` (40%). Returns every frame's true label (by file name) and writes
    it to ``truth.csv``, the pathology the clinic will learn later."""
    generated = read_manifest(generate_endoscopy(folder / "generated", patients, images_per_patient, seed)[
        "hemorrhoid"])
    order = list(dict.fromkeys(generated["patient_id"]))
    first, second = round(0.4 * len(order)), round(0.6 * len(order))
    groups = {"before": order[:first], "shifted": order[first:second], "after": order[second:]}
    truth = {}
    for name, ids in groups.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for path, label in generated.loc[generated["patient_id"].isin(ids), ["path", "label"]].itertuples(False):
            target = folder / name / Path(path).name
            if name == "shifted":
                degrade(Path(path), target)
            else:
                Path(path).replace(target)
            truth[target.name] = label
    shutil.rmtree(folder / "generated")
    fileio.write_csv(folder / "truth.csv", pd.DataFrame({"file": list(truth), "label": list(truth.values())}))
    return truth


def predict_monitored(model: Path, monitor_folder: Path, frames: Path, out: Path) -> tuple[list[dict], list]:
    """``predict MODEL FRAMES --monitor DIR --out OUT``: rows with their prediction ids, and the alarms raised."""
    before = {alarm["id"] for alarm in alarms_of(monitor_folder)}
    monitor = open_folder(monitor_folder)
    monitor.check_model_folder(model)
    predictor = load_predictor(model)
    batch = predictor.predict_files(expand_paths([frames]), batch_size=16)
    rows = record_rows(monitor, batch, prediction_rows(batch.predictions))
    write_predictions(out, predictor.classes, rows, batch.errors)
    return rows, [alarm for alarm in alarms_of(monitor_folder) if alarm["id"] not in before]


def alarms_of(folder: Path) -> list[dict]:
    with open_folder(folder) as monitor:
        return monitor.alarms()


def shuffled_split(split_path: Path, out: Path, seed: int) -> Path:
    """The demo's training and validation rows with their labels permuted (the test patients left out)."""
    rows = read_manifest(split_path)
    rows = rows[rows["split"] != "test"].reset_index(drop=True)
    rows["label"] = np.random.default_rng(seed).permutation(rows["label"].to_numpy())
    return write_manifest(rows, out)


def train_candidate(run: Path, split: Path, out: Path, epochs: int, seed: int, augmentation: str | None = None) -> Path:
    """``train SPLIT --config RUN/config.yaml --epochs N --seed S [--augmentation A] --out OUT``: the parent's
    settings on other data."""
    overrides = {"data.split": str(split), "trainer.epochs": epochs, "trainer.seed": seed, "out": str(out)}
    if augmentation is not None:
        overrides["data.augmentation"] = augmentation
    return train(load_config(run / "config.yaml", overrides), progress=False).root


def check_approver(accounts: Path, user: str, password: str) -> None:
    """The password check of ``monitor approve``: the reading room's accounts (argon2)."""
    from proctovision.reading.project import open_project
    from proctovision.reading.security import SecuritySettings, authenticate

    project = open_project(accounts)
    try:
        with project.session() as session:
            if authenticate(session, user, password, "cli", SecuritySettings()) is None:
                raise UserError(f"{accounts}: wrong account name or password")
    finally:
        project.close()


def _alarm_line(alarm: dict) -> str:
    return f"alarm {alarm['id']} {alarm['signal']} after {alarm['after_predictions']} answers"


def _verdict(record: dict) -> None:
    """As ``monitor accept`` prints it: each criterion, then the verdict naming the failing criteria."""
    for result in record["criteria"]:
        value = "-" if result["value"] is None else f"{result['value']:.3f}"
        console.print(f"    {'pass' if result['passed'] else 'fail'} {result['metric']} {value}", markup=False)
    console.print("    accepted" if record["passed"] else
                  f"    not accepted; failing criteria: {'; '.join(record['failed'])}", markup=False, soft_wrap=True)


def _answered(name: str, rows: list, alarms: list) -> None:
    console.print(f"    {name}: {len(rows)} answers; " + ("; ".join(map(_alarm_line, alarms)) or "no alarm"),
                  markup=False)


@dataclass
class Loop:
    """The loop's folders under ``OUT/after_go_live`` and the demo's own pieces it starts from."""

    out: Path
    run: Path
    split: Path
    seed: int
    resamples: int

    @property
    def folder(self) -> Path:
        return self.out / FOLDER

    @property
    def deployed(self) -> Path:
        return self.folder / "deploy" / self.run.name

    @property
    def recalibrated(self) -> Path:
        return self.folder / "deploy" / f"{self.run.name}-r1"

    @property
    def monitor(self) -> Path:
        return self.folder / "monitoring"


def deploy_and_plan(loop: Loop) -> Path:
    console.print("a. export the model, watch it with a monitoring folder, register the change-control plan")
    command(f"export {loop.run} --out {loop.deployed}")
    export_run(loop.run, loop.deployed)
    command(f"monitor init {loop.monitor} --model {loop.deployed}")
    init_folder(loop.monitor, loop.deployed).close()
    plan = write_plan(loop.folder, loop.split)
    command(f"monitor plan {loop.monitor} {plan}")
    with open_folder(loop.monitor) as monitor:
        change_control.register_plan(monitor, plan)
    return plan


def acknowledge(loop: Loop, alarms: list[dict], note: str) -> None:
    for alarm in alarms:
        command(f'monitor ack {loop.monitor} {alarm["id"]} --note "{note}"')
        with open_folder(loop.monitor) as monitor:
            monitor.acknowledge(alarm["id"], note, "admin")


def clinic(loop: Loop, patients: int, images_per_patient: int) -> tuple[dict, dict, dict]:
    """The three runs of the clinic's stream, recorded; alarms of the sound frames before the shift are reviewed
    and acknowledged (a false alarm must not hide the shift's own)."""
    console.print(f"b. a clinic: {patients} fresh synthetic patients; the middle fifth at {SHIFT}")
    truth = clinic_streams(loop.folder / "clinic", patients, images_per_patient, loop.seed + 1)
    answered, alarms = {}, {}
    for name in ("before", "shifted", "after"):
        predictions, frames = loop.folder / f"predictions_{name}.csv", loop.folder / "clinic" / name
        command(f"predict {loop.deployed} {frames} --monitor {loop.monitor} --out {predictions}")
        answered[name], alarms[name] = predict_monitored(loop.deployed, loop.monitor, frames, predictions)
        _answered(name, answered[name], alarms[name])
        if name == "before":
            acknowledge(loop, alarms[name], "reviewed: frames as expected, no cause found")
        elif name == "shifted":
            acknowledge(loop, alarms[name], "processor reset to full resolution")
    return answered, alarms, truth


def update(loop: Loop, answered: dict, truth: dict) -> dict:
    console.print("c. pathology outcomes for the sound frames; recalibrate; accept on the locked test set")
    sound = answered["before"] + answered["after"]
    outcomes = fileio.write_csv(loop.folder / "outcomes.csv", pd.DataFrame({
        "prediction_id": [row["prediction_id"] for row in sound], "label": [truth[Path(row["path"]).name] for row in sound],
        "source": "pathology"}))
    command(f"monitor outcomes {loop.monitor} {outcomes}")
    with open_folder(loop.monitor) as monitor:
        import_outcomes(monitor, outcomes)
        command(f"monitor recalibrate {loop.monitor} --out {loop.recalibrated}")
        change_control.recalibrate_monitor(monitor, loop.recalibrated)
        command(f"monitor accept {loop.recalibrated} --monitor {loop.monitor}")
        record = change_control.accept_monitor(monitor, loop.recalibrated, n_resamples=loop.resamples, seed=loop.seed)
    _verdict(record)
    return record


def bad_candidates(loop: Loop, epochs: int) -> tuple[dict, Path, str, Path]:
    """A candidate trained on shuffled labels (judged) and one trained on a fresh split of the demo's patients
    (refused). Their split files sit beside the demo's, so they share its pixel cache."""
    console.print("d. two candidates that must not pass: shuffled labels; a fresh split that leaks test patients")
    candidates, config = loop.folder / "candidates", loop.run / "config.yaml"
    shuffled_csv = shuffled_split(loop.split, loop.split.with_name("split_shuffled_labels.csv"), loop.seed)
    shuffled_run = candidates / "shuffled_labels"
    command(f"train {shuffled_csv} --config {config} --epochs {epochs} --augmentation none --out {shuffled_run}")
    train_candidate(loop.run, shuffled_csv, shuffled_run, epochs, loop.seed, "none")
    command(f"monitor accept {shuffled_run} --monitor {loop.monitor}")
    with open_folder(loop.monitor) as monitor:
        shuffled = change_control.accept_monitor(monitor, shuffled_run, n_resamples=loop.resamples, seed=loop.seed)
    _verdict(shuffled)
    manifest = loop.split.with_name(loop.split.name.replace("split_", "manifest_", 1))
    leaky_csv = loop.split.with_name("split_reshuffled.csv")
    command(f"split {manifest} --seed {loop.seed + 1} --out {leaky_csv}")
    write_manifest(holdout_split(read_manifest(manifest), 0.15, 0.15, loop.seed + 1), leaky_csv)
    leaky_run = candidates / "reshuffled_split"
    command(f"train {leaky_csv} --config {config} --epochs 1 --augmentation none --out {leaky_run}")
    train_candidate(loop.run, leaky_csv, leaky_run, 1, loop.seed, "none")
    command(f"monitor accept {leaky_run} --monitor {loop.monitor}")
    refused = ""
    with open_folder(loop.monitor) as monitor:
        try:
            change_control.accept_monitor(monitor, leaky_run, n_resamples=loop.resamples, seed=loop.seed)
        except UserError as error:
            refused = str(error)
    console.print(f"    {refused or 'NOT refused'}", markup=False, soft_wrap=True)
    return shuffled, shuffled_run, refused, leaky_run


def approve_and_report(loop: Loop, accounts: Path, password: str) -> tuple[dict, dict, dict]:
    console.print("e. the demo's admin approves the recalibrated version; status and the surveillance report")
    command(f"monitor approve {loop.monitor} {loop.recalibrated} --user admin --auth {accounts}   "
            "(password prompted)")
    check_approver(accounts, "admin", password)
    status_json, report_dir = loop.folder / "status.json", loop.folder / "report"
    with open_folder(loop.monitor) as monitor:
        try:
            approved = change_control.approve(monitor, loop.recalibrated, "admin")
        except UserError as error:  # not accepted: the version in service stays
            approved = {"approved_by": None, "refused": str(error)}
            console.print(f"    {error}", markup=False, soft_wrap=True)
        command(f"monitor status {loop.monitor} --json {status_json}")
        document = monitor_status(monitor)
        fileio.write_json(status_json, document)
        command(f"monitor report {loop.monitor} --out {report_dir}")
        report = write_report(monitor, report_dir)
    for version in document["versions"]:
        state = f"approved by {version['approved_by']}" if version["approved_at"] else (
            "accepted" if version["accepted"] else "rejected" if version["accepted"] is False else "not judged")
        console.print(f"    version {version['sha256'][:12]} ({version['method']}): {state}", markup=False)
    return approved, document, report


def run_after_go_live(out: str | Path, run: Path, split_path: Path, accounts: Path, password: str, seed: int = 0,
                      clinic_patients: int = 25, images_per_patient: int = 4, shuffled_epochs: int = 5,
                      resamples: int = 1000) -> LoopResult:
    """The loop on the demo's run (see the module's docstring); ``accounts``: the demo's reading study, whose
    admin ``password`` approves."""
    started = time.perf_counter()
    loop = Loop(Path(out), Path(run), Path(split_path), seed, resamples)
    console.rule("[bold]After go-live[/]: monitoring and updates under a change-control plan (SYNTHETIC)")
    seconds: dict[str, float] = {}

    def timed(name: str, step: object, *args: object) -> object:
        begun = time.perf_counter()
        result = step(*args)
        seconds[name] = round(time.perf_counter() - begun, 1)
        return result

    plan = timed("deploy", deploy_and_plan, loop)
    answered, alarms, truth = timed("clinic", clinic, loop, clinic_patients, images_per_patient)
    accepted = timed("update", update, loop, answered, truth)
    shuffled, shuffled_run, refused, leaky_run = timed("candidates", bad_candidates, loop, shuffled_epochs)
    approved, document, report = timed("approve", approve_and_report, loop, accounts, password)
    elapsed = time.perf_counter() - started
    serving = (f"the approved version serves with: proctovision serve {loop.recalibrated} --monitor {loop.monitor}"
               if approved["approved_by"] else "the version in service stays")
    console.print(f"after go-live finished in {elapsed:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})"
                  f"; {serving}", markup=False, soft_wrap=True)
    return LoopResult(loop.folder, {name: len(rows) for name, rows in answered.items()}, alarms, accepted, shuffled,
                      refused, approved, document, report, elapsed,
                      {"monitoring": loop.monitor, "deployed": loop.deployed, "recalibrated": loop.recalibrated,
                       "shuffled": shuffled_run, "leaky": leaky_run, "plan": plan, "monitoring report": report["html"]},
                      seconds)
