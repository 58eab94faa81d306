import numpy as np
import pandas as pd

from proctovision.data.synthetic.readers import JUNIOR, SENIOR, error_count, load_difficulty, simulate_readers


def _truth(tmp_path, images: int, classes=("normal", "hemorrhoid")):
    rng = np.random.default_rng(3)
    paths = [str(tmp_path / "images" / f"{index:03d}.jpg") for index in range(images)]
    labels = [classes[int(index)] for index in rng.integers(0, len(classes), images)]
    difficulty = np.linspace(0, 1, images)
    pd.DataFrame({"path": [f"images/{index:03d}.jpg" for index in range(images)], "difficulty": difficulty}).to_csv(
        tmp_path / "difficulty.csv", index=False
    )
    return pd.DataFrame({"path": paths, "label": labels}), load_difficulty(tmp_path / "difficulty.csv")


def test_senior_beats_the_model_junior_does_not_and_errors_fall_on_hard_images(tmp_path):
    truth, difficulty = _truth(tmp_path, 200)
    assert len(difficulty) == 200 and difficulty[str(tmp_path / "images" / "199.jpg")] == 1.0
    model_errors = 24
    out = simulate_readers(truth, ("normal", "hemorrhoid"), difficulty, model_errors, tmp_path / "readers.csv")
    readers = pd.read_csv(out)
    hardness = np.linspace(0, 1, 200)
    assert set(readers["reader"]) == {"senior (simulated)", "junior (simulated)"} and (readers["simulated"] == "yes").all()
    for name, compare in (("senior", lambda errors: errors < model_errors), ("junior", lambda e: e > model_errors)):
        rows = readers[readers["reader"] == f"{name} (simulated)"].reset_index(drop=True)
        wrong = (rows["label"] != truth["label"]).to_numpy()
        assert compare(wrong.sum()), (name, wrong.sum())
        assert hardness[wrong].mean() > 0.7, "errors should fall mostly on the hardest images"
        assert hardness[:100][wrong[:100]].size < hardness[100:][wrong[100:]].size / 2
        assert (rows["path"] == [f"images/{index:03d}.jpg" for index in range(200)]).all()
        assert rows["reading_time_s"].nunique() == 1
        called_positive = (rows["label"] == "hemorrhoid").to_numpy()
        assert (rows["score"][called_positive] >= 4).all() and (rows["score"][~called_positive] <= 2).all()
        assert rows["score"][called_positive & (hardness > 0.5)].max() == 4, "less sure on hard images"


def test_error_counts_keep_the_order_even_on_a_tiny_split():
    assert error_count(12, 2, SENIOR) == 1 and error_count(12, 2, JUNIOR) == 3
    assert error_count(12, 0, SENIOR) == 0, "a perfect model cannot be beaten, only matched"
    assert error_count(100, 15, SENIOR) == 9 and error_count(100, 15, JUNIOR) == 21


def test_three_class_errors_go_to_a_neighbouring_grade(tmp_path):
    truth, difficulty = _truth(tmp_path, 60, classes=("Rf0", "Rf1", "Rf2"))
    readers = pd.read_csv(simulate_readers(truth, ("Rf0", "Rf1", "Rf2"), difficulty, 20, tmp_path / "r.csv"))
    grade = {"Rf0": 0, "Rf1": 1, "Rf2": 2}
    for _, rows in readers.groupby("reader"):
        distance = np.abs(rows["label"].map(grade).to_numpy() - truth["label"].map(grade).to_numpy())
        assert set(distance) <= {0, 1} and (distance == 1).any()
