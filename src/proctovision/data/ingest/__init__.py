"""Ingest: turn a user's folder or CSV into a clean manifest and a quality report.

Bad rows never stop the batch: each is left out and listed, by file and reason, in
``qc.json`` and a readable ``qc.md`` beside the manifest.
"""
from __future__ import annotations

from proctovision.data.ingest.files import (
    HEADERLESS_NOTE,
    DicomOptions,
    FileOutcome,
    collect,
    describe_frame,
    dicom_base_row,
    export_png,
    header_uid,
    inspect_dicom,
    inspect_file,
    inspect_picture,
    inspect_rows,
    reading_settings,
    report_progress,
    sop_instance_uids,
)
from proctovision.data.ingest.quality import (
    duplicate_groups,
    near_duplicate_pairs,
    quality_report,
    render_quality_markdown,
    write_outputs,
)
from proctovision.data.ingest.run import fill_patient_ids, ingest, rows_from_labelled_folder
from proctovision.data.ingest.sources import (
    Exclusion,
    IngestError,
    IngestResult,
    Progress,
    file_sha256,
    rows_from_class_folders,
    rows_from_csv,
    walk_files,
)

__all__ = ["DicomOptions", "Exclusion", "FileOutcome", "HEADERLESS_NOTE", "IngestError", "IngestResult", "Progress", "collect", "describe_frame", "dicom_base_row", "duplicate_groups", "export_png", "file_sha256", "fill_patient_ids", "header_uid", "ingest", "inspect_dicom", "inspect_file", "inspect_picture", "inspect_rows", "near_duplicate_pairs", "quality_report", "reading_settings", "render_quality_markdown", "report_progress", "rows_from_class_folders", "rows_from_csv", "rows_from_labelled_folder", "sop_instance_uids", "walk_files", "write_outputs"]
