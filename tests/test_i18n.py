"""English and Simplified Chinese: complete catalogues, the report, the model card, the page, figures, the browser."""
from __future__ import annotations

import json
import os
import re
import string
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from conftest import chromium, needs_chromium, solid_image, tiny_run_config
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from proctovision.core import i18n
from proctovision.reporting import figures

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "proctovision"
HAS_CJK_FONT = figures.cjk_font() is not None or bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def no_installation_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The developer's own settings file or environment must not choose the language of these tests."""
    monkeypatch.delenv(i18n.ENV_LANGUAGE, raising=False)
    monkeypatch.setenv(i18n.ENV_SETTINGS, str(tmp_path / "no-settings.yaml"))


def zh_catalogue():
    with open(i18n.catalogue_path("zh-CN"), "rb") as stream:
        return read_po(stream)


def placeholders(text: str) -> tuple[set, set]:
    braces = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    return braces, set(re.findall(r"%\((\w+)\)s", text))


# --- the catalogues ---
def test_every_message_is_translated_with_the_same_placeholders():
    catalogue = zh_catalogue()
    messages = [message for message in catalogue if message.id]
    assert len(messages) > 100
    untranslated = [message.id for message in messages if not message.string or message.fuzzy
                    or message.string == message.id]
    assert untranslated == []
    for message in messages:
        assert placeholders(message.string) == placeholders(message.id), message.id
        assert re.search(r"[\u4e00-\u9fff]", message.string), f"no Chinese in the translation of {message.id!r}"
    assert [problem for problem in catalogue.check()] == []


def test_every_message_in_the_sources_is_in_the_catalogue():
    """A string marked with _() or N_() in code or templates but missing from the .po fails here."""
    method_map = [("**/templates/**.j2", "jinja2"), ("**/static/**.html", "jinja2"), ("**/static/**.js", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.j2": {"extensions": "jinja2.ext.i18n"},
               "**/static/**.html": {"extensions": "jinja2.ext.i18n"}, "**/static/**.js": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "N_": None}
    found = {message for _, _, message, _, _ in extract_from_dir(str(PACKAGE), method_map, options, keywords)
             if isinstance(message, str)}
    known = {message.id for message in zh_catalogue() if message.id}
    assert len(found) > 100
    assert sorted(found - known) == []
    assert {"Live video", "This image does not look like the images the model was trained on", "too dark",
            "overexposed", "blurred"} <= found, "strings of the pages to come are in the catalogue already"


def glossary() -> list[tuple[str, str]]:
    rows = []
    for line in (ROOT / "docs" / "glossary-zh-CN.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] not in ("English (msgid)", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def test_catalogue_follows_the_glossary_of_medical_terms():
    catalogue = {message.id: message.string for message in zh_catalogue() if message.id}
    rows = glossary()
    assert ("sensitivity", "灵敏度") in rows and ("hemorrhoid", "内痔") in rows and len(rows) > 30
    for english, chinese in rows:
        if english in catalogue:
            assert catalogue[english] == chinese, english
        else:
            using = [text for msgid, text in catalogue.items() if english.lower() in msgid.lower()]
            assert using and all(chinese in text for text in using), english
    gettext = i18n.gettext_for("zh-CN")
    assert [gettext(term) for term in ("internal_orifice", "specificity", "accuracy", "roc_auc")] == [
        "肛瘘内口", "特异度", "准确率", "受试者工作特征曲线下面积（AUC）"]


# --- choosing the language ---
@pytest.mark.parametrize("given, expected", [
    ("zh-CN", "zh-CN"), ("zh_CN", "zh-CN"), ("zh", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("en", "en"), ("en-GB", "en"),
    (None, "en"),
])
def test_language_tags_are_normalised(given, expected):
    assert i18n.normalise(given) == expected


@pytest.mark.parametrize("given", ["fr", "zh-TW", "zh-Hant", "klingon!"])
def test_a_language_without_catalogue_is_refused(given):
    with pytest.raises(i18n.LanguageError, match="choose one of en, zh-CN"):
        i18n.normalise(given)


@pytest.mark.parametrize("header, expected", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,en;q=0.9,zh-CN;q=0.8", "en"), ("fr-FR,zh;q=0.5", "zh-CN"),
    ("fr-FR, de", None), ("en;q=0.2, zh-CN;q=0.7", "zh-CN"), ("", None), (None, None),
])
def test_accept_language_picks_the_best_catalogue(header, expected):
    assert i18n.from_accept_language(header) == expected


def test_installation_default_from_environment_then_settings_file(monkeypatch, tmp_path):
    assert i18n.default_language() == "en"
    settings = tmp_path / "settings.yaml"
    settings.write_text("language: zh-CN\n", encoding="utf-8")
    monkeypatch.setenv(i18n.ENV_SETTINGS, str(settings))
    assert i18n.default_language() == "zh-CN" and i18n.resolve(None) == "zh-CN" and i18n.resolve("en") == "en"
    monkeypatch.setenv(i18n.ENV_LANGUAGE, "en")
    assert i18n.default_language() == "en"
    settings.write_text("language: xx-YY\n", encoding="utf-8")
    monkeypatch.delenv(i18n.ENV_LANGUAGE)
    with pytest.raises(i18n.LanguageError):
        i18n.default_language()


def test_dates_follow_the_locale():
    import datetime as dt

    moment = dt.datetime(2026, 11, 25, 14, 5)
    assert i18n.format_timestamp(moment, "zh-CN").startswith("2026年11月25日")
    assert i18n.format_timestamp(moment, "en").startswith("Nov 25, 2026")


def test_catalogues_ship_with_the_package():
    import tomllib

    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = settings["package-data"]["proctovision"]
    shipped = [path for path in PACKAGE.rglob("*") if any(path.relative_to(PACKAGE).match(p) for p in patterns)]
    assert i18n.catalogue_path("zh-CN") in shipped
    assert PACKAGE / "serving" / "static" / "index.html" in shipped


# --- figures ---
@pytest.mark.skipif(not HAS_CJK_FONT, reason="needs a CJK font such as fonts-noto-cjk (.ci/run installs it)")
def test_a_chinese_figure_has_no_missing_glyphs(tmp_path):
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as caught, figures.figure_language("zh-CN") as _:
        warnings.simplefilter("always")
        figure, axis = plt.subplots(figsize=(3, 2))
        axis.plot([0, 1], [0, 1], label=_("test"))
        axis.set_title(_("ROC curves"))
        axis.set_xlabel(_("specificity"))
        axis.legend()
        used = figure.axes[0].title.get_fontname()
        figures.save(figure, tmp_path / "zh.png")
    assert _("ROC curves") == "受试者工作特征曲线"
    assert "CJK" in used or used == figures.cjk_font()
    glyphs = [str(w.message) for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert glyphs == []
    assert (tmp_path / "zh.png").stat().st_size > 2000


def test_without_a_cjk_font_figures_warn_and_stay_english(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(figures, "cjk_font", lambda: None)
    with pytest.warns(figures.MissingFontWarning, match="fonts-noto-cjk"):
        with figures.figure_language("zh-CN") as _:
            assert _("accuracy") == "accuracy"
            figure, axis = plt.subplots()
            axis.set_title(_("ROC curves"))
            figures.save(figure, tmp_path / "en.png")


# --- the model card ---
def test_model_card_in_chinese(run_dir):
    from proctovision.artefacts.runs import read_run
    from proctovision.artefacts.card import build_card, card_markdown

    card = build_card(read_run(run_dir))
    card["metrics"] = {"test": {"n_images": 4, "n_patients": 4, "metrics": {
        "sensitivity": {"value": 0.75, "ci95": [0.5, 1.0]}, "specificity": {"value": 1.0, "ci95": [1.0, 1.0]}}}}
    chinese, english = card_markdown(card, "zh-CN"), card_markdown(card, "en")
    assert chinese.startswith("# 模型说明卡：内痔")
    for term in ("类别（按输出顺序）：正常, 内痔", "灵敏度", "特异度", "95% 置信区间", "测试集", "非医疗器械",
                 "默认值（模型未经评估）"):
        assert term in chinese, term
    assert "Model card" not in chinese and "sensitivity" not in chinese
    assert english.startswith("# Model card: hemorrhoid") and "| sensitivity | 0.75 | 0.5 - 1.0 |" in english


def test_export_writes_the_card_in_the_chosen_language_and_the_json_in_english(run_dir, tmp_path):
    from proctovision.artefacts.runs import read_run
    from proctovision.artefacts.card import build_card, read_card, write_card

    write_card(tmp_path, build_card(read_run(run_dir)), "zh-CN")
    assert (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8").startswith("# 模型说明卡：内痔")
    assert read_card(tmp_path)["intended_use"].startswith("Research decision support")


# --- the page ---
def test_page_follows_accept_language_and_the_switch(run_dir):
    from proctovision.serving.app import create_app

    client = TestClient(create_app(run_dir, load_in_background=False))
    chinese = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert chinese.status_code == 200 and chinese.headers["content-language"] == "zh-CN"
    assert '<html lang="zh-Hans">' in chinese.text and "将内镜图像或 DICOM 切片拖放到此处" in chinese.text
    classes = json.loads(re.search(r'<script type="application/json" id="classes">(\{.*?\})</script>', chinese.text).group(1))
    assert classes["hemorrhoid"] == "内痔" and classes["internal_orifice"] == "肛瘘内口"
    assert "Drop an endoscopic image" not in chinese.text
    switched = client.get("/?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "Drop an endoscopic image" in switched.text and switched.headers["content-language"] == "en"
    assert "Accept-Language" in switched.headers["vary"]
    assert 'href="?lang=zh-CN"' in switched.text and "简体中文" in switched.text
    assert "Drop an endoscopic image" in client.get("/", headers={"Accept-Language": "fr"}).text


@needs_chromium
def test_chromium_with_a_chinese_locale_reads_the_result_in_chinese(run_dir: Path, tmp_path: Path):
    from proctovision.serving.app import create_app
    from proctovision.serving.background import running_server

    image = solid_image(tmp_path / "upload.png", (130, 50, 120), size=(60, 50))
    with running_server(create_app(run_dir, load_in_background=False)) as url, chromium() as browser:
        page = browser.new_context(locale="zh-CN").new_page()
        page.goto(url)
        assert "拖放到此处" in page.inner_text("#drop")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("text=完成。", timeout=30_000)
        assert page.inner_text("#predicted") in {"正常", "内痔"}
        assert page.inner_text("#threshold") == "内痔的概率不低于 0.500 时判为内痔。"
        rows = page.inner_text("#probabilities")
        assert "正常" in rows and "内痔" in rows and "hemorrhoid" not in rows
        assert page.get_attribute("#overlay", "src").startswith("data:image/png;base64,")
        page.click("text=English")
        page.wait_for_selector("text=Drop an endoscopic image")
        assert page.evaluate("document.documentElement.lang") == "en"


# --- the report ---
class Readable(HTMLParser):
    """Text a reader sees as headings, table headers, captions and contents entries."""

    TAGS = {"h1", "h2", "h3", "th", "figcaption", "nav", "title"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.TAGS and tag in self.open:
            self.open.remove(tag)

    def handle_data(self, data):
        if self.open and data.strip():
            self.texts.append(data.strip())


# Names that stay as they are in Chinese text (methods, abbreviations, the product, this test's data).
LATIN = {"ProctoVision", "Grad-CAM", "CLAIM", "ROC", "AUC", "ECE", "Brier", "Kappa", "McNemar", "DeLong", "LDRf",
         "run", "test_efficientnet", "scratch", "OR-H"}


def english_words(texts: list[str]) -> set[str]:
    words = set()
    for text in texts:
        for word in re.findall(r"[A-Za-z][A-Za-z_\-]+", text):
            if word not in LATIN and len(word) > 2:
                words.add(word)
    return words


@pytest.fixture
def evaluated_run(split_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    from proctovision.data.manifest import read_manifest
    from proctovision.workflows.compare import compare
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.data.synthetic.readers import simulate_readers
    from proctovision.workflows.training import train

    run = train(tiny_run_config(split_file, tmp_path / "r1", epochs=1), progress=False).root
    evaluate_run(run, "val", n_resamples=20)
    evaluate_run(run, "test", n_resamples=20)
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), {}, 2, tmp_path / "readers.csv", seed=3)
    compare([run], tmp_path / "cmp", readers=readers, n_resamples=20)
    return run, tmp_path / "cmp"


def test_report_in_chinese_and_in_english(evaluated_run, tmp_path, monkeypatch):
    from proctovision.cli import app

    run, comparison = evaluated_run
    runner = CliRunner()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["report", str(run), "--comparison", str(comparison), "--lang", "zh-CN",
                                     "--no-cams", "--out", str(tmp_path / "zh.html")])
    assert result.exit_code == 0, result.output
    if HAS_CJK_FONT:
        assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == [], "Chinese training curves drawn"
    chinese = (tmp_path / "zh.html").read_text(encoding="utf-8")
    for title in ("目录", "数据", "配置", "评价指标及 95% 置信区间", "图表", "Grad-CAM 热图集", "本报告未计算 Grad-CAM 热图。",
                  "CLAIM 清单（本次运行可填写的条目）",
                  "模型与阅片者对比", "配对检验", "训练曲线", "受试者工作特征曲线（测试集）", "混淆矩阵（测试集）",
                  "灵敏度", "特异度", "准确率", "参考标准", "生成于 ", "模型与阅片者的准确率、召回率、精确率和 F1 值",
                  "<figcaption>阅片时间</figcaption>", "约登指数"):
        assert title in chinese, title
    parser = Readable()
    parser.feed(chinese)
    assert english_words(parser.texts) == set(), "headings, table headers and captions are all Chinese"
    assert '<html lang="zh-Hans">' in chinese and "<pre>" not in chinese.split('id="comparison"')[1]
    senior = next(row for row in json.loads((comparison / "comparison.json").read_text())["table"]
                  if row["participant"] == "senior (simulated)")
    cell = f"<td>{senior['accuracy']:.3f} ({senior['accuracy_ci_low']:.3f} – {senior['accuracy_ci_high']:.3f})</td>"
    assert re.search(r"<tr><td>senior \(simulated\)</td><td>模拟阅片者</td>" + re.escape(cell), chinese), \
        "decimal points as in English; simulated readers labelled"
    assert "多阅片者多病例分析" in chinese and "模拟阅片者" in chinese

    monkeypatch.setenv(i18n.ENV_LANGUAGE, "en")
    result = runner.invoke(app, ["report", str(run), "--comparison", str(comparison), "--no-cams",
                                 "--out", str(tmp_path / "en.html")])
    assert result.exit_code == 0, result.output
    english = (tmp_path / "en.html").read_text(encoding="utf-8")
    for title in ("Contents", "Metrics with 95% confidence intervals", "Models and readers", "Paired tests",
                  "ROC (test)", "sensitivity"):
        assert title in english, title
    assert "灵敏度" not in english
    from proctovision.reporting.report import embed

    for name in ("confusion_test.png", "reliability_test.png", "roc_test.png", "pr_test.png"):
        drawn_by_evaluation = embed(run / "figures" / name)
        assert drawn_by_evaluation in english and drawn_by_evaluation not in chinese, f"{name} redrawn in Chinese"


@pytest.mark.parametrize("command", ["report", "export"])
def test_report_and_export_refuse_an_unknown_language(command, tmp_path):
    from proctovision.cli import app

    result = CliRunner().invoke(app, [command, str(tmp_path), "--lang", "fr", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "error:" in result.output and "'fr'" in result.output
    assert not (tmp_path / "out").exists()


def test_live_page_speaks_chinese(run_dir):
    from fastapi.testclient import TestClient

    from proctovision.serving.app import create_app

    client = TestClient(create_app(run_dir, load_in_background=False))
    page = client.get("/live", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert page.status_code == 200 and page.headers["content-language"] == "zh-CN"
    for text in ("实时视频", "摄像头或采集卡", "平滑概率", "丢帧", "开始"):
        assert text in page.text, text
    english = client.get("/live?lang=en").text
    assert "Camera or capture card" in english and "assets/live.js" in english


def test_study_tables_of_a_reproduction_speak_the_reports_language():
    import pandas as pd

    from proctovision.reporting.report import study_tables

    table = pd.DataFrame([{"participant": "resnet18", "kind": "model", "accuracy measured": "0.900 (0.800-0.950)",
                           "accuracy published": "0.912"}])
    [chinese] = study_tables([("hemorrhoid", table)], i18n.gettext_for("zh-CN"))
    assert chinese["heading"].startswith("内痔：实测值")
    assert chinese["headers"] == ["参与者", "类型", "准确率 实测", "准确率 文献报道"], chinese["headers"]
    assert chinese["rows"] == [["resnet18", "模型", "0.900 (0.800-0.950)", "0.912"]]
    [english] = study_tables([("hemorrhoid", table)])
    assert english["headers"] == ["participant", "kind", "accuracy measured", "accuracy published"]
