"""Shared pieces of the change-control tests: a small world of patients with a locked test set, a current model,
and candidates trained wrongly on purpose (shuffled labels; a patient of the locked test set)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import solid_image, tiny_run_config

COLOURS = {"normal": (90, 170, 90), "hemorrhoid": (130, 50, 120)}
PLAN = """\
modifications: [recalibrate, retrain]
locked_test: locked_test.csv
min_confirmed: 20
criteria:
  - metric: roc_auc
    non_inferior_margin: 0.02
  - metric: sensitivity
    at_least: 0.80
    ci_lower_at_least: 0.50
  - metric: brier
    at_most: 0.20
approvers: [admin]
"""


def split_lines(patients: int = 12, shots: int = 2) -> list[list[str]]:
    """Patients 0-5 train, 6-7 validation, 8 on test (the locked test set)."""
    rows = []
    for label in COLOURS:
        for patient in range(patients):
            split = "train" if patient < 6 else "val" if patient < 8 else "test"
            rows += [[f"img/{label}{patient}_{shot}.png", label, f"{label}{patient}", split] for shot in range(shots)]
    return rows


def write_split(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("path,label,patient_id,split\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def build_world(root: Path) -> dict[str, Path]:
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.workflows.training import train

    rows = split_lines()
    for name, label, patient, _ in rows:
        solid_image(root / name, COLOURS[label], noise_seed=int(patient.removeprefix(label)) * 10 + int(name[-5]))
    write_split(root / "split.csv", rows)
    (root / "locked_test.csv").write_text("path,label,patient_id\n" + "".join(
        f"{name},{label},{patient}\n" for name, label, patient, split in rows if split == "test"))
    (root / "change_plan.yaml").write_text(PLAN)
    current = train(tiny_run_config(root / "split.csv", root / "current", epochs=3, optim__lr=3e-3),
                    progress=False).root
    evaluate_run(current, split="test", n_resamples=100)
    rng = np.random.default_rng(1)
    labels = [row[1] for row in rows]
    shuffled = [[name, labels[i], patient, split] for i, (name, _, patient, split) in
                zip(rng.permutation(len(rows)), rows)]
    write_split(root / "shuffled.csv", shuffled)
    shuffled_run = train(tiny_run_config(root / "shuffled.csv", root / "shuffled", epochs=3, seed=2,
                                          optim__lr=3e-3), progress=False).root
    leaky = [[name, label, patient, "train" if patient == "hemorrhoid8" else split] for name, label, patient, split
             in rows]
    write_split(root / "leaky.csv", leaky)
    leaky_run = train(tiny_run_config(root / "leaky.csv", root / "leaky", epochs=1), progress=False).root
    return {"root": root, "current": current, "shuffled": shuffled_run, "leaky": leaky_run,
            "plan": root / "change_plan.yaml", "locked": root / "locked_test.csv"}
