"""Lines of `monitor status` for the change-control plan: overrides, who was right, the version history."""
from __future__ import annotations

from proctovision.core.console import console


def print_change_status(document: dict) -> None:
    """The status lines of the change-control plan: overrides, who was right, the version history."""
    team = document.get("team") or {}
    override = team.get("override") or {}
    if team.get("n_feedback"):
        low, high = override["ci"]
        console.print(f"feedback on {team['n_feedback']} answers; override rate {override['value']:.3f} "
                      f"({low:.3f}-{high:.3f}, Wilson 95% CI)")
        for name, entry in team["by_clinician"].items():
            console.print(f"  {name}: {entry['value']:.3f} of {entry['n']}", markup=False)
        right = team.get("disagreements") or {}
        if right.get("n"):
            console.print(f"disagreements with an outcome: {right['n']}; model right {right['model_right']['value']:.3f}"
                          f", clinician right {right['clinician_right']['value']:.3f}")
    for version in document.get("versions") or []:
        state = ("approved by " + version["approved_by"]) if version["approved_at"] else (
            "accepted" if version["accepted"] else "rejected" if version["accepted"] is False else "not judged")
        console.print(f"version {version['sha256'][:12]} ({version['method']}, {version['created_at'][:10]}): {state}",
                      markup=False)

