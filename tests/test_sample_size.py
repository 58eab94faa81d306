"""The "Sample size" paragraph of the report and paper/ (STARD 2015 item 18, CLAIM), from `plan ... --json`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from proctovision.core import i18n
from proctovision.evaluation import power
from proctovision.reporting.report import build_report
from proctovision.reporting.sample_size import PlanFileError, read_plan, sample_size_paragraph

PUBLISHED = power.Components(114, 0.00020040252, 0.00034661371, 0.00034407483, 0.00023902837, 0.00080228827)


@pytest.fixture(autouse=True)
def english_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv(i18n.ENV_LANGUAGE, raising=False)
    monkeypatch.setenv(i18n.ENV_SETTINGS, str(tmp_path / "no-settings.yaml"))


def test_each_plan_states_its_method_inputs_and_result():
    buderer = sample_size_paragraph(power.buderer(0.90, 0.85, 0.20, 0.10))
    assert "173 consecutive participants" in buderer and "Buderer" in buderer and "prevalence of 0.2" in buderer
    exact = sample_size_paragraph(power.exact_plan(0.95, None, 0.10, 0.95))
    assert "102 participants for sensitivity" in exact and "Chu and Cole" in exact and "above 0.85" in exact
    auc = sample_size_paragraph(power.auc_power(0.85, 40, 40))
    assert "40 participants with the target condition and 40 without" in auc and "0.0437" in auc
    study = sample_size_paragraph(power.reader_study_plan(PUBLISHED, 0.0438, [6], power=0.8))
    assert "6 readers and 251 cases" in study and "random readers and random cases" in study
    assert "Hillis, Obuchowski and Berbaum 2011" in study and "K* 114" in study
    table = sample_size_paragraph(power.reader_study_plan(PUBLISHED, 0.0438, [5, 6, 10], power=0.8))
    assert "Cases needed by the number of readers: 5 readers 344, 6 readers 251, 10 readers 163." in table
    by_patient = {**power.reader_study_plan(PUBLISHED, 0.0438, [6], power=0.8), "case_unit": "patient"}
    assert "Cases are patients" in sample_size_paragraph(by_patient)
    margin = sample_size_paragraph(power.reader_study_plan(PUBLISHED, 0.0, [6], cases=300, margin=0.05))
    assert "non-inferiority with a margin of 0.05" in margin and "alpha 0.025" in margin


def test_the_paragraph_in_chinese():
    _ = i18n.gettext_for("zh-CN")
    text = sample_size_paragraph(power.reader_study_plan(PUBLISHED, 0.0438, [6], power=0.8), _)
    assert "预定样本量为 6 名阅片者、251 个病例" in text and "随机阅片者、随机病例" in text
    assert "灵敏度" in sample_size_paragraph(power.buderer(0.90, 0.85, 0.20, 0.10), _)


def test_report_and_paper_gain_the_sample_size_section(tmp_path: Path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(power.reader_study_plan(PUBLISHED, 0.0438, [6], power=0.8)))
    html = build_report([], tmp_path / "en" / "report.html", cams=False, plan=plan).read_text()
    assert 'id="sample-size"' in html and "6 readers and 251 cases" in html
    paper = tmp_path / "en" / "paper"
    assert "251 cases" in (paper / "sample_size.md").read_text()
    assert "sample_size.md" in (paper / "README.md").read_text()
    chinese = build_report([], tmp_path / "zh" / "report.html", cams=False, plan=plan, lang="zh-CN").read_text()
    assert "样本量" in chinese and "251 个病例" in chinese
    assert 'id="sample-size"' not in build_report([], tmp_path / "none.html", cams=False, paper=False).read_text()


def test_a_file_that_is_not_a_plan_is_refused_with_its_name(tmp_path: Path):
    other = tmp_path / "metrics.json"
    other.write_text('{"test": {}}')
    with pytest.raises(PlanFileError, match="metrics.json: not a plan"):
        read_plan(other)
    with pytest.raises(PlanFileError, match="file not found"):
        read_plan(tmp_path / "missing.json")
