"""The counts and columns that monitor status reads from the database equal the same figures worked out row by row
in pandas from every recorded answer, on SQLite and PostgreSQL, with a period and without."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import database, postgres  # noqa: F401
from proctovision.evaluation import drift
from proctovision.monitoring import tallies
from proctovision.monitoring.feedback import record_feedback
from proctovision.monitoring.folder import init_folder, open_folder
from proctovision.monitoring.outcomes import import_outcomes
from proctovision.monitoring.store import PredictionRecord, new_prediction_id
from proctovision.monitoring.summary import status

START = dt.datetime(2026, 3, 1)


def record_varied(monitor: object, rng: np.random.Generator, n: int = 400) -> list[dict]:
    """Every status, unit and source; flags and latencies sometimes missing; a decision outside the classes."""
    classes, rows = monitor.classes, []
    for index in range(n):
        p = float(rng.random())
        answered = rng.random() < 0.9
        decision = (classes[int(p >= 0.5)] if rng.random() > 0.03 else "uncertain") if answered else None
        rows.append({"id": new_prediction_id(), "at": START + dt.timedelta(minutes=11 * index + float(rng.random())),
                     "model_sha256": monitor.model_sha256, "source": str(rng.choice(["serve", "watch", "video"])),
                     "unit": str(rng.choice(["image", "second", "procedure"])),
                     "status": "answered" if answered else str(rng.choice(["error", "refused"])),
                     "probabilities": {classes[0]: 1 - p, classes[1]: p} if answered else None,
                     "decision": decision, "score": p if decision in classes else None,
                     "ood_score": None if rng.random() < 0.1 else float(rng.gamma(2.0, 30.0)),
                     "latency_s": None if rng.random() < 0.1 else float(rng.gamma(2.0, 0.01)), "frames": 1,
                     **{flag: None if rng.random() < 0.15 else bool(rng.random() < 0.1) for flag in tallies.FLAGS}})
    with monitor.sessions.begin() as session:
        session.execute(insert(PredictionRecord), rows)
    return rows


def test_status_counts_in_the_database_what_pandas_counts_row_by_row(database: str | None, evaluated_run: Path,
                                                                     monitor_dir: Path, tmp_path: Path) -> None:
    folder = monitor_dir if database is None else init_folder(tmp_path / "pg", evaluated_run, db_url=database).folder
    rng = np.random.default_rng(4)
    with open_folder(folder) as monitor:
        rows = record_varied(monitor, rng)
        labelled = [row["id"] for row in rows if row["decision"] in monitor.classes][:60]
        (tmp_path / "o.csv").write_text("prediction_id,label,source\n" + "".join(
            f"{ident},{monitor.classes[index % 2]},pathology\n" for index, ident in enumerate(labelled[:40])))
        import_outcomes(monitor, tmp_path / "o.csv")
        for ident in labelled[35:60]:
            record_feedback(monitor, ident, "agree", clinician="lee")
        for since, until in ((None, None), (START + dt.timedelta(hours=10), START + dt.timedelta(hours=40))):
            answers = monitor.answers(since, until)
            answered = answers[answers["status"] == "answered"]
            counted = tallies.counts(monitor, since, until)
            assert counted["answered"] == len(answered) and counted["first"] == answered["at"].min()
            assert counted["by_source"] == answered["source"].value_counts().to_dict()
            assert counted["errors"] == int((answers["status"] == "error").sum())
            assert counted["refusals"] == int((answers["status"] == "refused").sum())
            for flag in tallies.FLAGS:
                known = answered[flag].dropna().astype(bool)
                assert counted["flags"][flag] == (len(known), int(known.sum()))
            arrays = tallies.answered_arrays(monitor, since, until)
            decided = answered["decision"].map({name: index for index, name in enumerate(monitor.classes)})
            assert np.array_equal(arrays["decision"], decided.to_numpy(float), equal_nan=True)
            assert np.array_equal(arrays["latency_s"], answered["latency_s"].to_numpy(float), equal_nan=True)
            assert set(tallies.labelled_answers(monitor, ("id",), since, until)["id"]) == set(answered["id"]) & set(
                labelled)

            document = status(monitor, since, until)
            kept = answered[answered["score"].notna() & answered["decision"].isin(monitor.classes)]
            p = kept["score"].to_numpy(float)
            expected = drift.cbpe(np.stack([1 - p, p], axis=1), (kept["decision"] == monitor.classes[1]).to_numpy(int))
            assert document["estimated"] == expected and document["predictions"] == len(answered)
            assert document["inputs"]["ood_mean_score"] == answered["ood_score"].mean()
            assert document["inputs"]["blurred_share"] == answered["blurred"].dropna().astype(bool).mean()
            latency = answered["latency_s"].dropna().to_numpy(float) * 1000
            assert document["operations"]["latency_ms_p95"] == np.percentile(latency, 95)
            hours = (answered["at"].max() - answered["at"].min()).total_seconds() / 3600
            assert document["operations"]["per_hour"] == pytest.approx(len(answered) / hours, rel=1e-12)
            assert document["confirmed"]["n"] == len(set(answered["id"]) & set(labelled))
