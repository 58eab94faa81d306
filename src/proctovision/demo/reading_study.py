"""The demo's ready reader study: a reading project on the test split, with two reader accounts and an admin.

The arms are unaided and aided (the demo's run: its probabilities and Grad-CAM overlays are computed here, once),
with no washout, so a reader can try both arms at once. Cases are shown as the model sees them: the content area
alone (``crop: content``), so the fake names burned into the frames' borders never reach a reader. Every password is drawn at random when the demo runs and
only printed, never stored in clear or fixed in the code, so no deployment can inherit a known password.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from proctovision.core.console import console
from proctovision.reading.project import add_user, init_project

FOLDER = "reading"
# (name, role, experience): the two readers mirror the simulated senior and junior readers of the comparison.
ACCOUNTS = (("reader-senior", "reader", "senior"), ("reader-junior", "reader", "junior"), ("admin", "admin", ""))


@dataclass
class DemoStudy:
    folder: Path
    passwords: dict[str, str] = field(repr=False)  # name -> password, for printing once
    roles: dict[str, str]
    seconds: float

    @property
    def readers(self) -> list[str]:
        return [name for name, role in self.roles.items() if role == "reader"]

    @property
    def serve_command(self) -> str:
        return f"proctovision reading serve {self.folder}"


def new_password() -> str:
    """16 random URL-safe characters (about 96 bits)."""
    return secrets.token_urlsafe(12)


def make_reader_study(out: Path, split_path: Path, task: str, run_dir: Path, seed: int = 0) -> DemoStudy:
    """Create ``out/reading``: a study on the test split (arms unaided,aided; washout 0; content area only) and
    its accounts."""
    started = time.perf_counter()
    folder = Path(out) / FOLDER
    project = init_project(folder, split_path, task, "study", split="test", arms=("unaided", "aided"),
                           model=run_dir, washout_days=0.0, seed=seed, crop_content=True)
    passwords, roles = {}, {}
    try:
        for name, role, experience in ACCOUNTS:
            passwords[name] = new_password()
            roles[name] = role
            add_user(project, name, role, passwords[name], experience)
    finally:
        project.close()
    return DemoStudy(folder, passwords, roles, time.perf_counter() - started)


def announce(study: DemoStudy) -> None:
    """Print the accounts (passwords made for this demo only) and the command that serves the study."""
    console.print(f"[bold]A reader study on the test split is ready in {study.folder}[/] "
                  f"(arms unaided and aided; made in {study.seconds:.0f} s). Demo accounts, passwords drawn now:",
                  soft_wrap=True)
    for name in study.readers:
        console.print(f"  reader {name}  password {study.passwords[name]}", markup=False, soft_wrap=True)
    admin = [name for name, role in study.roles.items() if role == "admin"]
    for name in admin:
        console.print(f"  admin  {name}  password {study.passwords[name]}", markup=False, soft_wrap=True)
    console.print(f"Serve it with: {study.serve_command}   (then open http://127.0.0.1:8000/)", markup=False,
                  soft_wrap=True)
