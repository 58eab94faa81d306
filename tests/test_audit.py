"""The audit trail: one line per answer, nothing identifying, rotated by size, summarised by `proctovision audit`."""
import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.serving.audit import AuditError, AuditLog, log_files, parse_since, read_entries, summarise

MODEL = {"name": "hemorrhoid/resnet18/frozen", "version": "0.1", "sha256": "ab" * 32, "quantization": None}


def write(log: AuditLog, decision: str, in_distribution: bool | None = True, blurred: bool = False) -> dict:
    return log.record(input_sha256="cd" * 32, probabilities={"normal": 0.3, "hemorrhoid": 0.7}, threshold=0.5,
                      decision=decision, latency_s=0.012, source="serve",
                      guard={"in_distribution": in_distribution, "ood_score": 12.5,
                             "quality": {"too_dark": False, "overexposed": False, "blurred": blurred}})


def test_lines_hold_the_answer_and_rotate_by_size(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.log", MODEL, max_bytes=1500, backups=20)
    for index in range(12):
        write(log, "hemorrhoid" if index % 3 else "normal", in_distribution=index != 5, blurred=index == 7)
    log.close()
    files = log_files(tmp_path / "audit.log")
    assert len(files) > 2 and files[-1].name == "audit.log"
    assert all(path.stat().st_size <= 1500 for path in files)
    entries = [entry for entry, _ in read_entries(tmp_path / "audit.log")]
    assert len(entries) == 12
    assert [entry["decision"] for entry in entries] == ["hemorrhoid" if i % 3 else "normal" for i in range(12)]
    first = entries[0]
    assert set(first) >= {"time", "model", "input_sha256", "probabilities", "threshold", "decision",
                          "in_distribution", "ood_score", "quality", "latency_ms"}
    assert first["model"]["sha256"] == MODEL["sha256"] and first["latency_ms"] == 12.0
    summary = summarise(read_entries(tmp_path / "audit.log"))
    assert summary["answers"] == 12 and summary["decisions"] == {"normal": 4, "hemorrhoid": 8}
    assert summary["share_flagged"] == pytest.approx(2 / 12)


def test_since_filters_and_malformed_lines_are_located(tmp_path: Path):
    path = tmp_path / "audit.log"
    old = {"time": "2026-01-02T10:00:00+00:00", "decision": "normal", "in_distribution": False, "quality": {}}
    new = {"time": "2026-03-05T10:00:00+00:00", "decision": "hemorrhoid", "in_distribution": True, "quality": {}}
    path.write_text(json.dumps(old) + "\n{not json\n" + json.dumps(new) + "\n")
    summary = summarise(read_entries(path), parse_since("2026-02-01"))
    assert summary["answers"] == 1 and list(summary["days"]) == ["2026-03-05"]
    assert summary["malformed_lines"] == ["audit.log:2"]
    assert parse_since("7d") > dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7, minutes=1)
    with pytest.raises(AuditError, match="--since"):
        parse_since("last tuesday")


def test_audit_command_prints_days_share_flagged_and_decisions(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.log", MODEL)
    for decision, inside in (("normal", True), ("hemorrhoid", False), ("hemorrhoid", True), ("hemorrhoid", True)):
        write(log, decision, inside)
    log.close()
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "audit.log"), "--since", "1d",
                                      "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "4 answer(s); 25.0% flagged" in result.output
    assert json.loads((tmp_path / "s.json").read_text())["decisions"] == {"normal": 1, "hemorrhoid": 3}
    missing = CliRunner().invoke(app, ["audit", str(tmp_path / "none.log")])
    assert missing.exit_code != 0
