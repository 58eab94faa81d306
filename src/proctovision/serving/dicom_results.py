"""Results as DICOM, made with highdicom: a Comprehensive SR of the findings and Secondary Captures of Grad-CAM.

Both go in new series of the source study, with ProctoVision as the device. From the source they copy
only what DICOM requires of a derived object in the same study: the Patient and General Study modules
(highdicom's ``copy_patient_and_study_information``) and the UIDs of the images they reference.
An SR series and an SC series are separate because a series holds one modality.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

import proctovision
from proctovision.core import fileio

DEVICE = "ProctoVision"
SR_SERIES_DESCRIPTION = "ProctoVision AI findings"
SC_SERIES_DESCRIPTION = "ProctoVision Grad-CAM"
SCHEME = "99PROCTOVISION"
SCHEME_NAME = "ProctoVision local codes"
PROBABILITY_PREFIX = "PROB-"
THRESHOLD_CODE = "THRESHOLD"


@dataclass
class ImageFinding:
    """One classified image (one frame of a multi-frame instance): what the SR records about it."""

    source: "pydicom.Dataset"  # noqa: F821 - the header of the source instance, pixels dropped
    frame: int | None  # 1-based frame number for multi-frame instances
    probabilities: dict[str, float]
    predicted: str
    prediction_id: str | None = None  # the monitoring folder's id: an outcome found in PACS links back by it


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    threshold: float | None


def model_identity(predictor: object) -> ModelIdentity:
    """Name from the card (task and backbone); version from the tool's version and the model file's hash."""
    card = predictor.card
    digest = fileio.sha256(predictor.model_file)[:12]
    task = card.get("task")
    task_name = task.get("name") if isinstance(task, dict) else str(task or "model")
    name = f"{task_name} {card.get('backbone') or 'classifier'}"[:64]
    threshold = card.get("threshold")
    value = threshold.get("value") if isinstance(threshold, dict) else threshold
    return ModelIdentity(name=name, version=f"{proctovision.__version__}+{digest}"[:64],
                         threshold=None if value is None else float(value))


def class_code(name: str) -> "CodedConcept":  # noqa: F821
    from highdicom.sr import CodedConcept

    return CodedConcept(value=name.upper()[:16], scheme_designator=SCHEME, meaning=name)


def probability_code(name: str) -> "CodedConcept":  # noqa: F821
    from highdicom.sr import CodedConcept

    return CodedConcept(value=f"{PROBABILITY_PREFIX}{name.upper()}"[:16], scheme_designator=SCHEME,
                        meaning=f"Probability of {name}"[:64])


def predicted_class_code() -> "CodedConcept":  # noqa: F821
    from highdicom.sr import CodedConcept

    return CodedConcept(value="PREDICTED-CLASS", scheme_designator=SCHEME, meaning="Predicted class")


def threshold_code() -> "CodedConcept":  # noqa: F821
    from highdicom.sr import CodedConcept

    return CodedConcept(value=THRESHOLD_CODE, scheme_designator=SCHEME, meaning="Decision threshold")


def coding_schemes() -> list:
    from highdicom.coding_schemes import CodingSchemeIdentificationItem

    return [CodingSchemeIdentificationItem(designator=SCHEME, name=SCHEME_NAME, responsible_organization=DEVICE)]


def device_uid(identity: ModelIdentity) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[DEVICE, identity.name, identity.version])


def measurement_group(finding: ImageFinding, identity: ModelIdentity, number: int) -> object:
    from highdicom.sr import (
        AlgorithmIdentification, Measurement, MeasurementsAndQualitativeEvaluations, QualitativeEvaluation,
        TrackingIdentifier,
    )
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    frames = [finding.frame] if finding.frame else None
    measurements = [Measurement(name=probability_code(name), value=float(value), unit=codes.UCUM.NoUnits)
                    for name, value in finding.probabilities.items()]
    if identity.threshold is not None:
        measurements.append(Measurement(name=threshold_code(), value=identity.threshold, unit=codes.UCUM.NoUnits))
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=generate_uid(), identifier=f"prediction {finding.prediction_id}"
                                               if finding.prediction_id else f"image {number}"),
        algorithm_id=AlgorithmIdentification(name=identity.name, version=identity.version),
        finding_type=class_code(finding.predicted),
        qualitative_evaluations=[
            QualitativeEvaluation(name=predicted_class_code(), value=class_code(finding.predicted)),
        ],
        measurements=measurements,
        source_images=[source_reference(finding.source, frames)],
    )


def source_reference(source: object, frames: list[int] | None) -> object:
    """The source image, with its frame when the IOD is a multi-frame one (a legacy single-frame IOD that
    carries several frames anyway is referenced as a whole: highdicom refuses frame numbers there)."""
    from highdicom.sr import SourceImageForMeasurementGroup

    try:
        return SourceImageForMeasurementGroup.from_source_image(source, referenced_frame_numbers=frames)
    except TypeError:
        return SourceImageForMeasurementGroup.from_source_image(source)


def structured_report(
    findings: list[ImageFinding], identity: ModelIdentity, series_uid: str, series_number: int,
) -> "highdicom.sr.ComprehensiveSR":  # noqa: F821
    """A TID 1500 measurement report: per image its finding, class probabilities, threshold and reference."""
    from highdicom.sr import (
        ComprehensiveSR, DeviceObserverIdentifyingAttributes, MeasurementReport, ObservationContext, ObserverContext,
    )
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=device_uid(identity), name=DEVICE, manufacturer_name=DEVICE, model_name=identity.name,
        ),
    )
    sources = unique_sources(findings)
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[measurement_group(item, identity, number)
                              for number, item in enumerate(findings, start=1)],
    )  # no image library: its entries would copy the sources' geometry, beyond the patient and study modules
    return ComprehensiveSR(
        evidence=sources, content=report[0], series_instance_uid=series_uid, series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=DEVICE, is_complete=True,
        series_description=SR_SERIES_DESCRIPTION, manufacturer_model_name=identity.name,
        software_versions=identity.version, coding_schemes=coding_schemes(),
    )


def unique_sources(findings: list[ImageFinding]) -> list:
    seen: dict[str, object] = {}
    for item in findings:
        seen.setdefault(str(item.source.SOPInstanceUID), item.source)
    return [with_type2_attributes(source) for source in seen.values()]


TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "StudyID", "AccessionNumber")


def with_type2_attributes(source: object) -> object:
    """A header copy where the Patient and Study modules' type 2 attributes exist (empty = unknown, as DICOM
    allows), so a source that left some out can still be referenced; no value is invented."""
    import copy

    header = copy.deepcopy(source)
    if "PixelData" in header:
        del header.PixelData
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in header:
            setattr(header, keyword, None)
    return header


def overlay_pixels(png: bytes, rows: int, columns: int) -> np.ndarray:
    """The overlay PNG resized to the source image's geometry, as RGB uint8."""
    from PIL import Image

    picture = Image.open(io.BytesIO(png)).convert("RGB")
    if rows > 0 and columns > 0:
        picture = picture.resize((columns, rows), Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8)


ORIENTATION_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


def patient_orientation(source: object) -> tuple[str, str] | None:
    """Row and column directions (one letter each) from Image Orientation (Patient), when the source has it."""
    cosines = getattr(source, "ImageOrientationPatient", None)
    if cosines is None or len(cosines) != 6:
        return None
    letters = []
    for vector in (np.asarray(cosines[:3], float), np.asarray(cosines[3:], float)):
        axis = int(np.argmax(np.abs(vector)))
        letters.append(ORIENTATION_LETTERS[axis][0 if vector[axis] >= 0 else 1])
    return letters[0], letters[1]


def secondary_capture(
    finding: ImageFinding, png: bytes, identity: ModelIdentity, series_uid: str, series_number: int, number: int,
) -> "highdicom.sc.SCImage":  # noqa: F821
    """The Grad-CAM overlay of one source image, referencing it, in the source's geometry."""
    from highdicom.sc import SCImage
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    source = with_type2_attributes(finding.source)
    pixels = overlay_pixels(png, int(getattr(source, "Rows", 0) or 0), int(getattr(source, "Columns", 0) or 0))
    orientation = patient_orientation(source)
    image = SCImage(
        pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
        study_instance_uid=source.StudyInstanceUID, series_instance_uid=series_uid, series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=number, manufacturer=DEVICE,
        patient_orientation=orientation or ("L", "P"), series_description=SC_SERIES_DESCRIPTION,
        manufacturer_model_name=identity.name, software_versions=identity.version,
    )
    image.copy_patient_and_study_information(source)  # the same modules the SR copies, as the source has them
    if orientation is None:
        image.PatientOrientation = None  # type 2: present and empty when the source has no geometry
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if finding.frame:
        reference.ReferencedFrameNumber = finding.frame
    image.SourceImageSequence = [reference]
    image.DerivationDescription = f"Grad-CAM overlay for class {finding.predicted} ({identity.name})"[:1024]
    image.BurnedInAnnotation = "NO"
    return image
