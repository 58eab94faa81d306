"""The command line end to end on tiny data, and its one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY_BACKBONE
from typer.testing import CliRunner

from proctovision.cli import app

runner = CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proctovision", *args], capture_output=True, text=True, timeout=300,
    )


def test_ingest_split_train_evaluate(csv_source: Path, tmp_path: Path):
    manifest, split, run = tmp_path / "m.csv", tmp_path / "s.csv", tmp_path / "run"
    result = runner.invoke(app, ["ingest", str(csv_source), "--task", "hemorrhoid", "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "60 images, 20 patients" in result.output
    result = runner.invoke(app, ["split", str(manifest), "--val", "0.2", "--test", "0.2", "--out", str(split)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["train", str(split), "--task", "hemorrhoid", "--backbone", TINY_BACKBONE, "--mode", "scratch",
         "--weights", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--out", str(run)],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run), "--split", "test", "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "images/s" in result.output
    assert "test" in json.loads((run / "metrics.json").read_text())


def test_kfold_split_from_the_cli(csv_source: Path, tmp_path: Path):
    manifest = tmp_path / "m.csv"
    runner.invoke(app, ["ingest", str(csv_source), "--out", str(manifest)])
    result = runner.invoke(app, ["split", str(manifest), "--folds", "5", "--out", str(tmp_path / "f.csv")])
    assert result.exit_code == 0, result.output
    assert "fold" in (tmp_path / "f.csv").read_text().splitlines()[0]


def test_bad_inputs_give_one_line_errors_not_tracebacks(tmp_path: Path, csv_source: Path):
    cases = [
        ["ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.csv")],
        ["ingest", str(csv_source), "--task", "polyp", "--out", str(tmp_path / "m2.csv")],
        ["split", str(tmp_path / "missing.csv")],
        ["train", "--config", str(tmp_path / "none.yaml")],
        ["evaluate", str(tmp_path)],
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().startswith("error:"), result.stderr


def test_split_refusal_says_why(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,patient_id\na.png,normal,p1\nb.png,normal,p2\nc.png,hemorrhoid,p3\n")
    result = run_cli("split", str(manifest), "--out", str(tmp_path / "s.csv"))
    assert result.returncode == 1
    assert "at least 3 patients" in result.stderr and "hemorrhoid: 1" in result.stderr


def test_every_command_has_help_with_an_example():
    for command in ("ingest", "split", "train", "evaluate", "demo"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command


def test_invalid_values_name_the_field_and_what_it_accepts(split_file: Path, tmp_path: Path):
    for flags, field, allowed in (
        (["--mode", "frozn"], "model.mode", "'frozen', 'finetune' or 'scratch'"),
        (["--image-size", "16"], "data.image_size", "greater than or equal to 32"),
        (["--augmentation", "heavy"], "data.augmentation", "'none', 'basic' or 'colour'"),
        (["--precision", "17"], "trainer.precision", "'16-mixed'"),
    ):
        result = run_cli("train", str(split_file), "--out", str(tmp_path / "r"), *flags)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (flags, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert field in lines[0] and allowed in lines[0], lines[0]
        assert "Traceback" not in result.stderr


def test_readers_file_errors_name_the_row(tmp_path: Path):
    import pytest

    from proctovision.evaluation.readers import ReadersError, read_readers

    classes = ("normal", "hemorrhoid")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffpath,reader,label\na.png,r1,normal\n".encode())
    frame, _ = read_readers(bom, classes)
    assert list(frame["reader"]) == ["r1"]
    cases = {
        "path,reader\na.png,r1\n": "missing column(s) label",
        "path,reader,label\na.png,r1,normal\nb.png,r1,normal,extra\n": "row 2 (line 3) is malformed",
        "path,reader,label\na.png,r1,normal\nb.png,,normal\n": "row 2 has no reader",
        "path,reader,label\na.png,r1,normal\nb.png,r1,polyp\n": "row 2: label 'polyp'",
    }
    for number, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{number}.csv"
        path.write_text(text)
        with pytest.raises(ReadersError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            read_readers(path, classes)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_train_into_a_log_file_writes_one_line_per_epoch(split_file: Path, tmp_path: Path):
    """Outside a terminal (CI, nohup, SLURM) Lightning's live bar would redraw each epoch over several lines."""
    import os
    import re

    log = tmp_path / "train.log"
    with open(log, "w") as stream:
        done = subprocess.run(
            [sys.executable, "-m", "proctovision", "train", str(split_file), "--task", "hemorrhoid", "--backbone",
             TINY_BACKBONE, "--mode", "scratch", "--weights", "none", "--epochs", "3", "--image-size", "32",
             "--batch-size", "8", "--out", str(tmp_path / "run"), "--no-track"],
            stdout=stream, stderr=subprocess.STDOUT, timeout=300, env={**os.environ, "COLUMNS": "80"},
        )
    text = log.read_text()
    assert done.returncode == 0, text
    pattern = re.compile(r"^epoch (\d)/3  train_loss \d+\.\d{4}  val_loss \d+\.\d{4}  val_accuracy \d\.\d{4}  "
                         r"\d+\.\d s$")
    epochs = [int(match.group(1)) for line in text.splitlines() if (match := pattern.match(line))]
    assert epochs == [1, 2, 3], text
    assert "\r" not in text and "Epoch" not in text and "━" not in text, "no progress bar in a log file"


def test_a_terminal_keeps_the_live_progress_bar(split_file: Path, tmp_path: Path, monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from conftest import tiny_run_config
    from proctovision.artefacts.runs import RunPaths
    from proctovision.workflows.training import EpochLines, build_trainer

    config = tiny_run_config(split_file, tmp_path / "run")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    trainer = build_trainer(config, RunPaths(tmp_path / "run"), progress=True)
    assert isinstance(trainer.progress_bar_callback, RichProgressBar)
    assert not any(isinstance(callback, EpochLines) for callback in trainer.callbacks)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    trainer = build_trainer(config, RunPaths(tmp_path / "run"), progress=True)
    assert trainer.progress_bar_callback is None
    assert any(isinstance(callback, EpochLines) for callback in trainer.callbacks)


def test_plan_accuracy_writes_buderer_s_figures(tmp_path: Path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "accuracy", "--sensitivity", "0.90", "--specificity", "0.85", "--prevalence",
                                 "0.20", "--half-width", "0.10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert (plan["n_sensitivity"], plan["n_specificity"], plan["n"]) == (173, 62, 173)
    result = runner.invoke(app, ["plan", "accuracy", "--sensitivity", "0.95", "--delta", "0.10", "--power", "0.95",
                                 "--method", "exact", "--json", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text())["n_cases"] == 102, result.output


def test_plan_auc_gives_the_power_and_the_hanley_mcneil_se(tmp_path: Path):
    out = tmp_path / "auc.json"
    result = runner.invoke(app, ["plan", "auc", "--auc", "0.85", "--cases", "40", "--controls", "40", "--json",
                                 str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert abs(plan["se"] - 0.0437) < 5e-5 and 0 < plan["power"] <= 1
    result = runner.invoke(app, ["plan", "auc", "--auc", "0.73", "--power", "0.95", "--ratio", str(72 / 41),
                                 "--alpha", "0.009238584", "--json", str(out)])
    plan = json.loads(out.read_text())
    assert result.exit_code == 0 and (plan["cases"], plan["controls"]) == (41, 72), result.output


def test_plan_reader_study_from_a_pilot_sheet(tmp_path: Path):
    from test_power import van_dyke_sheets

    readers, truth = van_dyke_sheets(tmp_path, ("unaided", "aided"))
    out = tmp_path / "rs.json"
    result = runner.invoke(app, ["plan", "reader-study", "--pilot", str(readers), "--truth", str(truth),
                                 "--conditions", "unaided,aided", "--effect", "0.043800322", "--readers", "6",
                                 "--cases", "111", "--json", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert abs(plan["power"] - 0.5526116) < 5e-8  # RJafroc, SsPowerGivenJK(dataset02, J = 6, K = 111)
    assert {"cases", "power", "readers", "effect", "analysis", "variance_components"} <= set(plan)
    assert set(plan["variance_components"]) == {"k_star", "var_tr", "cov1", "cov2", "cov3", "var"}
    assert plan["case_unit"] == "case" and plan["pilot_source"]["readers"] == ["r1", "r2", "r3", "r4", "r5"]
    components = tmp_path / "vc.json"
    components.write_text(json.dumps(plan["variance_components"]))
    result = runner.invoke(app, ["plan", "reader-study", "--components", str(components), "--effect", "0.043800322",
                                 "--readers", "3,4,5,6,8,10", "--power", "0.8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    six = next(row for row in json.loads(out.read_text())["table"] if row["readers"] == 6)
    assert six["cases"] == 251 and round(six["power"], 3) == 0.801  # RJafroc's SsPowerTable, row 7


def test_plan_bad_input_is_one_sentence(tmp_path: Path):
    from test_power import van_dyke_sheets

    readers, truth = van_dyke_sheets(tmp_path)
    flat = tmp_path / "flat.json"
    flat.write_text('{"k_star": 100, "var_tr": 0, "cov1": 0.001, "cov2": 0, "cov3": 0, "var": 0.001}')
    cases = {
        ("accuracy", "--sensitivity", "1.2", "--specificity", "0.8", "--prevalence", "0.1", "--half-width", "0.1"):
            "sensitivity must be a proportion",
        ("reader-study", "--components", str(flat), "--effect", "0", "--readers", "5", "--cases", "100"):
            "an effect of 0",
        ("reader-study", "--components", str(flat), "--effect", "0.05", "--readers", "5", "--cases", "100"):
            "non-positive variance",
        ("reader-study", "--pilot", str(readers), "--truth", str(truth), "--conditions", "film", "--effect", "0.05",
         "--readers", "5", "--cases", "100"): "one reading condition",
    }
    from proctovision.evaluation.power import PlanError

    for args, message in cases.items():
        result = runner.invoke(app, ["plan", *args])
        assert isinstance(result.exception, PlanError), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception)
    result = run_cli("plan", *next(iter(cases)))  # the installed command: one line on stderr, no traceback
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_top_level_help_groups_every_command_into_a_panel():
    import typer

    from proctovision.cli import panels as cli

    group = typer.main.get_command(app)
    panels = {name: getattr(command, "rich_help_panel", None) for name, command in group.commands.items()}
    assert all(panels.values()), [name for name, panel in panels.items() if not panel]
    assert set(panels.values()) <= {cli.DATA, cli.TRAINING, cli.STUDIES, cli.DEPLOYMENT, cli.AFTER_GO_LIVE}
    assert panels["plan"] == cli.STUDIES and panels["ingest"] == cli.DATA and panels["audit"] == cli.AFTER_GO_LIVE
    help_text = runner.invoke(app, ["--help"], terminal_width=120).output
    assert "After go-live" in help_text and "Studies and readers" in help_text
    for command in ("plan accuracy", "plan auc", "plan reader-study"):
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command


def test_reading_init_prints_the_study_s_power_and_goes_on_below_0_8(tmp_path: Path):
    from reading_fixtures import tiny_manifest

    manifest = tiny_manifest(tmp_path / "data")
    components = tmp_path / "vc.json"
    components.write_text(json.dumps({"k_star": 114, "var_tr": 0.00020040252, "cov1": 0.00034661371,
                                      "cov2": 0.00034407483, "cov3": 0.00023902837, "var": 0.00080228827}))
    init = ["reading", "init", "--manifest", str(manifest), "--split", "test", "--task", "hemorrhoid", "--kind",
            "study", "--plan-effect", "0.0438"]
    result = runner.invoke(app, [*init[:2], str(tmp_path / "refused"), *init[2:], "--plan-components",
                                 str(components)])
    assert "needs --plan-readers" in str(result.exception) and not (tmp_path / "refused").exists()
    result = runner.invoke(app, [*init[:2], str(tmp_path / "study"), *init[2:], "--plan-readers", "6",
                                 "--plan-components", str(components)], terminal_width=200)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "power 0.10 to find an AUC difference of 0.0438 with 6 readers and 8 cases" in output
    assert "below 0.8" in output and "reading project in" in output
