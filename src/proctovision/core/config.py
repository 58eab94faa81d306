"""Typed configs for every run, checked by pydantic: a misspelt key is an error, never ignored."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proctovision.core import fileio
from proctovision.core.errors import UserError

Mode = Literal["frozen", "finetune", "scratch"]
Augmentation = Literal["none", "basic", "colour"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    split: Path = Field(description="split.csv written by `proctovision split`")
    fold: int | None = Field(None, description="for k-fold split files: the fold held out for validation")
    image_size: int | None = Field(None, ge=32, le=1024, description="defaults to the backbone's input size")
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)
    augmentation: Augmentation = "colour"
    cache_features: bool = Field(True, description="frozen mode: compute backbone features once, train the head")
    augmented_views: int = Field(1, ge=0, le=32, description="frozen + cache: augmented copies cached per image")
    train_copies: int = Field(1, ge=1, le=32, description="augmented copies of each training image per epoch "
                              "(the fistula study's colour jitter x4), training split only")
    pixel_cache: bool = Field(True, description="decode and resize each image once into a memory-mapped store")
    cache_dir: Path | None = Field(None, description="pixel cache folder; default: .pixel_cache beside the split")


class ModelConfig(Strict):
    backbone: str = "efficientnet_lite0"
    mode: Mode = "frozen"
    weights: str = Field("imagenet", description="imagenet, none, or a path to a weights file")
    head: Literal["study", "linear"] = Field("study", description="study: dense 1024-512-256-64-n with ReLU")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    allow_random_weights: bool = Field(False, description="let frozen/finetune start from random weights "
                                       "(only for plumbing checks such as `reproduce --quick` offline)")


class OptimConfig(Strict):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class TrainerConfig(Strict):
    epochs: int = Field(10, ge=1)
    seed: int = 0
    accelerator: str = "auto"
    devices: str | int = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: Literal["32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true"] | None = \
        Field(None, description="default: 16-mixed on GPU, 32 on CPU")
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    early_stopping_patience: int | None = Field(None, ge=1)
    deterministic: bool = True


class RunConfig(Strict):
    task: str = Field("hemorrhoid", description="a built-in task name or a task YAML file")
    data: DataConfig
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerConfig = TrainerConfig()
    out: Path = Path("runs/run")


class ConfigError(UserError, ValueError):
    """A config file that cannot be used; the message names the file and the key."""


class ConfigValueError(ConfigError):
    """An invalid value in a config or a flag: exit code 2, as for any other usage error."""

    exit_code = 2


def load_config(path: str | Path, overrides: dict | None = None) -> RunConfig:
    """Read a YAML run config, apply dotted-key overrides, validate strictly."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if isinstance(data, dict):
        data.pop("resolved", None)  # a run folder's record of what training resolved: its config.yaml is reusable
    return validate_config(apply_overrides(data, overrides or {}), path)


def apply_overrides(data: dict, overrides: dict) -> dict:
    """Dotted keys (``model.mode``) set into a nested dict: flags over a YAML file, or flags alone."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def validate_config(data: dict, source: object = "config") -> RunConfig:
    """Strict validation; the error names each field at fault and what it accepts."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigValueError(f"{source}: {format_validation_error(error)}") from error


def format_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = "unknown key (misspelt?)" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def dump_config(config: BaseModel, extra: dict | None = None) -> str:
    data = config.model_dump(mode="json")
    data.update(extra or {})
    return yaml.safe_dump(data, sort_keys=False)


def save_config(config: BaseModel, path: str | Path, extra: dict | None = None) -> Path:
    return fileio.write_text(path, dump_config(config, extra))
