"""Both studies' grids run end to end with --quick on demo data, and a restarted grid redoes no finished run."""
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.data.synthetic.mri import generate_mri
from proctovision.workflows.grid import GridError, builtin_grid_path, load_grid
from proctovision.workflows.reproduce import DONE
from proctovision.artefacts.runs import RunPaths


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repro_data")
    generate_endoscopy(root, patients=40, images_per_patient=2)
    generate_mri(root, patients=20, slices_per_patient=2)
    return root


@pytest.mark.parametrize("study, tasks, runs", [("hemorrhoid", ("hemorrhoid", "ldrf"), 5), ("fistula", ("fistula",), 8)])
def test_quick_grid_runs_on_demo_data(study: str, tasks: tuple, runs: int, demo_data: Path, tmp_path: Path):
    out = tmp_path / study
    result = CliRunner().invoke(app, ["reproduce", study, "--data", str(demo_data), "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    assert f"run {len(tasks) * runs}/{len(tasks) * runs}" in result.output
    for task in tasks:
        table = (out / task / "study_table.md").read_text()
        assert "published" in table and "measured" in table
        assert len(list((out / task / "runs").glob(f"*/{DONE}"))) == runs
        assert (out / task / "comparison" / "comparison.csv").is_file()
        for name in ("models_and_readers.pdf", "models_and_readers.svg", "models_and_readers.png",
                     "study_table.csv", "study_table.tex", "study_table.docx", "comparison.docx"):
            assert (out / "paper" / task / name).is_file(), (task, name)
    index = (out / "paper" / "README.md").read_text()
    assert f"{tasks[0]}/models_and_readers.pdf" in index and f"{tasks[0]}/study_table.docx" in index
    files = sorted(str(path.relative_to(out)) for path in (out / "paper").rglob("*") if path.is_file())
    print(f"paper files of {study} --quick ({len(files)}):", *files, sep="\n  ")
    html = (out / "report.html").read_text()
    assert 'id="study"' in html and "SYNTHETIC" in html
    if study == "fistula":
        assert (out / "fistula" / "roc_all.png").stat().st_size > 5000
        assert "fistula/roc_all_backbones.pdf" in index and (out / "paper" / "fistula" / "roc_all_backbones.svg").is_file()
        assert "0.960" in (out / "fistula" / "study_table.md").read_text(), "ResNet-34 transfer's published AUC"


def test_restarted_grid_redoes_no_finished_run_and_resumes_an_interrupted_one(demo_data: Path, tmp_path: Path):
    grid = yaml.safe_load(builtin_grid_path("fistula").read_text())
    grid["runs"] = [
        {"name": "first", "overrides": {"model": {"backbone": "test_efficientnet", "mode": "scratch", "weights": "none"}}},
        {"name": "second", "overrides": {"model": {"backbone": "test_efficientnet", "mode": "scratch", "weights": "none"},
                                         "trainer": {"epochs": 2}}},
    ]
    grid["quick"] = {"data": {"image_size": 32}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    command = ["reproduce", str(path), "--data", str(demo_data), "--out", str(out), "--quick", "--resamples", "20"]
    assert CliRunner().invoke(app, command).exit_code == 0
    first, second = RunPaths(out / "fistula" / "runs" / "first"), RunPaths(out / "fistula" / "runs" / "second")
    untouched = first.last.stat().st_mtime_ns
    (second.root / DONE).unlink()  # as if killed after its last checkpoint, before evaluation finished
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "done before, skipped" in result.output and "resumed and finished" in result.output
    assert first.last.stat().st_mtime_ns == untouched, "a finished run was redone"
    assert (second.root / DONE).is_file()


def test_grid_with_a_misspelt_key_is_refused(tmp_path: Path):
    path = tmp_path / "g.yaml"
    path.write_text("name: x\ntasks: [{task: hemorrhoid, source: a.csv}]\nrunz: []\n")
    with pytest.raises(GridError, match="runz"):
        load_grid(path)
