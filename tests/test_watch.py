"""The watch loop's own decisions with a stand-in PACS: an instance over the pixel budget is listed with its reason,
and the study's other instances are still classified and pushed."""
from __future__ import annotations

from pathlib import Path

import pydicom
from video_models import export_detector

from proctovision.inference.predictor import load_predictor
from proctovision.serving import dicomweb, pacs, watch

FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_an_instance_over_the_pixel_budget_is_listed_and_the_study_goes_on(tmp_path: Path, monkeypatch):
    small, large = pydicom.dcmread(FILES / "MR_small.dcm"), pydicom.dcmread(FILES / "CT_small.dcm")  # 64², 128²
    refs = {dataset.SOPInstanceUID: dataset for dataset in (small, large)}
    stored: list = []
    monkeypatch.setenv("PROCTOVISION_PIXEL_BUDGET", str(100 * 100))
    monkeypatch.setattr(pacs, "has_own_results", lambda client, uid: False)
    monkeypatch.setattr(pacs, "next_series_number", lambda client, uid: 900)
    monkeypatch.setattr(dicomweb, "find_instances", lambda client, study: [
        dicomweb.InstanceRef("1.2", "1.3", uid, str(dataset.SOPClassUID)) for uid, dataset in refs.items()])
    monkeypatch.setattr(dicomweb, "retrieve", lambda client, ref: refs[ref.sop].copy())
    monkeypatch.setattr(dicomweb, "store", lambda client, datasets: stored.extend(datasets))
    predictor = load_predictor(export_detector(tmp_path / "model"))
    state, lines = watch.WatchState(since="all"), []
    assert watch.process_study(object(), predictor, "1.2", "k", state, lines.append, 3) == 1
    skipped = [line for line in lines if "skipped:" in line]
    assert len(skipped) == 1 and dicomweb.uid_hash(str(large.SOPInstanceUID)) in skipped[0]
    assert "128 x 128 = 16,384 pixel values, over the budget of 10,000" in skipped[0]
    assert state.done["k"]["images"] == 1 and state.done["k"]["skipped"] == 1 and stored
