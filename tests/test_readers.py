"""readers.csv: the optional score and condition columns, and what is refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from proctovision.evaluation.readers import ReadersError, participant_name, read_readers

CLASSES = ("normal", "hemorrhoid")


def test_score_and_condition_are_read_and_times_kept_per_condition(tmp_path: Path):
    path = tmp_path / "readers.csv"
    path.write_text("path,reader,label,score,condition,reading_time_s\n"
                    "a.png,r1,Normal,1,unaided,30\nb.png,r1,hemorrhoid,4.5,unaided,30\n"
                    "a.png,r1,normal,2,aided,20\nb.png,r1,hemorrhoid,,aided,20\n")
    frame, times = read_readers(path, CLASSES)
    assert list(frame.columns) == ["path", "frame", "reader", "label", "score", "condition", "simulated"]
    assert frame["score"].iloc[:3].tolist() == [1.0, 4.5, 2.0] and np.isnan(frame["score"].iloc[3])
    assert times == {"r1 (unaided)": 30.0, "r1 (aided)": 20.0}
    assert frame["path"].iloc[0] == str(tmp_path / "a.png")


def test_without_the_optional_columns_nothing_changes(tmp_path: Path):
    path = tmp_path / "readers.csv"
    path.write_text("path,reader,label\na.png,r1,normal\na.png,r1,normal\n")
    frame, times = read_readers(path, CLASSES)
    assert len(frame) == 1, "a row repeated verbatim is kept once"
    assert frame["condition"].tolist() == [""] and frame["score"].isna().all() and times == {}
    assert participant_name("r1", "") == "r1" and participant_name("r1", "aided") == "r1 (aided)"


def test_bad_scores_and_contradicting_readings_are_refused(tmp_path: Path):
    path = tmp_path / "readers.csv"
    path.write_text("path,reader,label,score\na.png,r1,normal,high\n")
    with pytest.raises(ReadersError, match=r"readers.csv: scores \['high'\] are not numbers"):
        read_readers(path, CLASSES)
    path.write_text("path,reader,label\na.png,r1,normal\na.png,r1,hemorrhoid\n")
    with pytest.raises(ReadersError, match="r1.*a.png two different readings"):
        read_readers(path, CLASSES)
