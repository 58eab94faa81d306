"""Figures and tables for a paper beside the report: PDF/SVG/300 dpi PNG at a column width, fonts embedded;
CSV, booktabs LaTeX and .docx; zh-CN labels drawn in a CJK font."""
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import own_run
from PIL import Image

from proctovision.data.manifest import read_manifest
from proctovision.reporting import paper
from proctovision.reporting.report import build_report
from proctovision.workflows.compare import compare
from proctovision.workflows.evaluate import evaluate_run
from proctovision.workflows.ood import fit_run_ood


@pytest.fixture(scope="module")
def reports(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared run with its OOD guard, evaluated (Grad-CAM and subgroups by patient included), compared with
    two readers, reported in English and Chinese."""
    root = tmp_path_factory.mktemp("paper")
    run = own_run(run_dir, root)
    fit_run_ood(run)
    evaluate_run(run, "val", n_resamples=20)
    evaluate_run(run, "test", n_resamples=20, cams=True, by=["patient_id"])
    rows = read_manifest(run_dir.parent / "s.csv").query("split == 'test'")
    lines = ["path,reader,label,reading_time_s"]
    for reader, flip in (("senior", 99), ("junior", 1)):
        for index, (path, label) in enumerate(zip(rows["path"], rows["label"])):
            wrong = index % 7 == flip
            lines.append(f"{path},{reader},{('normal' if label == 'hemorrhoid' else 'hemorrhoid') if wrong else label},"
                         f"{30 + index}")
    (root / "readers.csv").write_text("\n".join(lines) + "\n")
    compare([run], root / "cmp", readers=root / "readers.csv", split="test", n_resamples=20)
    return {lang: build_report([run], root / lang / "report.html", comparison=root / "cmp", lang=lang).parent / "paper"
            for lang in ("en", "zh-CN")}


def figure_stems(folder: Path) -> dict[str, str]:
    """README.md's figure rows: stem → width (single | double)."""
    rows = re.findall(r"\| `([^`]+)\.pdf` `\1\.svg` `\1\.png` \| [^|]+ \| (single|double) column \|",
                      (folder / "README.md").read_text())
    return dict(rows)


def test_every_figure_is_vector_pdf_svg_and_a_300_dpi_png_at_a_column_width(reports: dict[str, Path]):
    folder = reports["en"]
    stems = figure_stems(folder)
    names = {Path(stem).name for stem in stems}
    assert {"training_curves", "roc_test", "confusion_test", "reliability_test", "gradcam_test",
            "models_and_readers", "reading_time"} <= names, names
    assert stems[next(s for s in stems if s.endswith("gradcam_test"))] == "double"
    assert stems[next(s for s in stems if s.endswith("models_and_readers"))] == "double"
    assert stems[next(s for s in stems if s.endswith("roc_test"))] == "single"
    for stem, width in stems.items():
        pdf = (folder / f"{stem}.pdf").read_bytes()
        assert b"/FontFile2" in pdf, f"{stem}: fonts embedded as TrueType"
        if not re.search(r"gradcam|confusion", stem):  # pictures and the imshow matrix hold one image each
            assert b"/Subtype /Image" not in pdf, f"{stem}: a plot is vector, not a picture"
        assert b"/Type3" not in pdf, "English figures embed TrueType (Type 42), never Type 3"
        svg = (folder / f"{stem}.svg").read_text()
        assert "<path" in svg and "<text" not in svg, "SVG text is drawn as paths"
        with Image.open(folder / f"{stem}.png") as png:
            assert round(png.info["dpi"][0]) == 300, stem
            assert png.width == {"single": 1004, "double": 2067}[width], (stem, png.size)


def assert_in_paper(folder: Path, name: str, width: str) -> str:
    """The figure ``name`` is listed in README.md at ``width`` and lies there as PDF, SVG and a 300 dpi PNG."""
    stems = figure_stems(folder)
    found = [stem for stem in stems if Path(stem).name == name]
    assert found, (name, sorted(stems))
    for stem in found:
        assert stems[stem] == width, (stem, stems[stem])
        assert all((folder / f"{stem}.{kind}").stat().st_size > 0 for kind in ("pdf", "svg", "png")), stem
        with Image.open(folder / f"{stem}.png") as png:
            assert round(png.info["dpi"][0]) == 300, stem
            assert png.width == {"single": 1004, "double": 2067}[width], (stem, png.size)
    return found[0]


def test_the_ood_histogram_and_subgroup_forest_plots_go_to_paper(reports: dict[str, Path]):
    assert_in_paper(reports["en"], "ood_scores", "double")
    forest = assert_in_paper(reports["en"], "forest_patient_id_accuracy", "single")
    assert "/subgroups_test/" in f"/{forest}"
    svg = (reports["zh-CN"] / f"{assert_in_paper(reports['zh-CN'], 'ood_scores', 'double')}.svg").read_text()
    assert "阈值" in svg, "the OOD histogram is labelled in the report's language"


def test_compare_keeps_its_curves_and_paper_redraws_roc_pr_and_the_readers_roc(reports: dict[str, Path]):
    import json

    curves = json.loads((reports["en"].parent.parent / "cmp" / "comparison.json").read_text())["curves"]
    [model] = curves["models"].values()
    assert len(model["fpr"]) == len(model["tpr"]) >= 2 and len(model["recall"]) == len(model["precision"])
    assert 0 <= model["auc"] <= 1 and set(curves["readers"]) == {"senior", "junior"}
    assert all(0 <= value <= 1 for point in curves["readers"].values() for value in point)
    for name in ("roc", "pr", "readers_roc"):
        assert_in_paper(reports["en"], name, "single")
    svg = (reports["zh-CN"] / f"{assert_in_paper(reports['zh-CN'], 'readers_roc', 'single')}.svg").read_text()
    assert "阅片者" in svg, "the readers' ROC is labelled in the report's language"


def test_every_table_goes_out_as_csv_booktabs_latex_and_docx(reports: dict[str, Path]):
    import docx

    folder = reports["en"]
    stems = re.findall(r"\| `([^`]+)\.csv` `\1\.tex` `\1\.docx` \|", (folder / "README.md").read_text())
    names = {Path(stem).name for stem in stems}
    assert {"metrics_test", "metrics_val", "comparison", "paired_tests", "mrmc"} <= names, names
    for stem in stems:
        frame = pd.read_csv(folder / f"{stem}.csv")
        latex = (folder / f"{stem}.tex").read_text()
        assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex, stem
        [table] = docx.Document(str(folder / f"{stem}.docx")).tables
        assert len(table.rows) == len(frame) + 1, stem
        assert [cell.text for cell in table.rows[0].cells] == list(frame.columns)
    [stem] = [s for s in stems if s.endswith("/comparison")]
    assert {"senior", "junior"} <= set(pd.read_csv(folder / f"{stem}.csv")["participant"])
    document = docx.Document(str(folder / f"{stem}.docx"))
    assert "senior" in {row.cells[0].text for row in document.tables[0].rows}


def test_chinese_figures_carry_chinese_labels_in_an_embedded_cjk_font(reports: dict[str, Path]):
    folder = reports["zh-CN"]
    stems = figure_stems(folder)
    bars = next(stem for stem in stems if stem.endswith("models_and_readers"))
    svg = (folder / f"{bars}.svg").read_text()
    assert "准确率" in svg, "the zh-CN label is drawn (matplotlib keeps the text in a comment beside its paths)"
    pdf = (folder / f"{bars}.pdf").read_bytes()
    assert re.search(rb"/BaseFont /[A-Z]{6}\+NotoSansCJK", pdf), "the CJK font is embedded (subset)"
    expected = paper.pdf_fonttype("zh-CN")
    assert (b"/Type3" in pdf) == (expected == 3) and (b"/FontFile2" in pdf) == (expected == 42)
    [metrics] = re.findall(r"`([^`]+/metrics_test)\.csv`", (folder / "README.md").read_text())
    assert "准确率" in set(pd.read_csv(folder / f"{metrics}.csv").iloc[:, 0]), "metric names in Chinese"


def test_noto_cjk_has_cff_outlines_so_it_is_embedded_as_type_3():
    """Matplotlib writes a CFF font's data under /FontFile2 when asked for Type 42 (invalid PDF); Type 3 embeds it."""
    from proctovision.reporting import figures

    font = figures.cjk_font()
    if font is None or not font.startswith("Noto"):
        pytest.skip("needs fonts-noto-cjk")
    assert not paper.has_truetype_outlines(font)
    assert paper.pdf_fonttype("zh-CN") == 3 and paper.pdf_fonttype("en") == 42
