"""The input-appearance signal: channel means recorded per answer, a reference from the validation split (run or
export), CUSUM charts that catch a processor's colour cast, and monitoring folders made before it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import postgres  # noqa: F401
from proctovision.core import fileio
from proctovision.inference.recording import Answer
from proctovision.monitoring import appearance, signals
from proctovision.monitoring.folder import open_folder
from proctovision.monitoring.summary import status

VALIDATION = {"red": (140.0, 22.0), "green": (77.0, 10.0), "blue": (79.0, 9.0)}  # the demo's lit-area levels


def figures_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"appearance_{name}": rng.normal(mean, sd, n) for name, (mean, sd) in VALIDATION.items()})


def image_answer(red: float, green: float, blue: float) -> Answer:
    return Answer({"normal": 0.7, "hemorrhoid": 0.3}, "normal",
                  {"in_distribution": True, "ood_score": 1.0,
                   "quality": {"too_dark": False, "overexposed": False, "blurred": False,
                               "red": red, "green": green, "blue": blue}}, 0.004)


def with_figures(folder: Path, n: int = 60) -> Path:
    """A monitoring folder whose reference carries appearance figures of n validation images (the shared tiny run
    has only two, too few to chart)."""
    profile = json.loads((folder / "reference.json").read_text())
    profile["appearance"] = appearance.reference_figures(figures_rows(n))
    config = json.loads((folder / "monitor.json").read_text())
    config["design"] = signals.design(profile, config["design"]["alarms_per_10000"], config["design"]["window"])
    fileio.write_json(folder / "reference.json", profile)
    fileio.write_json(folder / "monitor.json", config)
    return folder


def test_the_standardisation_uses_the_published_chi_square_and_t_quantiles() -> None:
    # n = 20: chi-square(19) 2.5% point 8.907 and t(19) 97.5% point 2.093 (standard tables)
    figures = {"n": 20, "channels": {"red": {"mean": 100.0, "sd": 10.0}}}
    spec = appearance.standardisation(figures, "red")
    assert spec["scale"] == pytest.approx(10 * np.sqrt(19 / 8.907), abs=2e-3)
    assert spec["allowance"] == pytest.approx(2.093 * 10 / np.sqrt(20) / spec["scale"], abs=2e-4)
    # 60 images of 9 patients: the patient is the unit; chi-square(8) 2.5% point 2.180, t(8) 97.5% point 2.306
    spec = appearance.standardisation({**figures, "n": 60, "units": 9}, "red")
    assert spec["scale"] == pytest.approx(10 * np.sqrt(8 / 2.180), abs=2e-3)
    assert spec["allowance"] == pytest.approx(2.306 * 10 / 3 / spec["scale"], abs=2e-4)


@pytest.fixture(scope="module")
def charted_template(monitor_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_figures(Path(shutil.copytree(monitor_template, tmp_path_factory.mktemp("charted") / "monitor")))


def test_six_one_sided_charts_share_the_false_alarm_budget(monitor_template: Path, charted_template: Path) -> None:
    plain = json.loads((monitor_template / "monitor.json").read_text())["design"]  # two validation images: no charts
    assert not plain["appearance"]["available"] and plain["appearance"]["reason"] == "too_few"
    design = json.loads((charted_template / "monitor.json").read_text())["design"]
    names = [name for name in design["charts"] if appearance.is_appearance(name)]
    assert len(names) == 6 and design["appearance"]["available"]
    assert design["in_control_arl_per_chart"] == pytest.approx(plain["in_control_arl_per_chart"]
                                                               * (len(plain["charts"]) + 6) / len(plain["charts"]))
    for name in names:
        assert design["charts"][name]["arl0"] >= 0.95 * design["in_control_arl_per_chart"]


def test_a_colour_cast_raises_the_appearance_alarm_and_an_unchanged_stream_does_not(charted_template: Path,
                                                                                      tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with open_folder(shutil.copytree(charted_template, tmp_path / "monitor")) as monitor:
        recorder = monitor.recorder("serve", monitor.model_sha256)
        draws = {name: rng.normal(mean, sd, 400) for name, (mean, sd) in VALIDATION.items()}
        recorder.record([image_answer(*values) for values in zip(draws["red"], draws["green"], draws["blue"])])
        recorder.close()
        assert not [alarm for alarm in monitor.alarms() if appearance.is_appearance(alarm["signal"])]
        stored = monitor.answers()
        assert stored["appearance_red"].to_numpy() == pytest.approx(draws["red"])
        recorder = monitor.recorder("serve", monitor.model_sha256)  # another processor: x1.3 with a warm cast
        recorder.record([image_answer(r * 1.62, g * 1.23, b * 0.97) for r, g, b in
                         zip(draws["red"][:40], draws["green"][:40], draws["blue"][:40])])
        recorder.close()
        raised = {alarm["signal"]: alarm for alarm in monitor.alarms(open_only=True)}
        assert "appearance_red_high" in raised and 400 < raised["appearance_red_high"]["after_predictions"] <= 420
        assert "appearance_red_high" in {alarm["signal"] for alarm in status(monitor)["alarms"]}
        monitor.acknowledge(raised["appearance_red_high"]["id"], "processor replaced; white balance redone")
        assert not monitor.alarms(open_only=True) or "appearance_red_high" not in {
            alarm["signal"] for alarm in monitor.alarms(open_only=True)}


def test_the_reference_reads_the_figures_that_evaluate_and_export_write(evaluated_run: Path, tmp_path: Path) -> None:
    from proctovision.artefacts.runs import read_run
    from proctovision.deploy.export import write_validation
    from proctovision.monitoring.reference import validation_rows

    val = pd.read_csv(evaluated_run / "predictions.csv").query("split == 'val'")
    # the tiny run's images are one colour each, (90, 170, 90) or (130, 50, 120), with noise of sd 12
    for _, row in val.iterrows():
        colour = (90, 170, 90) if row["label"] == "normal" else (130, 50, 120)
        assert [row[f"appearance_{name}"] for name in appearance.CHANNELS] == pytest.approx(colour, abs=4)
    write_validation(read_run(evaluated_run), tmp_path)
    exported = pd.read_csv(tmp_path / "validation.csv")
    assert set(appearance.COLUMNS) <= set(exported.columns) and "path" not in exported.columns
    assert exported["appearance_patients"].tolist() == [val["patient_id"].nunique()] * len(val)
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "model_card.json").write_text("{}")
    rows = validation_rows(tmp_path)
    assert rows["appearance_green"].tolist() == pytest.approx(val["appearance_green"].tolist(), abs=1e-3)
    small = appearance.reference_figures(rows)  # two images: recorded, said, not charted
    assert not small["available"] and "2 images of 2 patients" in small["note"]
    many = pd.concat([rows] * 10, ignore_index=True)
    assert not appearance.reference_figures(many)["available"]  # 20 images, still 2 patients
    many = appearance.reference_figures(many.assign(appearance_patients=5))
    assert many["available"] and many["n"] == 10 * len(rows) and many["units"] == 5
    assert many["channels"]["green"]["mean"] == pytest.approx(val["appearance_green"].mean(), abs=1e-3)


def test_a_reference_without_figures_says_so_in_the_design_and_the_report(monitor_dir: Path) -> None:
    from proctovision.core.i18n import gettext_for
    from proctovision.monitoring.report import methods

    old = appearance.reference_figures(pd.DataFrame({"label": ["normal"], "prob_normal": [0.9]}))
    assert not old["available"] and "re-run `proctovision evaluate`" in old["note"]
    config = json.loads((monitor_dir / "monitor.json").read_text())
    config["design"].pop("appearance", None)  # a folder made before the signal existed
    fileio.write_json(monitor_dir / "monitor.json", config)
    with open_folder(monitor_dir) as monitor:
        monitor.refresh_alarms()
        paragraph = " ".join(methods(monitor.design, gettext_for("en-US")))
        assert "recorded but not charted: the model's reference has no appearance figures" in paragraph
        assert "未绘制控制图" in " ".join(methods(monitor.design, gettext_for("zh-CN")))


def _old_database(url: str) -> None:
    """A store at the schema before appearance (0002cc) with one answer in it."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from proctovision.monitoring.store import MIGRATIONS, make_engine

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    command.upgrade(config, "0002cc")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO predictions (id, at, model_sha256, source, unit, status, frames) "
                                "VALUES ('old', '2026-01-01 10:00:00', 'x', 'serve', 'image', 'answered', 1)"))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_made_before_upgrades_and_keeps_its_answers(backend: str, tmp_path: Path, request) -> None:
    from sqlalchemy import inspect, text

    from proctovision.monitoring.store import open_engine, sqlite_url

    url = sqlite_url(tmp_path) if backend == "sqlite" else request.getfixturevalue("postgres").url()
    _old_database(url)
    engine, _ = open_engine(url, str(tmp_path))
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("predictions")}
        assert set(appearance.COLUMNS) <= columns
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id, appearance_red FROM predictions")).all() == [("old", None)]
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003ap"
    finally:
        engine.dispose()
