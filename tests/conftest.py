"""Fixtures that build tiny data on the fly; nothing here touches the network."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

TINY_BACKBONE = "test_efficientnet"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/run installs it)"
)


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[object]:
    """Debian's headless Chromium through Playwright (never a browser Playwright downloads), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + list(extra_args),
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(app: object, extra_args: tuple[str, ...] = ()) -> Iterator[tuple[object, str]]:
    """The app served on a free loopback port, and a Chromium page to open it with."""
    from proctovision.serving.background import running_server

    with running_server(app) as url, chromium(extra_args) as browser:
        yield browser.new_page(), url


def solid_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (48, 40), noise_seed: int = 0) -> Path:
    """A small picture of one colour with mild noise, so classes are learnable by colour."""
    rng = np.random.default_rng(noise_seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """normal/ (green-ish) and hemorrhoid/ (purple-ish) folders, 12 images each, patient in the file name."""
    root = tmp_path / "folders"
    for label, colour in (("normal", (90, 170, 90)), ("hemorrhoid", (130, 50, 120))):
        for index in range(12):
            solid_image(root / label / f"P{label[0]}{index // 2:02d}_{index}.png", colour, noise_seed=index)
    return root


@pytest.fixture
def csv_source(tmp_path: Path) -> Path:
    """A CSV manifest with 10 patients per class, 3 images each, paths relative to the CSV."""
    root = tmp_path / "csvdata"
    lines = ["path,label,patient_id"]
    for label, colour in (("normal", (90, 170, 90)), ("hemorrhoid", (130, 50, 120))):
        for patient in range(10):
            for shot in range(3):
                name = f"img/{label}_{patient}_{shot}.png"
                solid_image(root / name, colour, noise_seed=patient * 10 + shot)
                lines.append(f"{name},{label},{label[:3]}-{patient}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


@pytest.fixture
def manifest_file(tmp_path: Path, csv_source: Path) -> Path:
    """The CSV source ingested as the hemorrhoid task: work/manifest.csv."""
    from proctovision.data.ingest import ingest, write_outputs
    from proctovision.core.tasks import load_task

    task = load_task("hemorrhoid")
    manifest = tmp_path / "work" / "manifest.csv"
    write_outputs(ingest(csv_source, task), task, csv_source, manifest)
    return manifest


@pytest.fixture
def split_file(tmp_path: Path, manifest_file: Path) -> Path:
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split

    manifest = manifest_file
    split = tmp_path / "work" / "split.csv"
    write_manifest(holdout_split(read_manifest(manifest), 0.2, 0.2, seed=0), split)
    return split


def tiny_run_config(split: Path, out: Path, **changes):
    """A run config for a ~100k-parameter timm model on 32 px images: seconds on a CPU."""
    from proctovision.core.config import DataConfig, ModelConfig, RunConfig, TrainerConfig

    data = DataConfig(split=split, image_size=32, batch_size=8, augmentation="basic", augmented_views=1)
    model = ModelConfig(backbone=TINY_BACKBONE, mode=changes.pop("mode", "scratch"), weights="none", head="study")
    trainer = TrainerConfig(epochs=changes.pop("epochs", 2), seed=changes.pop("seed", 0))
    config = RunConfig(task="hemorrhoid", data=data, model=model, trainer=trainer, out=out)
    for key, value in changes.items():
        section, field = key.split("__")
        setattr(getattr(config, section), field, value)
    return config


def own_run(run_dir: Path, tmp_path: Path) -> Path:
    """A test's own copy of the shared run, for steps that add to a run folder (an export fits its OOD detector)."""
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "own_run"))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    lines = ["path,label,patient_id"]
    for label, colour in (("normal", (90, 170, 90)), ("hemorrhoid", (130, 50, 120))):
        for patient in range(5):
            solid_image(root / f"{label}{patient}.png", colour, noise_seed=patient)
            lines.append(f"{label}{patient}.png,{label},{label}{patient}")
    from proctovision.data.ingest import ingest, write_outputs
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split
    from proctovision.core.tasks import load_task

    (root / "src.csv").write_text("\n".join(lines) + "\n")
    task = load_task("hemorrhoid")
    write_outputs(ingest(root / "src.csv", task), task, root / "src.csv", root / "m.csv")
    write_manifest(holdout_split(read_manifest(root / "m.csv"), 0.2, 0.2, 0), root / "s.csv")
    from proctovision.workflows.training import train

    return train(tiny_run_config(root / "s.csv", root / "run", epochs=1), progress=False).root


os.environ.setdefault("PROCTOVISION_TRACK", "0")  # MLflow logging is tested on purpose in test_tracking.py


@pytest.fixture(scope="session")
def change_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A locked test set, a current model and two wrongly trained candidates (see monitoring_fixtures)."""
    from change_fixtures import build_world

    return build_world(tmp_path_factory.mktemp("change_world"))
