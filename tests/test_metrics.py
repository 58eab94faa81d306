import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

from proctovision.evaluation.metrics import (
    compute_metrics,
    confusion,
    metric_values,
    patient_bootstrap_indices,
    specificity,
)


def _binary_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    score = np.clip(y * 0.4 + rng.random(200) * 0.6, 0, 1)
    probabilities = np.stack([1 - score, score], axis=1)
    patients = np.repeat(np.arange(50), 4)
    return y, probabilities, patients


def test_binary_metrics_match_scikit_learn():
    y, probabilities, patients = _binary_case()
    result = compute_metrics(y, probabilities, patients, 2, n_resamples=200)
    predicted = probabilities.argmax(1)
    assert result["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, probabilities[:, 1]), abs=1e-6)
    assert result["f1"]["value"] == pytest.approx(f1_score(y, predicted), abs=1e-6)
    negatives = y == 0
    assert result["specificity"]["value"] == pytest.approx((predicted[negatives] == 0).mean(), abs=1e-6)
    for item in result.values():
        low, high = item["ci95"]
        assert low <= item["value"] <= high


def test_three_class_metrics_and_quadratic_kappa():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    logits = np.eye(3)[y] * 1.5 + rng.normal(0, 1, (150, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    result = compute_metrics(y, probabilities, np.arange(150), 3, ordinal=True, n_resamples=100)
    predicted = probabilities.argmax(1)
    assert result["quadratic_kappa"]["value"] == pytest.approx(cohen_kappa_score(y, predicted, weights="quadratic"), abs=1e-6)
    assert result["f1"]["value"] == pytest.approx(f1_score(y, predicted, average="macro"), abs=1e-6)
    assert result["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr"), abs=1e-6)


def test_bootstrap_resamples_whole_patients():
    patients = np.array(["a", "a", "a", "b", "c", "c"])
    for indices in patient_bootstrap_indices(patients, 50, seed=0):
        drawn = patients[indices]
        for patient in set(drawn):
            assert (drawn == patient).sum() % (patients == patient).sum() == 0


def test_patient_bootstrap_is_wider_than_image_bootstrap_for_clustered_errors():
    y = np.repeat([0, 1], 100)
    predicted_right = np.ones(200, bool)
    predicted_right[:20] = False  # all wrong images belong to two patients
    predictions = np.where(predicted_right, y, 1 - y)
    probabilities = np.eye(2)[predictions]
    by_patient = compute_metrics(y, probabilities, np.repeat(np.arange(20), 10), 2, n_resamples=300)
    by_image = compute_metrics(y, probabilities, np.arange(200), 2, n_resamples=300)
    width = lambda r: r["accuracy"]["ci95"][1] - r["accuracy"]["ci95"][0]  # noqa: E731
    assert width(by_patient) > 1.5 * width(by_image)


def test_specificity_multiclass_is_macro():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    assert specificity(y, p, 3) == pytest.approx(np.mean([3 / 4, 3 / 4, 1.0]))


def test_patient_level_rows_average_probabilities_and_refuse_mixed_labels():
    from proctovision.evaluation.metrics import patient_level

    probabilities = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]])
    labels, mean, ids = patient_level(np.array([0, 0, 1, 1]), probabilities, np.array(["b", "b", "a", "a"]))
    assert list(ids) == ["a", "b"] and list(labels) == [1, 0]
    assert mean == pytest.approx(np.array([[0.3, 0.7], [0.7, 0.3]]))
    assert patient_level(np.array([0, 1]), probabilities[:2], np.array(["x", "x"])) is None


def test_every_binary_metric_equals_its_scikit_learn_reference_with_ties():
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        precision_score,
        recall_score,
    )

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 150)
    score = np.round(np.clip(y * 0.3 + rng.random(150) * 0.7, 0, 1), 1)  # rounded: many tied scores
    probabilities = np.stack([1 - score, score], axis=1)
    predicted = (score >= 0.4).astype(int)
    values = metric_values(y, predicted, probabilities, 2)
    expected = {
        "accuracy": accuracy_score(y, predicted),
        "precision": precision_score(y, predicted), "ppv": precision_score(y, predicted),
        "recall": recall_score(y, predicted), "sensitivity": recall_score(y, predicted),
        "specificity": recall_score(y, predicted, pos_label=0), "npv": precision_score(y, predicted, pos_label=0),
        "f1": f1_score(y, predicted), "roc_auc": roc_auc_score(y, score),
        "average_precision": average_precision_score(y, score), "brier": brier_score_loss(y, score),
    }
    for name, reference in expected.items():
        assert values[name] == pytest.approx(reference, abs=1e-12), name


def test_every_three_class_metric_equals_its_scikit_learn_reference():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 120)
    logits = np.eye(3)[y] * 1.2 + rng.normal(0, 1, (120, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    predicted = probabilities.argmax(1)
    names = ("Rf0", "Rf1", "Rf2")
    values = metric_values(y, predicted, probabilities, 3, ordinal=True, class_names=names)
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, labels=[0, 1, 2])
    for index, name in enumerate(names):
        assert values[f"precision_{name}"] == pytest.approx(precision[index])
        assert values[f"recall_{name}"] == pytest.approx(recall[index])
        assert values[f"f1_{name}"] == pytest.approx(f1[index])
        assert values[f"roc_auc_{name}"] == pytest.approx(roc_auc_score(y == index, probabilities[:, index]))
    assert values["precision"] == pytest.approx(precision.mean())
    assert values["recall"] == pytest.approx(recall.mean())
    assert values["quadratic_kappa"] == pytest.approx(cohen_kappa_score(y, predicted, weights="quadratic"))
    assert confusion(y, predicted, 3) == confusion_matrix(y, predicted, labels=[0, 1, 2]).tolist()


def test_undefined_metrics_are_null_not_zero():
    result = compute_metrics(np.zeros(6, int), np.tile([0.8, 0.2], (6, 1)), np.arange(6), 2, n_resamples=20)
    assert result["sensitivity"]["value"] is None and result["roc_auc"]["value"] is None
    assert result["specificity"]["value"] == 1.0 and result["accuracy"]["value"] == 1.0
