import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_run_config
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.manifest import read_manifest
from proctovision.evaluation.compare import Participant, pairwise_tests
from proctovision.workflows.compare import compare
from proctovision.workflows.evaluate import evaluate_run
from proctovision.data.synthetic.readers import simulate_readers
from proctovision.evaluation.readers import ReadersError, read_readers
from proctovision.workflows.training import train


@pytest.fixture
def two_runs(split_file: Path, tmp_path: Path) -> list[Path]:
    runs = []
    for seed in (0, 1):
        run = train(tiny_run_config(split_file, tmp_path / f"model{seed}", epochs=1, seed=seed), progress=False).root
        evaluate_run(run, "test", n_resamples=20)
        runs.append(run)
    return runs


def test_compare_models_and_readers_writes_table_tests_and_figures(two_runs, split_file: Path, tmp_path: Path):
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), {}, 2, tmp_path / "readers.csv", seed=3)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", *map(str, two_runs), "--readers", str(readers), "--out", str(out),
                                      "--resamples", "50"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["participant"]) == ["model0", "model1", "junior (simulated)", "senior (simulated)"]
    assert set(table["kind"]) == {"model", "simulated reader"}, "made-up readers are labelled so everywhere"
    readers_rows = table["kind"] == "simulated reader"
    assert table.loc[readers_rows, "roc_auc"].notna().all(), "simulated readers give scores: their AUC is shown"
    assert table.loc[readers_rows, "reading_time_s"].gt(0).all()
    payload = json.loads((out / "comparison.json").read_text())
    pairs = {(test["a"], test["b"]) for test in payload["tests"]}
    assert len(pairs) == 6
    model_pair = next(test for test in payload["tests"] if {test["a"], test["b"]} == {"model0", "model1"})
    delong = model_pair["delong"]
    assert delong is not None and (delong["p_value"] is None or 0 <= delong["p_value"] <= 1)
    assert delong["auc_a"] == pytest.approx(table.set_index("participant").loc[model_pair["a"], "roc_auc"], abs=1e-6)
    reader_pair = next(test for test in payload["tests"] if {test["a"], test["b"]} == {"junior (simulated)", "senior (simulated)"})
    assert reader_pair["delong"] is None and 0 <= reader_pair["mcnemar"]["p_value"] <= 1
    tests_csv = pd.read_csv(out / "tests.csv")
    assert {"sensitivity_difference", "specificity_difference", "f1_difference"} <= set(tests_csv.columns)
    assert "Paired tests" in (out / "comparison.md").read_text()
    for name in ("metrics.png", "reading_time.png", "roc.png", "pr.png"):
        with Image.open(out / "figures" / name) as figure:
            assert np.asarray(figure).std() > 5, name
    truth = test_rows.set_index("path")["label"]
    readers_frame, _ = read_readers(readers, ("normal", "hemorrhoid"))
    senior = readers_frame[readers_frame["reader"] == "senior (simulated)"].set_index("path")["label"]
    expected = (senior == truth.loc[senior.index]).mean()
    assert table.set_index("participant").loc["senior (simulated)", "accuracy"] == pytest.approx(expected)


def test_bad_readers_file_and_unevaluated_run_are_explained(two_runs, tmp_path: Path, split_file: Path):
    bad = tmp_path / "r.csv"
    bad.write_text("path,reader,label\na.png,x,polyp\n")
    with pytest.raises(ReadersError, match="polyp"):
        read_readers(bad, ("normal", "hemorrhoid"))
    fresh = train(tiny_run_config(split_file, tmp_path / "fresh", epochs=1), progress=False).root
    result = CliRunner().invoke(app, ["compare", str(fresh), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0


def _participants(n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, 120)
    models = []
    for name, strength in (("a", 2.0), ("b", 1.0)):
        logits = np.eye(n_classes)[y] * strength + rng.normal(0, 1, (120, n_classes))
        probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        models.append(Participant(name, "model", probabilities.argmax(1), probabilities, None))
    reader = np.where(rng.random(120) < 0.85, y, (y + 1) % n_classes)
    return y, models + [Participant("reader", "reader", reader, None, 400.0)], np.repeat(np.arange(30), 4)


def test_paired_differences_equal_scikit_learn_differences_binary():
    y, participants, patients = _participants(2)
    tests = pairwise_tests(participants, y, patients, True, 50, 0, ("normal", "hemorrhoid"))
    a, b, reader = participants
    first = tests[0]
    assert (first["a"], first["b"]) == ("a", "b")
    expected = {
        "accuracy": accuracy_score(y, a.predicted) - accuracy_score(y, b.predicted),
        "sensitivity": recall_score(y, a.predicted) - recall_score(y, b.predicted),
        "specificity": recall_score(y, a.predicted, pos_label=0) - recall_score(y, b.predicted, pos_label=0),
        "f1": f1_score(y, a.predicted) - f1_score(y, b.predicted),
        "roc_auc": roc_auc_score(y, a.probabilities[:, 1]) - roc_auc_score(y, b.probabilities[:, 1]),
    }
    for metric, value in expected.items():
        assert first["differences"][metric]["difference"] == pytest.approx(value), metric
        low, high = first["differences"][metric]["ci95"]
        assert low <= value <= high, metric
    assert first["delong"]["difference"] == pytest.approx(expected["roc_auc"])
    with_reader = tests[1]
    assert with_reader["b"] == "reader" and "roc_auc" not in with_reader["differences"]
    assert with_reader["delong"] is None


def test_three_classes_get_macro_f1_difference_and_one_vs_rest_delong():
    y, participants, patients = _participants(3, seed=2)
    classes = ("Rf0", "Rf1", "Rf2")
    first = pairwise_tests(participants, y, patients, False, 50, 0, classes)[0]
    a, b, _ = participants
    macro = lambda p: f1_score(y, p, average="macro", labels=[0, 1, 2], zero_division=0)  # noqa: E731
    assert first["differences"]["f1"]["difference"] == pytest.approx(macro(a.predicted) - macro(b.predicted))
    assert first["delong"] is None and set(first["delong_per_class"]) == set(classes)
    for index, name in enumerate(classes):
        expected = roc_auc_score(y == index, a.probabilities[:, index])
        assert first["delong_per_class"][name]["auc_a"] == pytest.approx(expected)


def test_images_a_reader_skipped_are_reported(split_file: Path, tmp_path: Path):
    run = train(tiny_run_config(split_file, tmp_path / "model", epochs=1), progress=False).root
    evaluate_run(run, "test", n_resamples=10)
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), {}, 2, tmp_path / "readers.csv", seed=1)
    frame = pd.read_csv(readers)
    skipped = frame[frame["reader"] == "junior (simulated)"].index[:2]
    frame.drop(index=skipped).to_csv(readers, index=False)
    result = compare([run], tmp_path / "cmp", readers=readers, n_resamples=10)
    assert result["missing"] == {"junior (simulated)": 2}
    assert result["n_images"] == len(test_rows) - 2
    assert "junior (simulated) 2" in (tmp_path / "cmp" / "comparison.md").read_text()


def test_two_readers_with_scores_and_conditions_get_an_mrmc_analysis(split_file: Path, tmp_path: Path):
    run = train(tiny_run_config(split_file, tmp_path / "model", epochs=1), progress=False).root
    evaluate_run(run, "test", n_resamples=10)
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), {}, 2, tmp_path / "readers.csv", seed=1)
    unaided = pd.read_csv(readers).assign(condition="unaided")
    aided = unaided.assign(condition="aided", score=np.clip(unaided["score"] + (unaided["label"] == "hemorrhoid"),
                                                              1, 5))
    pd.concat([unaided, aided]).to_csv(readers, index=False)
    result = compare([run], tmp_path / "cmp", readers=readers, n_resamples=10, simulated_readers=True)
    payload = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    mrmc = payload["mrmc"]
    assert mrmc == json.loads(json.dumps(result["mrmc"], default=float))
    assert mrmc["resampled_unit"] == "patient" and mrmc["n_units"] == test_rows["patient_id"].nunique()
    designs = {(item["design"], item["figure_of_merit"], item.get("condition")) for item in mrmc["analyses"]}
    assert ("model_vs_readers", "auc", "aided") in designs and ("model_vs_readers", "auc", "unaided") in designs
    assert ("conditions", "auc", None) in designs
    crossed = next(item for item in mrmc["analyses"] if item["design"] == "conditions" and
                   item["figure_of_merit"] == "auc")
    senior = read_readers(readers, ("normal", "hemorrhoid"))[0].query("reader == 'senior (simulated)' and condition == 'aided'")
    truth = test_rows.set_index("path").loc[senior["path"], "label"] == "hemorrhoid"
    assert crossed["foms"]["aided"]["senior (simulated)"] == pytest.approx(roc_auc_score(truth, senior["score"]))
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "Multi-reader multi-case analysis (OR-H)" in text and "simulated readers" in text
    assert {"senior (simulated) (aided)", "junior (simulated) (unaided)"} <= {row["participant"] for row in result["table"]}
    with Image.open(tmp_path / "cmp" / "figures" / "readers_roc.png") as figure:
        assert np.asarray(figure).std() > 5


def test_readers_with_scores_get_their_auc_with_a_ci_in_every_table(tmp_path: Path):
    """readers.csv's scores rank the images: each scored reader's row has the AUC (the one MRMC uses) and average
    precision with patient-bootstrap CIs; a reader who gave labels only keeps a dash."""
    from proctovision.evaluation.mrmc import figure_of_merit
    from proctovision.reporting.comparison import read_comparison

    rng = np.random.default_rng(4)
    truth = np.repeat([0, 1], 30)
    classes = np.array(["normal", "hemorrhoid"])
    paths = [f"img{index}.png" for index in range(60)]
    probability = np.clip(0.25 + 0.5 * truth + rng.normal(0, 0.2, 60), 0.01, 0.99)
    pd.DataFrame({"path": paths, "label": classes[truth], "patient_id": [f"P{i // 2}" for i in range(60)],
                  "prob_normal": 1 - probability, "prob_hemorrhoid": probability}).to_csv(tmp_path / "net.csv",
                                                                                           index=False)
    rows, scores = [], {}
    for reader, noise in (("ann", 1.0), ("bo", 1.5), ("cy", None)):
        score = np.clip(np.round(3 + 1.5 * (truth - 0.5) * 2 + rng.normal(0, noise or 1, 60)), 1, 5)
        scores[reader] = score
        for path, value in zip(paths, score):
            rows.append({"path": path, "reader": reader, "label": classes[int(value >= 3)],
                         "score": value if noise else ""})
    pd.DataFrame(rows).to_csv(tmp_path / "readers.csv", index=False)
    compare([tmp_path / "net.csv"], tmp_path / "cmp", readers=tmp_path / "readers.csv", n_resamples=200)
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("participant")
    for reader in ("ann", "bo"):
        expected = roc_auc_score(truth, scores[reader])
        assert table.loc[reader, "roc_auc"] == pytest.approx(expected, abs=1e-6)
        assert table.loc[reader, "roc_auc"] == pytest.approx(figure_of_merit(truth, scores[reader]), abs=1e-6)
        assert table.loc[reader, "roc_auc_ci_low"] < expected < table.loc[reader, "roc_auc_ci_high"]
        assert table.loc[reader, "average_precision"] == pytest.approx(
            average_precision_score(truth, scores[reader]), abs=1e-6)
    assert np.isnan(table.loc["cy", "roc_auc"]), "labels alone support no AUC"
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    ann_line = next(line for line in markdown.splitlines() if line.startswith("| ann |"))
    assert f"{table.loc['ann', 'roc_auc']:.3f} ({table.loc['ann', 'roc_auc_ci_low']:.3f} to" in ann_line
    report = read_comparison(tmp_path / "cmp")
    cells = dict(zip(report["metrics"], next(row for row in report["rows"] if row["participant"] == "ann")["cells"]))
    assert cells["roc_auc"].startswith(f"{table.loc['ann', 'roc_auc']:.3f} (")


def test_readers_alone_compare_their_conditions_without_a_model(tmp_path: Path):
    """A reader study (the same readers unaided and aided, no model): `compare --readers --truth` gives each
    reader-condition row and the OR-H analysis of the conditions, with the task found from the truth's labels."""
    from proctovision.evaluation.mrmc import figure_of_merit

    rng = np.random.default_rng(7)
    truth = np.repeat([0, 1], 25)
    classes = np.array(["normal", "hemorrhoid"])
    paths = [f"case{index}.png" for index in range(50)]
    pd.DataFrame({"path": paths, "label": classes[truth], "patient_id": [f"P{i}" for i in range(50)]}).to_csv(
        tmp_path / "cases.csv", index=False)
    rows, scores = [], {}
    for reader in ("ann", "bo", "cy"):
        for condition, noise in (("unaided", 1.6), ("aided", 0.8)):
            score = np.clip(np.round(3 + 2 * (truth - 0.5) + rng.normal(0, noise, 50)), 1, 5)
            scores[reader, condition] = score
            rows += [{"path": path, "reader": reader, "condition": condition, "label": classes[int(value >= 3)],
                      "score": value, "reading_time_s": 300.0} for path, value in zip(paths, score)]
    pd.DataFrame(rows).to_csv(tmp_path / "readers.csv", index=False)
    result = CliRunner().invoke(app, ["compare", "--readers", str(tmp_path / "readers.csv"), "--truth",
                                      str(tmp_path / "cases.csv"), "--out", str(tmp_path / "arms"),
                                      "--resamples", "50"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "arms" / "comparison.csv")
    assert set(table["kind"]) == {"reader"} and len(table) == 6
    mrmc = json.loads((tmp_path / "arms" / "comparison.json").read_text())["mrmc"]
    crossed = next(item for item in mrmc["analyses"] if item["design"] == "conditions" and
                   item["figure_of_merit"] == "auc")
    assert crossed["foms"]["aided"]["bo"] == pytest.approx(figure_of_merit(truth, scores["bo", "aided"]))
    assert not any(item["design"] == "model_vs_readers" for item in mrmc["analyses"])


def test_readers_alone_with_labels_of_no_known_task_ask_for_the_task(tmp_path: Path):
    pd.DataFrame({"path": ["a.png", "b.png"], "label": ["x", "y"]}).to_csv(tmp_path / "cases.csv", index=False)
    pd.DataFrame({"path": ["a.png", "b.png"], "reader": ["ann", "ann"], "label": ["x", "y"]}).to_csv(
        tmp_path / "readers.csv", index=False)
    result = CliRunner().invoke(app, ["compare", "--readers", str(tmp_path / "readers.csv"), "--truth",
                                      str(tmp_path / "cases.csv"), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "give --task" in str(result.exception) + result.output


def test_compare_prints_every_file_it_writes_and_reading_times_are_rounded_and_typed(tmp_path: Path):
    truth = np.repeat([0, 1], 10)
    classes = np.array(["normal", "hemorrhoid"])
    paths = [f"case{index}.png" for index in range(20)]
    pd.DataFrame({"path": paths, "label": classes[truth], "patient_id": [f"P{i}" for i in range(20)]}).to_csv(
        tmp_path / "cases.csv", index=False)
    rng = np.random.default_rng(1)
    rows = []
    for reader in ("ann", "bo"):
        for condition in ("unaided", "aided"):
            score = np.clip(np.round(3 + 2 * (truth - 0.5) + rng.normal(0, 1, 20)), 1, 5)
            rows += [{"path": path, "reader": reader, "condition": condition, "label": classes[int(value >= 3)],
                      "score": value, "case_time_s": 0.0855 + 0.1 * index, "reading_time_s": 36.0}
                     for index, (path, value) in enumerate(zip(paths, score))]
    pd.DataFrame(rows).to_csv(tmp_path / "readers.csv", index=False)
    out = tmp_path / "arms"
    result = CliRunner().invoke(app, ["compare", "--readers", str(tmp_path / "readers.csv"), "--truth",
                                      str(tmp_path / "cases.csv"), "--out", str(out), "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert f"MRMC (Obuchowski-Rockette-Hillis): {out / 'comparison.md'}" in result.output
    assert f"reading times per case: {out / 'reading_times.csv'}" in result.output
    for name in ("comparison.csv", "tests.csv", "comparison.json", "comparison.md", "reading_times.csv",
                 "figures/metrics.png", "figures/reading_time_per_case.png"):
        assert f"  {out / name}\n" in result.output, name
    text = (out / "reading_times.csv").read_text()
    assert not any(len(cell.split(".")[-1]) > 3 for line in text.splitlines()[1:] for cell in line.split(",")
                   if cell.replace(".", "").isdigit()), text
    table = pd.read_csv(out / "reading_times.csv")
    assert table["n_cases"].dtype == np.int64 and set(table["n_cases"]) == {20}
    assert table["n_readers"].dtype == np.int64 and ",20.0," not in text


def _sheets_in_two_folders(tmp_path: Path, written) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    truth = np.repeat([0, 1], 20)
    classes = np.array(["normal", "hemorrhoid"])
    (tmp_path / "truth").mkdir()
    (tmp_path / "study").mkdir()
    names = [f"case{index:04d}.png" for index in range(40)]
    pd.DataFrame({"path": names, "label": classes[truth], "patient_id": [f"P{i}" for i in range(40)]}).to_csv(
        tmp_path / "truth" / "cases.csv", index=False)
    rows = [{"path": written(name), "reader": reader, "label": classes[int(label) if rng.random() < 0.8 else 1 - label]}
            for reader in ("ann", "bo") for name, label in zip(names, truth)]
    pd.DataFrame(rows).to_csv(tmp_path / "study" / "readers.csv", index=False)
    return tmp_path / "truth" / "cases.csv", tmp_path / "study" / "readers.csv"


def test_sheets_in_two_folders_naming_cases_by_bare_file_name_are_matched_by_that_name(tmp_path: Path):
    """The readers' sheet and the truth sit in different folders and both write `case0001.png`: each path resolved
    against its own folder never meets the other, so the bare ids are matched by the name itself, and said so."""
    truth, readers = _sheets_in_two_folders(tmp_path, lambda name: name)
    result = CliRunner().invoke(app, ["compare", "--readers", str(readers), "--truth", str(truth), "--out",
                                      str(tmp_path / "out"), "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert "matched by file name" in result.output and "readers.csv" in " ".join(result.output.split())
    saved = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert saved["n_images"] == 40 and "cases.csv, readers.csv" in saved["matched_by"]
    assert "matched by file name" in (tmp_path / "out" / "comparison.md").read_text()


def test_when_nothing_matches_one_key_of_each_sheet_is_shown(tmp_path: Path):
    truth, readers = _sheets_in_two_folders(tmp_path, lambda name: f"elsewhere/{name.replace('case', 'img')}")
    result = CliRunner().invoke(app, ["compare", "--readers", str(readers), "--truth", str(truth), "--out",
                                      str(tmp_path / "out"), "--resamples", "20"])
    assert result.exit_code != 0
    told = " ".join((str(result.exception) + result.output).split())
    assert "share no image" in told and "cases.csv has" in told and "case0000.png" in told
    assert "readers.csv has" in told and "img0000.png" in told


def test_matching_is_one_reusable_rule():
    from proctovision.evaluation.readers import match_cases

    keys, note = match_cases({"a.csv": (["/x/case1.png|", "/x/case2.png|"], True),
                              "b.csv": (["/y/case2.png|", "/y/case3.png|"], True)})
    assert keys == {"a.csv": ["case1.png|", "case2.png|"], "b.csv": ["case2.png|", "case3.png|"]} and note
    same, none = match_cases({"a.csv": (["/x/case1.png|"], True), "b.csv": (["/x/case1.png|"], False)})
    assert same["b.csv"] == ["/x/case1.png|"] and none is None, "resolved paths that meet are kept"
    kept, refused = match_cases({"a.csv": (["/x/1/c.png|", "/x/2/c.png|"], False), "b.csv": (["/y/c.png|"], True)})
    assert refused is None, "two cases of one sheet with one name cannot be matched by name"
