"""Predict a study held in a PACS and, if asked, store the results back into it (used by predict and watch).

Instances travel through a private temporary folder that is removed afterwards; results name them by
UID hash only.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proctovision.serving import dicom_results, dicomweb

OWN_DESCRIPTIONS = {dicom_results.SR_SERIES_DESCRIPTION, dicom_results.SC_SERIES_DESCRIPTION}
STRUCTURED_REPORT_CLASSES = "1.2.840.10008.5.1.4.1.1.88."  # SR documents and key object selections: no pixels


@dataclass
class StudyResult:
    findings: list[dicom_results.ImageFinding] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sr_uid: str | None = None
    n_secondary_captures: int = 0
    seconds: float = 0.0

    def rows(self, classes: tuple[str, ...], threshold: float | None) -> list[dict]:
        """One row per image, named by UID hashes, for predictions.csv."""
        return [
            {"path": instance_name(item.source), "frame": item.frame or "", "predicted": item.predicted,
             "threshold": threshold, **{f"prob_{name}": item.probabilities[name] for name in classes}}
            for item in self.findings
        ]


def instance_name(dataset: object) -> str:
    series, sop = (dicomweb.uid_hash(str(uid)) for uid in (dataset.SeriesInstanceUID, dataset.SOPInstanceUID))
    return f"dicomweb:{series}/{sop}"


def is_own_output(dataset: object) -> bool:
    """Objects this tool stored earlier are never classified again."""
    return (str(getattr(dataset, "Manufacturer", "")) == dicom_results.DEVICE
            and str(getattr(dataset, "SeriesDescription", "")) in OWN_DESCRIPTIONS)


def next_series_number(client: object, study: str) -> int:
    with dicomweb.pacs_errors("search for series"):
        series = client.search_for_series(study_instance_uid=study, fields=["SeriesNumber"], get_remaining=True)
    numbers = []
    for item in series:
        try:
            numbers.append(int(float(dicomweb.first_value(item, "00200011"))))
        except ValueError:
            continue
    return max(numbers, default=0) + 1


def has_own_results(client: object, study: str) -> bool:
    """Whether an SR of this tool is already in the study (a push whose bookkeeping was lost)."""
    with dicomweb.pacs_errors("search for series"):
        series = client.search_for_series(study_instance_uid=study, search_filters={"Modality": "SR"},
                                          fields=["SeriesDescription"], get_remaining=True)
    return any(dicomweb.first_value(item, "0008103E") == dicom_results.SR_SERIES_DESCRIPTION for item in series)


def gather_images(client: object, study: str, folder: Path, result: StudyResult) -> list[tuple[object, Path, int]]:
    """Retrieve the study's image instances; returns (header, file, frames) for each."""
    images = []
    for ref in dicomweb.find_instances(client, study=study):
        name = dicomweb.uid_hash(ref.sop)
        if ref.sop_class.startswith(STRUCTURED_REPORT_CLASSES):
            result.skipped.append((name, "a structured report, not an image"))
            continue
        try:
            dataset = dicomweb.retrieve(client, ref)
        except dicomweb.DicomWebError as error:
            result.skipped.append((name, str(error)))
            continue
        if is_own_output(dataset):
            continue
        if "PixelData" not in dataset:
            result.skipped.append((name, "no pixel data (not an image)"))
            continue
        path = dicomweb.save_dataset(dataset, folder / f"{name}.dcm")
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        del dataset.PixelData
        images.append((dataset, path, frames))
    return images


def predict_study(
    client: object, predictor: object, study: str, push: bool = False, batch_size: int = 16,
    audit: object | None = None, recorder: object | None = None,
) -> StudyResult:
    """Classify every image (every frame) of the study; with ``push``, store the SR and Grad-CAM overlays.

    With an ``audit`` log (serving.audit.AuditLog) each answer appends a line, the input named by the sha256 of
    its decoded pixels, never by a UID.
    """
    from proctovision.imaging.images import ImageReadError, read_image

    start = time.perf_counter()
    result = StudyResult()
    window = (predictor.card.get("preprocessing") or {}).get("window")
    with tempfile.TemporaryDirectory(prefix="proctovision-pacs-") as work:
        images = gather_images(client, study, Path(work), result)
        pending: list[tuple[object, Path, int | None, object]] = []
        for dataset, path, frames in images:
            for index in range(frames):
                try:
                    picture = read_image(path, frame=index if frames > 1 else None, window=window)
                except ImageReadError as error:
                    result.skipped.append((dicomweb.uid_hash(str(dataset.SOPInstanceUID)), error.reason))
                    break
                pending.append((dataset, path, index + 1 if frames > 1 else None, picture))
        for offset in range(0, len(pending), batch_size):
            chunk = pending[offset:offset + batch_size]
            begun = time.perf_counter()
            probabilities = predictor.predict_images([picture for *_, picture in chunk])
            for (dataset, _, frame, _), row in zip(chunk, probabilities):
                result.findings.append(dicom_results.ImageFinding(
                    source=dataset, frame=frame, predicted=predictor.decide(row),
                    probabilities={name: round(float(value), 6) for name, value in zip(predictor.classes, row)},
                ))
            if audit is not None:
                audit_chunk(audit, predictor, [picture for *_, picture in chunk], result.findings[-len(chunk):],
                            (time.perf_counter() - begun) / len(chunk))
            if recorder is not None:
                from proctovision.serving.monitoring import record_findings

                record_findings(recorder, predictor, [picture for *_, picture in chunk], result.findings[-len(chunk):],
                                (time.perf_counter() - begun) / len(chunk))
        if push and result.findings:
            overlays = [predictor.heatmap_png(picture, predictor.classes.index(finding.predicted))
                        for finding, (*_, picture) in zip(result.findings, pending)]
            push_results(client, study, result, overlays, dicom_results.model_identity(predictor))
    result.seconds = time.perf_counter() - start
    return result


def audit_chunk(audit: object, predictor: object, pictures: list, findings: list, latency_s: float) -> None:
    """One audit line per image: probabilities and decision as found, with the OOD and quality flags."""
    import hashlib

    import numpy as np

    from proctovision.serving.app import prepare_images

    arrays, qualities = prepare_images(predictor, pictures)
    scores = predictor.ood_scores(predictor.raw_outputs(arrays)[1])
    for index, (picture, finding) in enumerate(zip(pictures, findings)):
        guard = predictor.guard(None if scores is None else float(scores[index]), qualities[index])
        audit.record(input_sha256=hashlib.sha256(np.asarray(picture).tobytes()).hexdigest(),
                     probabilities=finding.probabilities, threshold=predictor.threshold, decision=finding.predicted,
                     guard=guard, latency_s=latency_s, source="predict --dicomweb", frame=finding.frame)


def push_results(
    client: object, study: str, result: StudyResult, overlays: list[bytes | None],
    identity: dicom_results.ModelIdentity,
) -> None:
    """One SR series with the report, one SC series with the overlays (when the model can draw them)."""
    from pydicom.uid import generate_uid

    number = next_series_number(client, study)
    report = dicom_results.structured_report(result.findings, identity, generate_uid(), number)
    captures = []
    if all(png is not None for png in overlays):
        series_uid = generate_uid()
        captures = [dicom_results.secondary_capture(finding, png, identity, series_uid, number + 1, position)
                    for position, (finding, png) in enumerate(zip(result.findings, overlays), start=1)]
    dicomweb.store(client, [report, *captures])
    result.sr_uid = str(report.SOPInstanceUID)
    result.n_secondary_captures = len(captures)
