"""The panels of the top-level `--help`, in the order a project meets them, and which command sits in which.

A group added with a name (`reading`, `plan`, `monitor`) names its panel itself:
``app.add_typer(monitor_app, name="monitor", rich_help_panel=AFTER_GO_LIVE)``.
"""
from __future__ import annotations

DATA = "Data"
TRAINING = "Training and evaluation"
STUDIES = "Studies and readers"
DEPLOYMENT = "Deployment"
AFTER_GO_LIVE = "After go-live"
PANELS = {
    DATA: ("ingest", "split"),
    TRAINING: ("train", "evaluate", "score", "crossval", "reproduce", "explain", "report", "demo"),
    STUDIES: ("compare", "agreement"),
    DEPLOYMENT: ("predict", "video", "export", "serve", "watch", "bench"),
    AFTER_GO_LIVE: ("audit",),
}
PANEL_OF = {command: panel for panel, commands in PANELS.items() for command in commands}
