"""The report: one self-contained HTML file, opened in Debian's headless Chromium and checked section by section."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium, needs_chromium, tiny_run_config
from PIL import Image

from proctovision.workflows.compare import compare
from proctovision.workflows.evaluate import evaluate_run
from proctovision.reporting.report import build_report
from proctovision.workflows.training import train

SECTIONS = ("data", "qc", "config", "metrics", "figures", "gradcam", "claim", "comparison")


@pytest.fixture
def report(split_file: Path, tmp_path: Path) -> Path:
    run = train(tiny_run_config(split_file, tmp_path / "run", epochs=2), progress=False).root
    evaluate_run(run, "val", n_resamples=20)
    evaluate_run(run, "test", n_resamples=20, cams=True)
    compare([run], tmp_path / "cmp", n_resamples=20)
    shutil.rmtree(run / "checkpoints")  # the report reads files only: it never loads a model
    return build_report([run], tmp_path / "report.html", comparison=tmp_path / "cmp")


def test_report_is_self_contained_and_has_every_section(report: Path):
    html = report.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert "src=\"http" not in html and "href=\"http" not in html, "nothing is fetched from the network"
    assert html.count("data:image/png;base64,") >= 6
    for heading in ("Training curves", "ROC (test)", "Confusion matrix (test)", "Calibration (test)",
                    "Precision-recall (test)", "Grad-CAM: right and wrong cases", "CLAIM checklist"):
        assert heading in html, heading
    assert 'id="synthetic"' not in html, "only demo data are called synthetic"


@needs_chromium
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path):
    outside = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda request: outside.append(request.url)
                if not request.url.startswith(("file:", "data:")) else None)
        page.goto(report.as_uri())
        for section in SECTIONS:
            assert page.locator(f"#{section}").count() >= 1, section
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert outside == []
    with Image.open(tmp_path / "report.png") as shot:
        pixels = np.asarray(shot.convert("L"), dtype=float)
    assert shot.height > 2000 and pixels.std() > 20, "the page is not blank"


def test_demo_data_are_called_synthetic(tmp_path: Path):
    from proctovision.demo.pipeline import run_demo

    summary = run_demo(tmp_path / "demo", epochs=2, patients=16, images_per_patient=2)
    html = Path(summary["paths"]["report"]).read_text()
    assert 'id="synthetic"' in html and "SYNTHETIC demo data" in html
    assert 'id="comparison"' in html and "senior" in html


def test_gallery_decides_at_the_operating_threshold(split_file: Path, tmp_path: Path):
    """The right/wrong grid of the gallery uses the threshold fitted on validation, as predict and serve do."""
    import json

    import pandas as pd

    run = train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root
    entry = evaluate_run(run, "test", n_resamples=10, threshold="0.9", cams=True)
    cams = pd.read_csv(run / "cams" / "test" / "cams.csv")
    expected = [("hemorrhoid" if p >= entry["threshold"]["value"] else "normal") for p in cams["prob_hemorrhoid"]]
    assert list(cams["predicted"]) == expected
    summary = json.loads((run / "cams" / "test" / "summary.json").read_text())
    assert summary["n_wrong"] == int((cams["predicted"] != cams["label"]).sum())


VIEWPORTS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}


@needs_chromium
def test_figures_fit_their_content_and_a_click_opens_them_at_full_size(report: Path, tmp_path: Path):
    """Gallery and multi-panel figures span the content width; single plots keep their natural size (never enlarged);
    a click shows a figure at full size. Screenshots go to $PROCTOVISION_SCREENSHOTS when set."""
    import os

    shots = Path(os.environ.get("PROCTOVISION_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for name, viewport in VIEWPORTS.items():
            page = browser.new_page(viewport=viewport)
            page.goto(report.as_uri())
            content = page.evaluate("document.querySelector('#figures').clientWidth")
            assert content <= viewport["width"]
            for wide in ("Grad-CAM: right and wrong cases", "Training curves"):
                width = page.locator(f'figure img[alt="{wide}"]').bounding_box()["width"]
                assert width >= 0.9 * content, (name, wide, width, content)
            plots = page.evaluate("""Array.from(document.querySelectorAll('figure.plot img')).map(
                i => [i.alt, i.clientWidth, i.naturalWidth])""")
            assert {"ROC (test)", "Calibration (test)"} <= {alt for alt, _, _ in plots}
            for alt, shown, natural in plots:
                assert shown <= natural + 1, f"{alt} is enlarged beyond its natural size at {name}"
                assert shown <= content + 1, f"{alt} overflows the page at {name}"
            if name == "desktop":
                roc = next(shown / natural for alt, shown, natural in plots if alt == "ROC (test)")
                assert roc > 0.99, "a single plot is shown at its natural size where it fits"
            page.screenshot(path=str(shots / f"report_{name}.png"), full_page=True)
            page.locator('figure img[alt="Grad-CAM: right and wrong cases"]').click()
            assert page.locator("#lightbox").is_visible()
            page.wait_for_function("document.querySelector('#lightbox img').naturalWidth > 0")
            shown, natural = page.evaluate(
                "(() => { const i = document.querySelector('#lightbox img'); return [i.getBoundingClientRect().width,"
                " i.naturalWidth]; })()")
            assert natural > 0 and abs(shown - natural) <= 1, "the click shows the figure at its full size"
            page.screenshot(path=str(shots / f"report_{name}_full_size.png"))
            page.keyboard.press("Escape")
            assert not page.locator("#lightbox").is_visible()
            page.close()
