"""Agreement between readers (and with the reference standard): Cohen's, weighted and Fleiss' kappa with 95% CIs.

A reference standard made by experts is only as good as their agreement, and a reader study's readers are
judged against each other as much as against the truth, so every study should report these figures.

- Cohen's kappa for each pair of readers and for each reader against the reference, with the large-sample
  standard error and 95% CI of statsmodels (the SAS PROC FREQ formulas); for ordinal tasks also the
  quadratic-weighted (Fleiss-Cohen) kappa.
- Fleiss' kappa for the whole panel on the images every reader read: its test of zero agreement uses the
  standard error of Fleiss, Nee & Landis (1979); its 95% CI is a percentile bootstrap that resamples patients
  (all their images together) when patient ids are known, images otherwise.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from proctovision.core import fileio
from proctovision.core.errors import UserError
from proctovision.evaluation.metrics import patient_bootstrap_indices


class AgreementError(UserError, ValueError):
    """Readings from which no agreement can be computed; the message says why."""


def contingency(a: np.ndarray, b: np.ndarray, n_categories: int) -> np.ndarray:
    """Square table of two raters' category indices: rows rater a, columns rater b."""
    cells = np.asarray(a, int) * n_categories + np.asarray(b, int)
    return np.bincount(cells, minlength=n_categories ** 2).reshape(n_categories, n_categories)


def cohen(a: np.ndarray, b: np.ndarray, n_categories: int, weights: str | None = None) -> dict:
    """Cohen's kappa of two raters (``weights``: None, "linear" or "quadratic") with its 95% CI and p (H0: 0)."""
    table = contingency(a, b, n_categories)
    if table.sum() == 0:
        return {"kappa": None, "se": None, "ci95": [None, None], "p_value": None, "n": 0, "weights": weights}
    result = cohens_kappa(table, wt=weights) if weights else cohens_kappa(table)
    kappa, se, se0 = float(result.kappa), float(np.sqrt(result.var_kappa)), float(np.sqrt(result.var_kappa0))
    if not np.isfinite(kappa):
        return {"kappa": None, "se": None, "ci95": [None, None], "p_value": None, "n": int(table.sum()),
                "weights": weights}
    p_value = float(2 * stats.norm.sf(abs(kappa / se0))) if se0 > 0 else None
    half = float(stats.norm.ppf(0.975)) * se
    return {"kappa": kappa, "se": se, "ci95": [kappa - half, kappa + half], "p_value": p_value,
            "n": int(table.sum()), "weights": weights}


def fleiss_se0(counts: np.ndarray) -> float:
    """Standard error of Fleiss' kappa under no agreement beyond chance (Fleiss, Nee & Landis 1979)."""
    counts = np.asarray(counts, float)
    n_subjects, raters = len(counts), counts.sum(axis=1)[0]
    p = counts.sum(axis=0) / counts.sum()
    pq = p * (1 - p)
    total = pq.sum()
    inner = total ** 2 - (pq * (1 - 2 * p)).sum()
    return float(np.sqrt(2 * inner) / (total * np.sqrt(n_subjects * raters * (raters - 1))))


def fleiss(
    ratings: np.ndarray, n_categories: int, groups: np.ndarray | None = None, n_resamples: int = 1000, seed: int = 0,
) -> dict:
    """Fleiss' kappa of ``ratings`` [image, reader] (category indices), with a bootstrap 95% CI and a z test."""
    ratings = np.asarray(ratings, int)
    counts, _ = aggregate_raters(ratings, n_cat=n_categories)
    kappa = float(fleiss_kappa(counts, method="fleiss"))
    se0 = fleiss_se0(counts)
    z = kappa / se0 if se0 > 0 else float("nan")
    groups = np.arange(len(ratings)) if groups is None else np.asarray(groups)
    draws = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for index in patient_bootstrap_indices(groups, n_resamples, seed):
            draws.append(fleiss_kappa(counts[index], method="fleiss"))
    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    low, high = (np.percentile(draws, [2.5, 97.5]) if len(draws) else (np.nan, np.nan))
    unit = "patient" if len(np.unique(groups)) < len(groups) else "image"
    return {"kappa": kappa, "ci95": [_finite(low), _finite(high)], "se0": se0, "z": _finite(z),
            "p_value": _finite(2 * stats.norm.sf(abs(z))), "n_images": int(len(ratings)),
            "n_readers": int(ratings.shape[1]), "ci_method": f"bootstrap over {unit}s (percentile, {n_resamples})"}


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def agreement(
    readings: pd.DataFrame, categories: tuple[str, ...], ordinal: bool = False,
    reference: pd.Series | None = None, patients: pd.Series | None = None, n_resamples: int = 1000, seed: int = 0,
) -> dict:
    """Every agreement figure for a readers table (path, reader, label[, condition]), per reading condition.

    ``reference`` and ``patients`` are indexed by path. Labels outside ``categories`` are an error.
    """
    index = {name: position for position, name in enumerate(categories)}
    unknown = sorted(set(readings["label"]) - set(index))
    if unknown:
        raise AgreementError(f"labels {unknown} are not among the categories ({', '.join(categories)})")
    conditions = readings["condition"] if "condition" in readings.columns else pd.Series("", index=readings.index)
    result = {"categories": list(categories), "ordinal": ordinal, "conditions": {}}
    for condition, rows in readings.assign(condition=conditions).groupby("condition", sort=True):
        table = rows.pivot(index="path", columns="reader", values="label")
        result["conditions"][condition or "all"] = _one_condition(table, index, ordinal, reference, patients,
                                                                   n_resamples, seed)
    return result


def _one_condition(
    table: pd.DataFrame, index: dict[str, int], ordinal: bool, reference: pd.Series | None,
    patients: pd.Series | None, n_resamples: int, seed: int,
) -> dict:
    n_categories = len(index)
    readers = [str(name) for name in table.columns]
    coded = table.apply(lambda column: column.map(index))
    pairs = []
    for a, b in itertools.combinations(table.columns, 2):
        both = coded[[a, b]].dropna()
        pairs.append({"a": str(a), "b": str(b), **_kappas(both[a], both[b], n_categories, ordinal)})
    complete = coded.dropna()
    panel = None
    if len(readers) >= 2 and len(complete):
        groups = None if patients is None else patients.reindex(complete.index).fillna("").astype(str).to_numpy()
        if groups is not None and (groups == "").any():
            groups = None
        panel = fleiss(complete.to_numpy(int), n_categories, groups, n_resamples, seed)
    versus = []
    if reference is not None:
        truth = reference.reindex(coded.index).map(index)
        for reader in table.columns:
            both = pd.DataFrame({"reader": coded[reader], "truth": truth}).dropna()
            versus.append({"reader": str(reader), **_kappas(both["reader"], both["truth"], n_categories, ordinal)})
    return {"readers": readers, "n_images": int(len(coded)), "n_images_read_by_all": int(len(complete)),
            "pairs": pairs, "fleiss": panel, "vs_reference": versus}


def _kappas(a: pd.Series, b: pd.Series, n_categories: int, ordinal: bool) -> dict:
    a, b = a.to_numpy(int), b.to_numpy(int)
    entry = {"unweighted": cohen(a, b, n_categories)}
    if ordinal:
        entry["quadratic"] = cohen(a, b, n_categories, "quadratic")
    entry["percent_agreement"] = float(np.mean(a == b)) if len(a) else None
    return entry


def read_reference(path: str | Path) -> tuple[pd.Series, pd.Series | None]:
    """The reference standard from a manifest-like CSV (path, label[, patient_id]); paths made absolute."""
    path = Path(path)
    if not path.is_file():
        raise AgreementError(f"{path}: file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [column.strip() for column in frame.columns]
    missing = [column for column in ("path", "label") if column not in frame.columns]
    if missing:
        raise AgreementError(f"{path}: missing column(s) {', '.join(missing)}")
    frame["path"] = [os.path.abspath(path.parent / entry) for entry in frame["path"]]
    frame = frame.drop_duplicates("path").set_index("path")
    patients = frame["patient_id"] if "patient_id" in frame.columns else None
    return frame["label"].str.strip(), patients


def canonical_labels(labels: pd.Series, classes: tuple[str, ...], source: str | Path) -> pd.Series:
    """Labels spelt as the task's classes (case and spaces ignored); an unknown one is an error naming the file."""
    by_lower = {name.lower(): name for name in classes}
    unknown = sorted({label for label in labels if label.strip().lower() not in by_lower})
    if unknown:
        raise AgreementError(f"{source}: labels {unknown} are not classes ({', '.join(classes)})")
    return labels.map(lambda label: by_lower[label.strip().lower()])


def rows(result: dict) -> pd.DataFrame:
    """One line per pair (and per reader vs reference) for agreement.csv."""
    lines = []
    for condition, block in result["conditions"].items():
        for kind, items in (("pair", block["pairs"]), ("vs_reference", block["vs_reference"])):
            for item in items:
                line = {"condition": condition, "kind": kind, "a": item.get("a", item.get("reader")),
                        "b": item.get("b", "reference"), "percent_agreement": item["percent_agreement"]}
                for weights in ("unweighted", "quadratic"):
                    if weights in item:
                        kappa = item[weights]
                        prefix = "kappa" if weights == "unweighted" else "quadratic_kappa"
                        line[prefix], line[f"{prefix}_ci_low"], line[f"{prefix}_ci_high"] = (kappa["kappa"],
                                                                                             *kappa["ci95"])
                        line[f"{prefix}_n"] = kappa["n"]
                lines.append(line)
    return pd.DataFrame(lines)


def markdown(result: dict) -> str:
    lines = ["# Agreement", "", f"Categories: {', '.join(result['categories'])}"
             + (" (ordinal: quadratic-weighted kappa too)" if result["ordinal"] else "") + ".",
             "Cohen's kappa: 95% CI from the large-sample standard error. Fleiss' kappa: bootstrap 95% CI; "
             "p tests no agreement beyond chance."]
    for condition, block in result["conditions"].items():
        lines += ["", f"## {condition}: {len(block['readers'])} readers, {block['n_images']} images", ""]
        panel = block["fleiss"]
        if panel:
            lines.append(f"Fleiss' kappa {_interval(panel['kappa'], panel['ci95'])} on {panel['n_images']} images "
                         f"read by all {panel['n_readers']} readers; z = {panel['z']:.2f}, "
                         f"p = {_p(panel['p_value'])} ({panel['ci_method']}).")
        header = "| a | b | n | agreement | Cohen's kappa (95% CI) |" + (" quadratic kappa (95% CI) |"
                                                                       if result["ordinal"] else "")
        for title, items in (("Reader pairs", block["pairs"]), ("Each reader vs the reference standard",
                                                                 block["vs_reference"])):
            if not items:
                continue
            lines += ["", f"### {title}", "", header, "|---|---|---|---|---|" + ("---|" if result["ordinal"] else "")]
            for item in items:
                unweighted = item["unweighted"]
                cells = [item.get("a", item.get("reader")), item.get("b", "reference"), str(unweighted["n"]),
                         "-" if item["percent_agreement"] is None else f"{item['percent_agreement']:.3f}",
                         _interval(unweighted["kappa"], unweighted["ci95"])]
                if "quadratic" in item:
                    cells.append(_interval(item["quadratic"]["kappa"], item["quadratic"]["ci95"]))
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _interval(value: float | None, interval: list) -> str:
    if value is None:
        return "-"
    low, high = interval
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} ({low:.3f} to {high:.3f})"


def _p(value: float | None) -> str:
    return "-" if value is None else ("< 0.0001" if value < 1e-4 else f"{value:.4f}")


def write_agreement(result: dict, out: Path) -> dict[str, Path]:
    """agreement.json, agreement.csv and agreement.md in ``out`` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    return {"json": fileio.write_json(out / "agreement.json", result),
            "csv": fileio.write_csv(out / "agreement.csv", rows(result)),
            "markdown": fileio.write_text(out / "agreement.md", markdown(result))}
