"""Fixtures for the monitoring tests: the shared tiny run, evaluated once (it then has validation predictions),
and a fresh monitoring folder for it per test."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def evaluated_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from proctovision.workflows.evaluate import evaluate_run

    run = Path(shutil.copytree(run_dir, tmp_path_factory.mktemp("monitored") / "run"))
    evaluate_run(run, "test", n_resamples=10)
    return run


@pytest.fixture(scope="session")
def monitor_template(evaluated_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from proctovision.monitoring.folder import init_folder

    folder = tmp_path_factory.mktemp("monitor-template") / "monitor"
    init_folder(folder, evaluated_run).close()
    return folder


@pytest.fixture
def monitor_dir(monitor_template: Path, tmp_path: Path) -> Path:
    """A fresh, empty monitoring folder for the evaluated run (copied: init designs the limits once a session)."""
    return Path(shutil.copytree(monitor_template, tmp_path / "monitor"))


def answer(p: float, ood: bool = False, dark: bool = False):
    from proctovision.inference.recording import Answer

    return Answer({"normal": 1 - p, "hemorrhoid": p}, "hemorrhoid" if p >= 0.5 else "normal",
                  {"in_distribution": not ood, "ood_score": 5000.0 if ood else 1.0,
                   "quality": {"too_dark": dark, "overexposed": False, "blurred": False}}, 0.004)
