"""`proctovision demo`: the whole pipeline on generated data, the same calls a user makes on real data."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from proctovision.core import fileio
from proctovision.core.config import DataConfig, ModelConfig, RunConfig, TrainerConfig
from proctovision.core.console import console, progress_bar
from proctovision.data import ingest as ingest_lib
from proctovision.data.synthetic.endoscopy import CALIBRATION, SYNTHETIC_NOTE, generate_endoscopy
from proctovision.data.synthetic.mri import generate_mri
from proctovision.imaging.content_area import mark_content_crop
from proctovision.imaging.dicom import salt_for
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.pixel_cache import describe_folder
from proctovision.data.split import holdout_split
from proctovision.data.synthetic.readers import load_difficulty, simulate_readers
from proctovision.demo.after_go_live import TASKS as LOOP_TASKS, run_after_go_live
from proctovision.demo.reading_study import make_reader_study
from proctovision.workflows.compare import compare
from proctovision.workflows.evaluate import evaluate_run
from proctovision.reporting.report import build_report
from proctovision.artefacts.runs import RunError
from proctovision.core.tasks import load_task
from proctovision.workflows.training import train

MARKER = ".proctovision-demo"
READERS_NOTE = (
    "The two readers are simulated: the senior one is drawn to make fewer errors than the model on the test split, "
    "the junior one more, and both err mostly on the hardest images (not coin flips)."
)
MRI_NOTE = "MR slices carry fake patient tags, a coil bias field, partial-volume blur and Rician noise."


def banner(task: str) -> str:
    """What the demo's data and readers are, said before any figure is shown."""
    endoscopy = (f"Endoscopy frames are 1280x1024 JPEGs with fake burned-in names; the model sees only the content "
                 f"area (ingest --crop-content). {CALIBRATION}")
    data = MRI_NOTE if task == "fistula" else endoscopy
    return f"{SYNTHETIC_NOTE} {data} {READERS_NOTE}"


def prepare_output(out: Path) -> None:
    """Reuse a previous demo folder; never touch a folder the demo did not create."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise RunError(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_text(out / MARKER, SYNTHETIC_NOTE + "\n")


def run_demo(
    out: str | Path, task: str = "hemorrhoid", epochs: int = 30, patients: int = 60, images_per_patient: int = 4,
    backbone: str = "efficientnet_lite0", seed: int = 0, after_go_live: bool | None = False,
    loop_options: dict | None = None,
) -> dict:
    """The demo; with ``after_go_live`` (hemorrhoid only; None: wherever it applies) the loop of
    :mod:`proctovision.demo.after_go_live` follows on the demo's own model (``loop_options``: its sizes)."""
    out = Path(out)
    started = time.perf_counter()
    task_def = load_task(task)
    if after_go_live is None:
        after_go_live = task_def.name in LOOP_TASKS
    if after_go_live and task_def.name not in LOOP_TASKS:
        raise RunError(f"--after-go-live runs on the hemorrhoid task (its clinic stream is endoscopy frames), "
                       f"not on {task_def.name}")
    prepare_output(out)
    console.rule(f"[bold]ProctoVision demo: {task_def.name}[/] (SYNTHETIC data)")
    console.print(banner(task_def.name), style="bold yellow")
    manifest_path = out / "data" / f"manifest_{task_def.name}.csv"
    if task_def.name == "fistula":
        console.print("1/7 generating synthetic MR DICOM slices (16-bit, MR modality, synthetic patient tags)")
        generate_mri(out / "data", patients=patients, slices_per_patient=images_per_patient, seed=seed)
        source, labels = out / "data" / "mri", out / "data" / "fistula_labels.csv"
    else:
        console.print("1/7 generating synthetic endoscopy images")
        sources = generate_endoscopy(out / "data", patients=patients, images_per_patient=images_per_patient, seed=seed)
        if task_def.name not in sources:
            raise RunError(f"the demo covers tasks hemorrhoid, ldrf and fistula, not {task_def.name}")
        source, labels = sources[task_def.name], None
    console.print("2/7 ingest" + (" (DICOM folder labelled by SOPInstanceUID; patients pseudonymised)" if labels else ""))
    options = ingest_lib.DicomOptions(window="file", salt=salt_for(out / "data"))
    with progress_bar("Reading images") as update:
        result = ingest_lib.ingest(source, task_def, progress=update, labels=labels, dicom_options=options)
    if task_def.name != "fistula":
        console.print("    content area only (as `ingest --crop-content`): the burned-in names in the border never "
                      "reach the model")
        result.manifest, crop_failures = mark_content_crop(result.manifest)
        result.excluded.extend(ingest_lib.Exclusion(name, reason) for name, reason in crop_failures)
    ingest_lib.write_outputs(result, task_def, source, manifest_path)
    console.print("3/7 split by patient (70/15/15)")
    split_path = out / "data" / f"split_{task_def.name}.csv"
    write_manifest(holdout_split(read_manifest(manifest_path), 0.15, 0.15, seed), split_path)
    console.print(f"4/7 train {backbone} (frozen ImageNet backbone, study head) for {epochs} epochs")
    run_dir = out / "runs" / f"{task_def.name}_{backbone}"
    config = RunConfig(
        task=task_def.name,
        data=DataConfig(split=split_path, batch_size=32, augmentation="colour", augmented_views=2),
        model=ModelConfig(backbone=backbone, mode="frozen", weights="imagenet"),
        trainer=TrainerConfig(epochs=epochs, seed=seed, monitor="val_loss"),
        out=run_dir,
    )
    train(config)
    console.print(describe_folder(split_path.parent / ".pixel_cache"))
    console.print("5/7 evaluate on validation and test (threshold chosen on validation)")
    evaluate_run(run_dir, "val")
    test_entry = evaluate_run(run_dir, "test", cams=True)
    console.print("6/7 compare with two simulated readers (senior and junior), then the report")
    test_rows = read_manifest(split_path).query("split == 'test'")
    model_errors = round((1 - test_entry["metrics"]["accuracy"]["value"]) * test_entry["n_images"])
    readers_path = simulate_readers(
        test_rows, task_def.classes, load_difficulty(out / "data" / "difficulty.csv"), model_errors,
        out / "data" / "readers.csv", seed=seed,
    )
    readme = out / "data" / "README.txt"
    fileio.write_text(readme, (readme.read_text() if readme.is_file() else SYNTHETIC_NOTE + "\n") + READERS_NOTE + "\n")
    compare([run_dir], out / "comparison", readers=readers_path, split="test", simulated_readers=True)
    console.print("writing the report (Grad-CAM gallery included)")
    report = build_report([run_dir], out / "report.html", comparison=out / "comparison")
    console.print("7/7 a reader study on the test split for the reading room (arms unaided and aided)")
    study = make_reader_study(out, split_path, task_def.name, run_dir, seed)
    loop = None
    if after_go_live:
        loop = run_after_go_live(out, run_dir, split_path, study.folder, study.passwords["admin"], seed,
                                 **(loop_options or {}))
    elapsed = time.perf_counter() - started
    console.print(f"demo finished in {elapsed:.0f} s")
    return {
        "after_go_live": loop,
        "test": test_entry,
        "banner": banner(task_def.name),
        "seconds": elapsed,
        "reading": study,
        "paths": {
            "data": out / "data", "manifest": manifest_path, "quality report": out / "data" / "qc.md",
            "split": split_path, "run": run_dir, "metrics": run_dir / "metrics.json",
            "predictions": run_dir / "predictions.csv", "readers": readers_path,
            "comparison": out / "comparison" / "comparison.md", "report": report,
            "reading study": study.folder,
            **(loop.paths if loop else {}),
        },
    }
