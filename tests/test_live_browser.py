"""The live page in a real browser: Chromium's fake camera plays a generated endoscopy video (.y4m), the page
sends frames over the WebSocket and shows the class, read off the page as the lesion comes and goes; under
monitoring it asks once per procedure for feedback, in en-US and zh-CN."""
import os
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import browser_page, needs_chromium
from video_models import blur_fitted_detector

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import PASSWORD, clinician_accounts  # noqa: F401
from proctovision.data.synthetic.video import write_demo_video
from proctovision.serving.app import create_app

pytestmark = needs_chromium
FAKE_CAMERA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def test_live_page_with_a_fake_camera_shows_the_class_as_the_lesion_comes_and_goes(tmp_path: Path):
    camera = write_demo_video(tmp_path / "camera.y4m", size=(320, 256), fps=15, seconds=4.0,
                              segments=[(1.0, 2.5)], seed=3)
    model = blur_fitted_detector(tmp_path, seed=3)
    camera_args = FAKE_CAMERA + (f"--use-file-for-fake-video-capture={camera.path}",)
    with browser_page(create_app(model, load_in_background=False), camera_args) as (page, url):
        page.goto(url + "live")
        page.click("#start")
        page.wait_for_function("() => Number(document.getElementById('frames').textContent) >= 3", timeout=30_000)
        seen = set()
        for _ in range(120):
            seen.add(page.inner_text("#shown"))
            if {"normal", "hemorrhoid"} <= seen:
                break
            page.wait_for_timeout(100)
        assert {"normal", "hemorrhoid"} <= seen, seen
        assert 0 <= float(page.inner_text("#probability")) <= 1
        assert page.inner_text("#error") == ""
        assert page.eval_on_selector("#camera", "s => s.options.length") >= 1
        page.screenshot(path=str(tmp_path / "live.png"))
        if os.environ.get("PROCTOVISION_KEEP_SCREENSHOT"):
            page.screenshot(path=os.environ["PROCTOVISION_KEEP_SCREENSHOT"])


def write_black_start_clip(path: Path, size=(320, 256), fps=15, black_s=1.5, seconds=3.0) -> np.ndarray:
    """A .y4m camera clip that starts black, then shows the generated endoscopy with text burned into its border;
    returns the mask of the text's pixels (outside the field, bright)."""
    from proctovision.data.synthetic.video import frames, octagon_mask

    shown = list(frames(size, fps, seconds, [(0.5, 2.0)], seed=5))
    with av.open(str(path), mode="w", format="yuv4mpegpipe") as box:
        stream = box.add_stream("rawvideo", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for pixels in [np.zeros_like(shown[0])] * int(black_s * fps) + shown:
            box.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        box.mux(stream.encode())
    field = np.asarray(octagon_mask(size, min(size) * 0.46)) > 0
    return ~field & (shown[0].max(axis=2) > 120)


LEVELS = """text => { const c = document.getElementById('view');
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let all = 0, onText = 0;
  for (let i = 0; i < data.length; i += 4) all = Math.max(all, data[i], data[i + 1], data[i + 2]);
  for (const p of text) onText = Math.max(onText, data[4 * p], data[4 * p + 1], data[4 * p + 2]);
  return [c.width, c.height, all, onText]; }"""


def test_the_live_page_never_shows_the_border_text_from_the_first_frame_on(tmp_path: Path):
    """Before the first answer, while the camera is black, once the picture comes, and after the server is gone:
    the canvas (the only thing on screen) is black wherever the clip has burned-in text."""
    text = write_black_start_clip(tmp_path / "camera.y4m")
    assert text.sum() > 200, "the clip has burned-in text to hide"
    model = blur_fitted_detector(tmp_path, seed=5)
    camera_args = FAKE_CAMERA + (f"--use-file-for-fake-video-capture={tmp_path / 'camera.y4m'}",)

    indices = np.flatnonzero(text).tolist()  # the text's pixels, row-major in the clip's frame

    def levels(page) -> tuple[bool, int, int]:
        """Whether the canvas has the clip's size, its brightest level anywhere and on the text's pixels."""
        width, height, everywhere, on_text = page.evaluate(LEVELS, indices)
        return (height, width) == text.shape, everywhere, on_text

    with browser_page(create_app(model, load_in_background=False), camera_args) as (page, url):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(url + "live")
        assert levels(page)[1] == 0, "black before the camera starts"
        page.click("#start")
        video = page.eval_on_selector("#video", "v => [getComputedStyle(v).opacity, v.getBoundingClientRect().width]")
        assert video == ["0", 1], "the camera's own picture is never on screen"
        text_seen, field_seen, samples = 0, 0, 0
        for _ in range(150):
            sized, everywhere, on_text = levels(page)
            if sized:
                samples += 1
                text_seen, field_seen = max(text_seen, on_text), max(field_seen, everywhere)
            if samples > 20 and field_seen > 60 and int(page.inner_text("#frames")) >= 10:
                break
            page.wait_for_timeout(50)
        assert field_seen > 60, "the content area is shown once the server found it"
        assert text_seen < 40, f"burned-in text reached the screen (level {text_seen})"
        assert page.inner_text("#error") == ""
        # a readable label and a page that fits a phone
        assert float(page.eval_on_selector("#live-label", "e => parseFloat(getComputedStyle(e).fontSize)")) >= 16
        wide = page.evaluate("() => Array.from(document.querySelectorAll('body *')).filter(e => "
                             "e.getBoundingClientRect().right > 391).map(e => e.tagName + '#' + e.id + ' ' + "
                             "Math.round(e.getBoundingClientRect().right))")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        assert "0.500" in page.inner_text("#rule") and "± 0.1" in page.inner_text("#rule")
        page.evaluate("socket.close(4000, 'gone')")  # a failure: the connection drops
        page.wait_for_function("() => document.getElementById('error').textContent.includes('gone')")
        page.wait_for_timeout(200)
        assert levels(page)[1] == 0, "black again after a failure"


def test_under_monitoring_and_sign_in_the_page_asks_once_per_procedure_in_both_languages(
        tmp_path: Path, evaluated_run: Path, monitor_dir: Path, clinician_accounts) -> None:
    """Stop ends the procedure; the feedback panel asks once about its answer (keys and wording of the clinician
    page), and the feedback goes to POST /feedback with the session's CSRF token, against the procedure's id."""
    from sqlalchemy import select

    from conftest import chromium
    from proctovision.monitoring.change_store import Feedback
    from proctovision.monitoring.folder import open_folder
    from proctovision.serving.background import running_server

    camera = write_demo_video(tmp_path / "camera.y4m", size=(160, 128), fps=10, seconds=2.0, segments=[(0.5, 1.0)],
                              seed=1)
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, auth=clinician_accounts)
    languages = [("en-US", "Do you agree with the model?", "The model's answer for the whole procedure",
                  "Recorded: you agreed."),
                 ("zh-CN", "您是否同意模型的判断？", "模型对整个检查过程的判断", "已记录：已更正为")]
    with running_server(app) as url, chromium(FAKE_CAMERA + (f"--use-file-for-fake-video-capture={camera.path}",)
                                              ) as browser:
        for locale, ask, answer, recorded in languages:
            context = browser.new_context(locale=locale)
            signed = context.request.post(url + "auth/session", data={"username": "alice", "password": PASSWORD},
                                          headers={"Origin": url.rstrip("/")})
            assert signed.ok, signed.text()
            page = context.new_page()
            page.goto(url + "live")
            assert page.query_selector("#feedback") is None
            page.click("#start")
            page.wait_for_function("() => Number(document.getElementById('frames').textContent) >= 3",
                                   timeout=30_000)
            page.click("#stop")
            page.wait_for_selector("#feedback", timeout=30_000)
            text = page.inner_text("#feedback")
            assert ask in text and answer in text, text
            assert page.inner_text("#shown") == "-", "the last frame's label went with the stream"
            if locale == "en-US":
                page.click("#feedback-agree")
            else:
                page.select_option("#feedback-reason", index=4)
                page.keyboard.press("1")
            page.wait_for_selector(f"#feedback-status:has-text('{recorded}')")
            with open_folder(monitor_dir) as monitor:
                procedure = monitor.answers().query("unit == 'procedure'").iloc[-1]
            again = {"prediction_id": procedure["id"], "predicted": procedure["decision"],
                     "probabilities": {"normal": 0.5, "hemorrhoid": 0.5}}
            assert page.evaluate("p => window.ProctoFeedback.ask(p, null)", again) is False, "asked twice"
            assert page.eval_on_selector_all("#feedback", "panels => panels.length") == 1
            assert page.inner_text("#error") == ""
            if locale == "en-US":  # a new stream takes the last panel away, so its keys answer nothing by mistake
                seen = int(page.inner_text("#frames"))
                page.click("#start")
                assert page.query_selector("#feedback") is None
                page.keyboard.press("a")
                page.wait_for_function(f"() => Number(document.getElementById('frames').textContent) >= {seen + 3}",
                                       timeout=30_000)
                page.click("#stop")
                page.wait_for_selector("#feedback", timeout=30_000)
            context.close()
    with open_folder(monitor_dir) as monitor, monitor.sessions() as session:
        answers = monitor.answers()
        rows = [(row.prediction_id, row.verdict, row.clinician, row.reason)
                for row in session.scalars(select(Feedback))]
    procedures = answers.loc[answers["unit"] == "procedure"].set_index("id")
    assert len(procedures) == 3 and set(answers["source"]) == {"live"} and (answers["unit"] == "second").any()
    asked_about = [procedures.index[0], procedures.index[2]]
    assert [row[0] for row in rows] == asked_about, "one feedback per answered procedure, on its id"
    assert [row[1:3] for row in rows] == [("agree", "alice"), ("disagree", "alice")] and rows[1][3]
