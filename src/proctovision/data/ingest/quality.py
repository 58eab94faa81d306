"""The quality report beside the manifest: counts per class and patient, exact and near duplicates, sizes, and
every file left out with the reason (qc.json, qc.md), written with the manifest."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.core.tasks import Task
from proctovision.data.ingest.sources import IngestResult
from proctovision.data.manifest import ManifestError, class_counts, patient_counts, write_manifest


def duplicate_groups(frame: pd.DataFrame) -> list[list[str]]:
    """Files with identical bytes: the same picture counted twice."""
    if frame.empty or "sha256" not in frame.columns:
        return []
    groups = frame.groupby("sha256")["path"].apply(list)
    return [sorted(paths) for paths in groups if len(set(paths)) > 1]


def near_duplicate_pairs(frame: pd.DataFrame, max_distance: int = 4) -> list[tuple[int, int, int]]:
    """Row pairs whose perceptual hashes differ by at most ``max_distance`` bits (exact copies excluded).

    Pigeonhole banding: two 64-bit hashes within 4 bits agree on at least one of 5 bands, so
    only rows sharing a band value are compared, which keeps this near-linear in rows.
    """
    if frame.empty or "phash" not in frame.columns:
        return []
    bits = np.array([[int(bit) for bit in f"{int(value, 16):064b}"] for value in frame["phash"]], dtype=np.uint8)
    sha = frame["sha256"].to_numpy() if "sha256" in frame.columns else np.arange(len(frame)).astype(str)
    bands = np.array_split(np.arange(64), max_distance + 1)
    found: dict[tuple[int, int], int] = {}
    for band in bands:
        buckets: dict[bytes, list[int]] = {}
        for row, key in enumerate(np.packbits(bits[:, band], axis=1)):
            buckets.setdefault(key.tobytes(), []).append(row)
        for members in buckets.values():
            for position, first in enumerate(members):
                for second in members[position + 1 :]:
                    if (first, second) in found or sha[first] == sha[second]:
                        continue
                    distance = int(np.count_nonzero(bits[first] != bits[second]))
                    if distance <= max_distance:
                        found[(first, second)] = distance
    return sorted((first, second, distance) for (first, second), distance in found.items())


def quality_report(result: IngestResult, task: Task, source: Path) -> dict:
    frame = result.manifest
    sizes = frame[["width", "height"]].astype(int) if not frame.empty else pd.DataFrame(columns=["width", "height"])
    per_patient = frame.groupby("patient_id").size() if not frame.empty else pd.Series(dtype=int)
    reasons: dict[str, int] = {}
    for item in result.excluded:
        kind = item.reason.split(" (")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    return {
        "source": str(source),
        "source_kind": result.source_kind,
        "task": task.name,
        "classes": list(task.classes),
        "n_images": int(len(frame)),
        "n_patients": int(frame["patient_id"].nunique()) if not frame.empty else 0,
        "images_per_class": class_counts(frame, task.classes) if not frame.empty else dict.fromkeys(task.classes, 0),
        "patients_per_class": patient_counts(frame, task.classes) if not frame.empty else dict.fromkeys(task.classes, 0),
        "images_per_patient": {
            "min": int(per_patient.min()) if len(per_patient) else 0,
            "median": float(per_patient.median()) if len(per_patient) else 0.0,
            "max": int(per_patient.max()) if len(per_patient) else 0,
        },
        "patients_with_several_labels": sorted(
            str(patient) for patient, count in frame.groupby("patient_id")["label"].nunique().items() if count > 1
        )
        if not frame.empty
        else [],
        "generated_patient_ids": result.generated_patient_ids,
        "image_sizes": {
            "distinct": int(len(sizes.drop_duplicates())) if len(sizes) else 0,
            "min_width": int(sizes["width"].min()) if len(sizes) else 0,
            "max_width": int(sizes["width"].max()) if len(sizes) else 0,
            "min_height": int(sizes["height"].min()) if len(sizes) else 0,
            "max_height": int(sizes["height"].max()) if len(sizes) else 0,
        },
        "exact_duplicates": duplicate_groups(frame),
        "near_duplicates": [
            {"paths": [frame["path"].iloc[first], frame["path"].iloc[second]], "hash_distance": distance}
            for first, second, distance in near_duplicate_pairs(frame)
        ],
        "excluded": [{"path": item.path, "reason": item.reason} for item in result.excluded],
        "excluded_by_reason": reasons,
        "notes": list(result.notes),
    }


def render_quality_markdown(report: dict) -> str:
    lines = [
        f"# Quality report: {report['source']}",
        "",
        f"Task `{report['task']}`; {report['n_images']} image(s) from {report['n_patients']} patient(s) kept; "
        f"{len(report['excluded'])} file(s) left out.",
        "",
        "| class | images | patients |",
        "|---|---|---|",
    ]
    for name in report["classes"]:
        lines.append(f"| {name} | {report['images_per_class'][name]} | {report['patients_per_class'][name]} |")
    sizes = report["image_sizes"]
    lines += [
        "",
        f"Image sizes: {sizes['distinct']} distinct, width {sizes['min_width']}-{sizes['max_width']}, "
        f"height {sizes['min_height']}-{sizes['max_height']}.",
        f"Images per patient: min {report['images_per_patient']['min']}, median "
        f"{report['images_per_patient']['median']}, max {report['images_per_patient']['max']}.",
    ]
    if report["patients_with_several_labels"]:
        lines.append(f"Patients with images of several labels: {len(report['patients_with_several_labels'])}.")
    if report["exact_duplicates"]:
        lines += ["", f"## Exact duplicates ({len(report['exact_duplicates'])} group(s))"]
        lines += [f"- {' = '.join(group)}" for group in report["exact_duplicates"]]
    if report["near_duplicates"]:
        lines += ["", f"## Near duplicates ({len(report['near_duplicates'])} pair(s), perceptual hash)"]
        lines += [f"- {' ~ '.join(item['paths'])} (distance {item['hash_distance']})" for item in report["near_duplicates"]]
    if report["notes"]:
        lines += ["", "## Notes"] + [f"- {note}" for note in report["notes"]]
    if report["excluded"]:
        lines += ["", "## Files left out", "", "| file | reason |", "|---|---|"]
        lines += [f"| {item['path']} | {item['reason']} |" for item in report["excluded"]]
    return "\n".join(lines) + "\n"


def write_outputs(result: IngestResult, task: Task, source: Path, out: Path) -> dict:
    """Write manifest, qc.json and qc.md beside it (all atomic)."""
    if source.resolve() == out.resolve():
        raise ManifestError(f"{out}: refusing to overwrite the source CSV; choose another --out")
    report = quality_report(result, task, source)
    write_manifest(result.manifest, out)
    fileio.write_json(out.parent / "qc.json", report)
    fileio.write_text(out.parent / "qc.md", render_quality_markdown(report))
    return report
