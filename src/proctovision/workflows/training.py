"""Assemble and run Lightning's Trainer for one run: checkpoints, history, resume, feature cache."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import timm
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from torch.utils.data import DataLoader, Sampler, TensorDataset

from proctovision import __version__

from proctovision.core import fileio
from proctovision.core.config import RunConfig, save_config
from proctovision.data.datasets import ManifestDataset
from proctovision.data.manifest import read_manifest
from proctovision.data.pixel_cache import PixelCache
from proctovision.data.split import fold_to_split, leaking_patients
from proctovision.data.transforms import eval_transform, train_transform
from proctovision.models.module import ClassifierModule
from proctovision.models.registry import Preprocessing, get_backbone
from proctovision.models.weights import apply_weights, preprocessing_for, resolve_weights
from proctovision.artefacts.runs import RunError, RunPaths, ensure_writable
from proctovision.core.tasks import Task, load_task


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary name and renamed: a killed run never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        fileio.write_bytes(path, buffer.getvalue())


class HistoryWriter(Callback):
    """Writes history.csv (one row per epoch) atomically after every validation epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict] = []

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.path.is_file() and trainer.current_epoch > 0:
            with open(self.path, newline="", encoding="utf-8") as stream:
                self.rows = [row for row in csv.DictReader(stream) if int(row["epoch"]) < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row: dict = {"epoch": trainer.current_epoch}
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            value = trainer.callback_metrics.get(key)
            row[key] = round(float(value), 6) if value is not None else ""
        self.rows = [existing for existing in self.rows if int(existing["epoch"]) != row["epoch"]] + [row]
        fileio.write_csv(self.path, pd.DataFrame(self.rows))


class EpochLines(Callback):
    """One line per epoch on stdout, for logs that are not a terminal (CI, nohup, SLURM), where a live progress bar
    would be redrawn as several lines per epoch: epoch, train and validation loss, the monitored metric, seconds."""

    def __init__(self) -> None:
        self.started = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = []
        for key in ("train_loss", "val_loss", "val_accuracy"):
            value = trainer.callback_metrics.get(key)
            values.append(f"{key} {float(value):.4f}" if value is not None else f"{key} -")
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  " + "  ".join(values)
              + f"  {time.monotonic() - self.started:.1f} s", flush=True)


def load_split_frame(config: RunConfig, task: Task) -> pd.DataFrame:
    frame = read_manifest(config.data.split)
    if config.data.fold is not None:
        frame = fold_to_split(frame, config.data.fold)
    if "split" not in frame.columns:
        raise RunError(f"{config.data.split}: no split column; run `proctovision split` first (or give data.fold)")
    unknown = sorted(set(frame["label"]) - set(task.classes))
    if unknown:
        raise RunError(f"{config.data.split}: labels {unknown} are not classes of task {task.name}")
    leaks = leaking_patients(frame)
    if leaks:
        raise RunError(f"{config.data.split}: patient(s) {leaks[:5]} appear in more than one split")
    return frame


class EpochSeededSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same order as an uninterrupted one."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.size, self.seed, self.epoch = dataset, len(dataset), seed, 0
        if isinstance(dataset, ManifestDataset):
            dataset.seed_augmentation(seed)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch
        if isinstance(self.dataset, ManifestDataset):
            self.dataset.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class EpochSeeder(Callback):
    """Reseed the global RNGs (augmentation, dropout) from (seed, epoch) at each epoch start, for exact resume."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        L.seed_everything(self.seed * 1_000 + trainer.current_epoch, workers=True, verbose=False)


def make_loader(dataset: Any, batch_size: int, shuffle: bool, workers: int, seed: int = 0) -> DataLoader:
    """A training (shuffled) loader drops a last batch of one image: BatchNorm cannot train on a batch of one, and
    the shuffle leaves out a different image each epoch. Evaluation loaders keep every image."""
    sampler = EpochSeededSampler(dataset, seed) if shuffle else None
    lone_last = shuffle and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=lone_last)


@torch.inference_mode()
def compute_features(module: ClassifierModule, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features for every item of a loader, in order."""
    module.eval()
    features, labels = [], []
    for images, targets, _ in loader:
        features.append(module.features(images))
        labels.append(torch.as_tensor(targets))
    return torch.cat(features), torch.cat(labels)


def manifest_window(frame: pd.DataFrame) -> str | None:
    """The DICOM window ingest applied; one per data set, so predict and serve can apply the very same."""
    if "window" not in frame.columns:
        return None
    windows = sorted({str(value) for value in frame["window"] if str(value).strip() and str(value) != "nan"})
    if len(windows) > 1:
        raise RunError(f"the split mixes DICOM windows {windows}; ingest all files with one --window")
    return windows[0] if windows else None


def manifest_crop(frame: pd.DataFrame) -> str | None:
    """The content crop ingest recorded (``--crop-content``); one per data set, as the DICOM window."""
    if "crop" not in frame.columns:
        return None
    crops = sorted({str(value) for value in frame["crop"] if str(value).strip() and str(value) not in ("nan", "none")})
    if len(crops) > 1:
        raise RunError(f"the split mixes content crops {crops}; ingest all files with or all without --crop-content")
    return crops[0] if crops else None


def pixel_cache_for(frame: pd.DataFrame, preprocessing: Preprocessing, config: RunConfig) -> PixelCache | None:
    if not config.data.pixel_cache:
        return None
    folder = config.data.cache_dir or Path(config.data.split).parent / ".pixel_cache"
    return PixelCache(folder, frame, preprocessing.input_size, manifest_window(frame), crop=preprocessing.crop)


def transform_spec(preprocessing: Preprocessing, cache: PixelCache | None) -> Preprocessing:
    """The spec the transforms apply: a pixel cache has done the content crop already."""
    return preprocessing.with_crop(None) if cache is not None else preprocessing


def feature_loaders(
    module: ClassifierModule, train: pd.DataFrame, val: pd.DataFrame, task: Task, preprocessing: Preprocessing,
    config: RunConfig,
) -> tuple[DataLoader, DataLoader]:
    """Frozen mode: one backbone pass per image (and per cached augmented view), then the head trains alone."""
    data = config.data
    cache = pixel_cache_for(train, preprocessing, config)
    spec = transform_spec(preprocessing, cache)
    window = manifest_window(train)
    plain = ManifestDataset(train, task.classes, eval_transform(spec), window, pixel_cache=cache,
                            min_size=preprocessing.input_size)
    views = [compute_features(module, make_loader(plain, data.batch_size, False, data.num_workers))]
    if data.augmentation != "none":
        augmented = ManifestDataset(
            train, task.classes, train_transform(spec, data.augmentation), window, pixel_cache=cache,
            min_size=preprocessing.input_size,
        )
        augmented.seed_augmentation(config.trainer.seed)
        for view in range(data.augmented_views):
            augmented.epoch = view
            views.append(compute_features(module, make_loader(augmented, data.batch_size, False, data.num_workers)))
    train_x = torch.cat([view[0] for view in views])
    train_y = torch.cat([view[1] for view in views])
    val_cache = pixel_cache_for(val, preprocessing, config)
    val_set = ManifestDataset(val, task.classes, eval_transform(transform_spec(preprocessing, val_cache)), window,
                              pixel_cache=val_cache, min_size=preprocessing.input_size)
    val_x, val_y = compute_features(module, make_loader(val_set, data.batch_size, False, data.num_workers))
    seed = config.trainer.seed
    return (
        make_loader(TensorDataset(train_x, train_y), data.batch_size, True, 0, seed),
        make_loader(TensorDataset(val_x, val_y), data.batch_size, False, 0),
    )


def image_loaders(
    train: pd.DataFrame, val: pd.DataFrame, task: Task, preprocessing: Preprocessing, config: RunConfig
) -> tuple[DataLoader, DataLoader]:
    data = config.data
    window = manifest_window(train)
    train_cache, val_cache = pixel_cache_for(train, preprocessing, config), pixel_cache_for(val, preprocessing, config)
    train_set = ManifestDataset(
        train, task.classes, train_transform(transform_spec(preprocessing, train_cache), data.augmentation), window,
        pixel_cache=train_cache, copies=data.train_copies, min_size=preprocessing.input_size,
    )
    val_set = ManifestDataset(val, task.classes, eval_transform(transform_spec(preprocessing, val_cache)), window,
                              pixel_cache=val_cache, min_size=preprocessing.input_size)
    return (
        make_loader(train_set, data.batch_size, True, data.num_workers, config.trainer.seed),
        make_loader(val_set, data.batch_size, False, data.num_workers),
    )


def default_precision(config: RunConfig) -> str:
    if config.trainer.precision:
        return config.trainer.precision
    return "16-mixed" if torch.cuda.is_available() and config.trainer.accelerator in {"auto", "gpu", "cuda"} else "32"


def versions() -> dict[str, str]:
    return {
        "proctovision": __version__, "torch": str(torch.__version__), "timm": str(timm.__version__),
        "lightning": str(L.__version__), "python": platform.python_version(),
    }


def build_module(config: RunConfig, task: Task) -> tuple[ClassifierModule, Preprocessing, str]:
    """The model with its starting weights and the preprocessing those weights expect."""
    spec = get_backbone(config.model.backbone)
    weights = "none" if config.model.mode == "scratch" else config.model.weights
    if config.model.mode in {"frozen", "finetune"} and weights.lower() == "none" and not config.model.allow_random_weights:
        raise RunError(f"mode {config.model.mode} needs pretrained weights; use --mode scratch for random init")
    loaded = resolve_weights(spec, weights)
    preprocessing = preprocessing_for(spec, loaded, config.data.image_size)
    module = ClassifierModule(
        backbone=spec.name, num_classes=task.num_classes, mode=config.model.mode, head=config.model.head,
        dropout=config.model.dropout, image_size=preprocessing.input_size, optimizer=config.optim.optimizer,
        lr=config.optim.lr, weight_decay=config.optim.weight_decay, classes=task.classes,
    )
    if loaded is not None:
        apply_weights(module.backbone, loaded)
    return module, preprocessing, loaded.source if loaded else "random"


def train(config: RunConfig, resume: bool = False, progress: bool = True, logger: Any = None) -> RunPaths:
    """Train one run; with ``resume`` continue from checkpoints/last.ckpt when present; ``logger`` (e.g.
    Lightning's MLFlowLogger) receives the training curves."""
    paths = RunPaths(Path(config.out))
    ensure_writable(paths.root)
    fileio.remove_stale_temporaries(paths.root)
    if not resume and paths.last.exists():
        raise RunError(f"{paths.root} already holds a trained run; pass --resume to continue it or choose another --out")
    task = load_task(config.task)
    frame = load_split_frame(config, task)
    train_frame, val_frame = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    if train_frame.empty or val_frame.empty:
        raise RunError(f"{config.data.split}: needs both train and val rows (found {len(train_frame)} / {len(val_frame)})")
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    module, preprocessing, source = build_module(config, task)
    preprocessing = preprocessing.with_crop(manifest_crop(frame))
    resolved = {
        "task": task.model_dump(mode="json"), "preprocessing": preprocessing.with_window(manifest_window(frame)).to_dict(), "weights_source": source,
        "timm_name": module.spec.timm_name, "versions": versions(),
        "n_train_images": int(len(train_frame)), "n_val_images": int(len(val_frame)),
        "window": manifest_window(frame),
        "lineage": lineage(Path(config.data.split), paths.root),
    }
    save_config(config, paths.config, {"resolved": resolved})
    if config.model.mode == "frozen" and config.data.cache_features:
        train_loader, val_loader = feature_loaders(module, train_frame, val_frame, task, preprocessing, config)
    else:
        train_loader, val_loader = image_loaders(train_frame, val_frame, task, preprocessing, config)
    trainer = build_trainer(config, paths, progress, logger)
    ckpt = str(paths.last) if resume and paths.last.is_file() else None
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt)
    return paths


def lineage(split: Path, run_root: Path) -> dict:
    """Where the run's data came from, by path relative to the run (a moved project stays usable) and by
    sha256 (a changed file is noticed); the manifest when `split` recorded it beside the split file."""
    record = {"split": os.path.relpath(split.resolve(), run_root.resolve()), "split_sha256": fileio.sha256(split)}
    sidecar = split.with_name(split.name + ".lineage.json")
    if sidecar.is_file():
        manifest = (split.parent / json.loads(sidecar.read_text())["manifest"]).resolve()
        if manifest.is_file():
            record.update(manifest=os.path.relpath(manifest, run_root.resolve()), manifest_sha256=fileio.sha256(manifest))
    return record


def quiet_lightning() -> None:
    """Keep the console for what the user asked about: no hardware banners or tips, no warnings about
    modules left in eval mode on purpose (a frozen backbone)."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def build_trainer(config: RunConfig, paths: RunPaths, progress: bool, logger: Any = None) -> L.Trainer:
    quiet_lightning()
    mode = "min" if config.trainer.monitor == "val_loss" else "max"
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=paths.checkpoints, filename="best", monitor=config.trainer.monitor, mode=mode,
            save_last=True, save_top_k=1, enable_version_counter=False,
        ),
        HistoryWriter(paths.history),
        EpochSeeder(config.trainer.seed),
    ]
    if config.trainer.early_stopping_patience:
        callbacks.append(EarlyStopping(config.trainer.monitor, patience=config.trainer.early_stopping_patience, mode=mode))
    bar = progress and sys.stdout.isatty()  # a live bar in a terminal; in a log file one line per epoch instead
    if bar:
        callbacks.append(RichProgressBar(leave=True))
    elif progress:
        callbacks.append(EpochLines())
    return L.Trainer(
        max_epochs=config.trainer.epochs, accelerator=config.trainer.accelerator, devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes, strategy=config.trainer.strategy, precision=default_precision(config),
        deterministic=config.trainer.deterministic, logger=logger or False, callbacks=callbacks,
        default_root_dir=paths.root, enable_progress_bar=bar, enable_model_summary=False,
        plugins=[AtomicCheckpointIO()], log_every_n_steps=1, num_sanity_val_steps=0,
    )
