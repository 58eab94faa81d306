"""The change-control plan (FDA's PCCP in miniature), written before go-live: what may change, the locked test set
every candidate is judged on (pinned by sha256), how many confirmed cases an update needs, the acceptance
criteria, and who may approve. Read strictly: a misspelt key or a criterion that could never be judged is refused."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from proctovision.core import fileio
from proctovision.core.config import format_validation_error
from proctovision.core.errors import UserError

Modification = Literal["recalibrate", "retrain"]
RATE_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "recall", "ppv", "npv", "f1")
SCORE_METRICS = ("roc_auc", "average_precision", "brier", "ece")
CALIBRATION_METRICS = ("calibration_slope", "calibration_intercept")
METRICS = RATE_METRICS + SCORE_METRICS + CALIBRATION_METRICS
RULES = ("non_inferior_margin", "at_least", "ci_lower_at_least", "at_most", "between")


class PlanError(UserError, ValueError):
    """A change-control plan that cannot be used; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(Strict):
    """One acceptance criterion. ``non_inferior_margin``: the lower bound of the paired patient-bootstrap 95% CI of
    (candidate - current) must be at least ``-margin``; the others bound the candidate's own value or CI."""

    metric: str
    non_inferior_margin: float | None = Field(None, ge=0, le=1)
    at_least: float | None = None
    ci_lower_at_least: float | None = None
    at_most: float | None = None
    between: tuple[float, float] | None = None

    @field_validator("metric")
    @classmethod
    def known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; use one of {', '.join(METRICS)}")
        return value

    @field_validator("between")
    @classmethod
    def ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"between [{value[0]}, {value[1]}]: the lower bound comes first")
        return value

    @model_validator(mode="after")
    def has_rule(self) -> "Criterion":
        if all(getattr(self, rule) is None for rule in RULES):
            raise ValueError(f"{self.metric}: give at least one of {', '.join(RULES)}")
        if self.non_inferior_margin is not None and self.metric in CALIBRATION_METRICS:
            raise ValueError(f"{self.metric}: non_inferior_margin needs a paired difference; bound it with between")
        return self

    def rules(self) -> dict[str, object]:
        return {rule: getattr(self, rule) for rule in RULES if getattr(self, rule) is not None}


class ChangePlan(Strict):
    modifications: list[Modification] = Field(min_length=1)
    locked_test: Path
    min_confirmed: int = Field(ge=1)
    criteria: list[Criterion] = Field(min_length=1)
    approvers: list[str] = Field(min_length=1)
    recalibration: Literal["temperature", "logistic"] = Field(
        "temperature", description="temperature: refit T and the threshold; logistic: an intercept and slope on the "
                                   "logit (binary tasks), then the threshold")
    threshold: str | None = Field(None, description="threshold rule refitted on confirmed cases; default the model's")

    @field_validator("approvers")
    @classmethod
    def named(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("an approver's account name is empty")
        return value


class LoadedPlan(BaseModel):
    """A plan as read from disk: its content, where it lies, and the digests that pin it and its locked test set."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    plan: ChangePlan
    path: Path
    sha256: str
    locked_test: Path
    locked_sha256: str

    def allows(self, modification: str) -> bool:
        return modification in self.plan.modifications


def parse_plan(text: str, source: object = "change plan") -> ChangePlan:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PlanError(f"{source}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, dict):
        raise PlanError(f"{source}: expected a mapping of modifications, locked_test, min_confirmed, criteria, "
                        "approvers")
    try:
        return ChangePlan.model_validate(data)
    except ValidationError as error:
        raise PlanError(f"{source}: {format_validation_error(error)}") from error


def load_plan(path: str | Path) -> LoadedPlan:
    """Read and check a plan; ``locked_test`` is resolved against the plan's folder and must exist."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: file not found")
    plan = parse_plan(path.read_text(encoding="utf-8"), path)
    locked = plan.locked_test if plan.locked_test.is_absolute() else (path.resolve().parent / plan.locked_test)
    if not locked.is_file():
        raise PlanError(f"{path}: locked_test {plan.locked_test} not found (looked for {locked})")
    return LoadedPlan(plan=plan, path=path.resolve(), sha256=fileio.sha256(path), locked_test=locked.resolve(),
                      locked_sha256=fileio.sha256(locked))


def check_locked(loaded: LoadedPlan, pinned_sha256: str | None) -> None:
    """The locked test set must be the one pinned when the plan was registered: a changed file is refused."""
    current = fileio.sha256(loaded.locked_test)
    if pinned_sha256 and current != pinned_sha256:
        raise PlanError(f"{loaded.locked_test}: the locked test set changed since the plan was registered "
                        f"(sha256 {current[:12]}... != pinned {pinned_sha256[:12]}...); register a new plan version")
