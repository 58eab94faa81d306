"""Where folds and grid runs execute: in this process, or as jobs through submitit (SLURM, or local processes).

Each job is one resumable unit (a fold or a grid run) with its DONE marker, so a job killed by the scheduler is
simply submitted again; DDP inside a job is the run config's business, unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proctovision.core.errors import UserError

ExecutorKind = Literal["local", "slurm", "submitit-local"]
KINDS = ("local", "slurm", "submitit-local")


class ExecutorError(UserError, RuntimeError):
    """A job that failed or a scheduler that cannot be used; the message names the job and where its log is."""


@dataclass(frozen=True)
class ExecutorSettings:
    """``slurm``: one job per fold or grid run; the SLURM fields map to submitit's ``slurm_*`` parameters."""

    kind: ExecutorKind = "local"
    folder: Path = Path("jobs")
    partition: str | None = None
    time_min: int = 240
    gpus_per_node: int = 0
    cpus_per_task: int = 4
    mem_gb: int | None = None
    parallel: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_executor(settings: ExecutorSettings) -> Any | None:
    """None for in-process runs; else a submitit executor writing its logs and pickles under ``folder``."""
    if settings.kind not in KINDS:
        raise ExecutorError(f"--executor must be one of {', '.join(KINDS)} (got {settings.kind!r})")
    if settings.kind == "local":
        return None
    import submitit

    if settings.kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=settings.folder)
        executor.update_parameters(timeout_min=settings.time_min)
        return executor
    try:
        executor = submitit.AutoExecutor(folder=settings.folder, cluster="slurm")
    except RuntimeError as error:
        raise ExecutorError(f"--executor slurm: no SLURM here ({error}); run on a login node with sbatch") from error
    parameters: dict[str, Any] = {"timeout_min": settings.time_min, "cpus_per_task": settings.cpus_per_task,
                                  "gpus_per_node": settings.gpus_per_node, "name": "proctovision"}
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    if settings.mem_gb:
        parameters["mem_gb"] = settings.mem_gb
    if settings.parallel:
        parameters["slurm_array_parallelism"] = settings.parallel
    executor.update_parameters(**parameters, **settings.extra)
    return executor


def run_all(function: Callable[[Any], Any], items: Sequence[Any], executor: Any | None = None) -> list[Any]:
    """``function(item)`` for every item: one after another here, or as one job each; waits for all.

    A failed job is reported with its log folder after the others finish, so finished ones keep their markers.
    """
    if executor is None:
        return [function(item) for item in items]
    jobs = [executor.submit(function, item) for item in items]
    results, failures = [], []
    for item, job in zip(items, jobs):
        try:
            results.append(job.result())
        except Exception as error:  # a job's own exception, re-raised by submitit with its traceback
            failures.append(f"job {job.job_id} ({describe(item)}) failed: {last_error(job, error)} "
                            f"(log: {job.paths.stderr})")
            results.append(None)
    if failures:
        raise ExecutorError("; ".join(failures))
    return results


def last_error(job: Any, error: Exception) -> str:
    """The job's own exception line from its log (submitit's error text is mostly paths)."""
    try:
        lines = [line for line in Path(job.paths.stderr).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    found = [line for line in lines if not line.startswith((" ", "\t", "Traceback", "submitit"))]
    return (found[-1] if found else str(error).strip().splitlines()[0]).strip()


def describe(item: Any) -> str:
    for name in ("run_dir", "name"):
        if hasattr(item, name):
            return str(getattr(item, name))
    return type(item).__name__
