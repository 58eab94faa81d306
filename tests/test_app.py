"""The REST service through FastAPI's TestClient: every answer, including the refusals."""
import base64
import io
import json
from pathlib import Path

import pydicom
import pytest
from conftest import own_run, solid_image
from fastapi.testclient import TestClient
from PIL import Image

from proctovision.serving.app import create_app, is_loopback

CT = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


@pytest.fixture(scope="module")
def client(run_dir: Path) -> TestClient:
    return TestClient(create_app(run_dir, max_upload_bytes=200_000, load_in_background=False))


def png_bytes(colour=(130, 50, 120)) -> bytes:
    """A small picture of one colour with mild noise (a flat one is rightly flagged as blurred)."""
    import numpy as np

    noise = np.random.default_rng(0).normal(0, 12, (30, 40, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_model_docs_and_page(client: TestClient):
    assert client.get("/health").json() == {"status": "ok", "token_required": False}
    card = client.get("/model").json()
    assert card["classes"] == ["normal", "hemorrhoid"]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/predict", "/health", "/model"}
    page = client.get("/")
    assert page.status_code == 200 and "Drop an endoscopic image" in page.text


def test_predict_an_image_returns_probabilities_and_a_heatmap(client: TestClient):
    response = client.post("/predict", files={"file": ("P123_smith.png", png_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predicted"] in {"normal", "hemorrhoid"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    assert body["threshold"] == 0.5
    with Image.open(io.BytesIO(base64.b64decode(body["heatmap_png_base64"]))) as heatmap:
        assert heatmap.size == (40, 30), "the overlay has the upload's own shape, not the model's square"
    assert "smith" not in response.text and "P123" not in response.text


def test_overlay_keeps_the_frame_aspect_ratio(client: TestClient):
    """A 1280x1024 processor frame comes back as a 5:4 overlay (the square model input is not shown stretched)."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).resize((1280, 1024), Image.NEAREST).save(buffer, format="JPEG", quality=80)
    body = client.post("/predict", files={"file": ("frame.jpg", buffer.getvalue(), "image/jpeg")}).json()
    with Image.open(io.BytesIO(base64.b64decode(body["heatmap_png_base64"]))) as heatmap:
        assert abs(heatmap.width / heatmap.height - 1.25) <= 0.02, heatmap.size
        assert max(heatmap.size) <= 640


def test_dicom_upload_never_echoes_identifiers(client: TestClient):
    dataset = pydicom.dcmread(CT)
    response = client.post("/predict", files={"file": ("scan.dcm", CT.read_bytes(), "application/dicom")})
    assert response.status_code == 200, response.text
    for value in (str(dataset.PatientName), str(dataset.PatientID), "CompressedSamples"):
        assert value not in response.text


@pytest.mark.parametrize(
    "files, status, fragment",
    [
        ({"file": ("a.png", b"", "image/png")}, 400, "empty"),
        ({"file": ("a.png", b"<html>502</html>", "image/png")}, 415, "not a readable image"),
        ({"file": ("a.jpg", png_bytes()[:40], "image/jpeg")}, 415, "not a readable image"),
        ({"wrong": ("a.png", png_bytes(), "image/png")}, 422, "field named 'file'"),
    ],
)
def test_bad_uploads_get_a_4xx_with_a_message(client: TestClient, files, status: int, fragment: str):
    response = client.post("/predict", files=files)
    assert response.status_code == status, response.text
    assert fragment in json.dumps(response.json())


def test_oversized_upload_is_refused(client: TestClient):
    response = client.post("/predict", files={"file": ("big.png", b"\x00" * 300_000, "image/png")})
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_wrong_content_type_and_malformed_multipart(client: TestClient):
    wrong = client.post("/predict", content=b"hello", headers={"content-type": "text/plain"})
    assert wrong.status_code == 422 and "multipart/form-data" in wrong.json()["detail"]
    broken = client.post("/predict", content=b"--xx\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=xx"})
    assert 400 <= broken.status_code < 500


def test_upload_without_a_declared_length_is_cut_off_at_the_limit(run_dir: Path):
    """A chunked upload is refused once it passes the limit, not after it has been spooled to disk whole."""
    from asgi_driver import raw_post

    app = create_app(run_dir, max_upload_bytes=200_000, load_in_background=False)
    boundary = b"pv"
    head = b"--pv\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
    chunks = [head] + [b"\x00" * 65536] * 160  # 10 MB, no Content-Length header
    status, body, pulled = raw_post(app, "/predict", chunks, [
        (b"content-type", b"multipart/form-data; boundary=" + boundary), (b"transfer-encoding", b"chunked")])
    assert status == 413 and b"limit" in body
    assert pulled <= 200_000 // 65536 + 3


def test_token_is_required_when_set(run_dir: Path):
    client = TestClient(create_app(run_dir, token="s3cret", load_in_background=False))
    assert client.get("/health").json()["token_required"] is True
    assert client.get("/model").status_code == 401
    files = {"file": ("a.png", png_bytes(), "image/png")}
    assert client.post("/predict", files=files).status_code == 401
    assert client.post("/predict", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_requests_while_the_model_loads_get_503(tmp_path: Path):
    app = create_app(tmp_path / "not-yet", load_in_background=False)
    response = TestClient(app).post("/predict", files={"file": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 503 and "failed to load" in response.json()["detail"]
    holder = create_app(tmp_path, load_in_background=True).state.holder
    holder.ready.wait(5)
    assert holder.error


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_a_model_still_loading_answers_503(tmp_path: Path):
    from fastapi import HTTPException

    from proctovision.serving.app import ModelHolder

    with pytest.raises(HTTPException) as caught:
        ModelHolder(tmp_path).get()
    assert caught.value.status_code == 503 and "loading" in caught.value.detail


def test_service_runs_from_an_onnx_export_without_torch(run_dir: Path, tmp_path: Path):
    import subprocess
    import sys

    from proctovision.deploy.export import export_run

    export_run(own_run(run_dir, tmp_path), tmp_path / "export")
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['timm'] = None\n"
        "import io, json\nfrom PIL import Image\nfrom fastapi.testclient import TestClient\n"
        "from proctovision.serving.app import create_app\n"
        "client = TestClient(create_app(sys.argv[1], load_in_background=False))\n"
        "data = open(sys.argv[2], 'rb').read()\n"
        "response = client.post('/predict', files={'file': ('a.png', data, 'image/png')})\n"
        "if response.json()['withheld']:\n"
        "    response = client.post('/answers/' + response.json()['answer_id'] + '/shown')\n"
        "print(json.dumps({'status': response.status_code, **response.json()}))\n"
    )
    image = solid_image(tmp_path / "a.png", (130, 50, 120), size=(40, 30))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "export"), str(image)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout.strip().splitlines()[-1])
    assert body["status"] == 200 and body["predicted"] in {"normal", "hemorrhoid"}, body.get("warning")
    assert body["heatmap_png_base64"] is None and "ONNX" in body["heatmap_note"]


def test_predict_command_writes_heatmaps(run_dir: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from proctovision.cli import app

    image = solid_image(tmp_path / "in" / "x.png", (130, 50, 120))
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(image), "--out", str(tmp_path / "p.csv"),
                                      "--heatmaps", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    [png] = list((tmp_path / "maps").glob("*.png"))
    with Image.open(png) as overlay:
        assert overlay.size == (48, 40), "the overlay keeps the image's own shape"


def test_a_slow_client_does_not_stall_other_requests(run_dir: Path):
    import socket
    import time

    import httpx

    from proctovision.serving.background import running_server

    with running_server(create_app(run_dir, load_in_background=False)) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 100000\r\n\r\n--b\r\n")
        try:
            started = time.perf_counter()
            response = httpx.post(url + "predict", files={"file": ("a.png", png_bytes(), "image/png")}, timeout=30)
            assert response.status_code == 200
            assert time.perf_counter() - started < 10
            assert httpx.get(url + "health", timeout=5).json()["status"] == "ok"
        finally:
            slow.close()


CINE = Path(pydicom.__file__).parent / "data" / "test_files" / "SC_rgb_rle_2frame.dcm"


def test_every_frame_of_a_multiframe_upload_is_answered(client: TestClient):
    response = client.post("/predict", files={"file": ("cine.dcm", CINE.read_bytes(), "application/dicom")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["n_frames"] == 2 and [item["frame"] for item in body["frames"]] == [0, 1]
    assert all(abs(sum(item["probabilities"].values()) - 1) < 1e-4 for item in body["frames"])


def test_predict_and_explain_cover_every_frame(run_dir: Path, tmp_path: Path):
    """Two frames of different colour get two rows, keyed by path and frame, whatever the model says."""
    import shutil

    import pandas as pd
    from typer.testing import CliRunner

    from proctovision.cli import app

    shutil.copy(CINE, tmp_path / "cine.dcm")
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(tmp_path / "cine.dcm"), "--out",
                                      str(tmp_path / "p.csv"), "--heatmaps", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "p.csv")
    assert list(rows["frame"]) == [0, 1]
    assert sorted(path.name for path in (tmp_path / "maps").glob("*.png")) == ["00000_cine_f0.png",
                                                                                "00001_cine_f1.png"]
    result = CliRunner().invoke(app, ["explain", str(run_dir), str(tmp_path / "cine.dcm"), "--out",
                                      str(tmp_path / "cams")])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "cams" / "cams.csv")["frame"]) == [0, 1]


def test_heatmap_can_be_skipped_per_request(client: TestClient):
    response = client.post("/predict?heatmap=false", files={"file": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["heatmap_png_base64"] is None and "heatmap=false" in body["heatmap_note"]
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4


def test_quality_flags_come_with_a_plain_warning(client: TestClient, tmp_path: Path):
    bright = solid_image(tmp_path / "ok.png", (130, 50, 120), size=(60, 50))
    dark = solid_image(tmp_path / "dark.png", (12, 6, 10), size=(60, 50))
    good = client.post("/predict", files={"file": ("ok.png", bright.read_bytes(), "image/png")}).json()
    assert good["quality"]["too_dark"] is False and good["warning"] is None
    assert good["in_distribution"] is None  # this run was never evaluated: no detector, said as unknown
    poor = client.post("/predict", files={"file": ("dark.png", dark.read_bytes(), "image/png")}).json()
    assert poor["quality"]["too_dark"] is True and "too dark" in poor["warning"]


def test_out_of_distribution_photograph_is_flagged(run_dir: Path, tmp_path: Path):
    import shutil

    import skimage

    from proctovision.workflows.ood import fit_run_ood

    run = shutil.copytree(run_dir, tmp_path / "run")
    fit_run_ood(run)
    guarded = TestClient(create_app(run, load_in_background=False))
    photograph = Path(skimage.__file__).parent / "data" / "astronaut.png"
    body = guarded.post("/predict?heatmap=false", files={"file": ("a.png", photograph.read_bytes(), "image/png")}).json()
    assert body["in_distribution"] is False and body["ood_score"] > body["ood_threshold"]
    assert "does not look like the images the model was trained on" in body["warning"]


def test_concurrent_requests_share_a_batch_and_get_their_own_rows(run_dir: Path, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import numpy as np

    from proctovision.serving.background import running_server

    colours = [(130, 50, 120), (90, 170, 90)] * 4
    uploads = [solid_image(tmp_path / f"{i}.png", colour, noise_seed=i).read_bytes() for i, colour in enumerate(colours)]
    service = create_app(run_dir, load_in_background=False, batch_images=8, batch_wait_ms=300)
    with running_server(service) as url, httpx.Client(timeout=60) as http:
        def send(data: bytes) -> dict:
            response = http.post(url + "predict?heatmap=false", files={"file": ("x.png", data, "image/png")})
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(8) as pool:
            batched = list(pool.map(send, uploads))
    assert max(service.state.holder.batcher.batch_sizes) > 1
    alone = TestClient(create_app(run_dir, load_in_background=False, batch_images=1))
    for data, answer in zip(uploads, batched):
        single = alone.post("/predict?heatmap=false", files={"file": ("x.png", data, "image/png")}).json()
        assert np.allclose(list(single["probabilities"].values()), list(answer["probabilities"].values()), atol=1e-5)


def test_every_answer_is_audited_without_identifiers(run_dir: Path, tmp_path: Path):
    import hashlib

    import pydicom

    from proctovision.core import fileio
    from proctovision.artefacts.runs import read_run

    log = tmp_path / "audit.log"
    audited = TestClient(create_app(run_dir, load_in_background=False, audit_log=log))
    data = png_bytes()
    assert audited.post("/predict", files={"file": ("P123_smith.png", data, "image/png")}).status_code == 200
    assert audited.post("/predict", files={"file": ("scan.dcm", CT.read_bytes(), "application/dicom")}).status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["input_sha256"] == hashlib.sha256(data).hexdigest()
    assert lines[1]["input_sha256"] == hashlib.sha256(CT.read_bytes()).hexdigest()
    assert lines[0]["model"]["sha256"] == fileio.sha256(read_run(run_dir).checkpoint())
    assert lines[0]["decision"] in {"normal", "hemorrhoid"} and lines[0]["latency_ms"] > 0
    text = log.read_text()
    dataset = pydicom.dcmread(CT)
    for value in ("smith", "P123", "scan.dcm", str(dataset.PatientName), str(dataset.PatientID),
                  str(dataset.SOPInstanceUID), "heatmap_png_base64"):
        assert value not in text


@pytest.fixture(scope="module")
def dicom_bomb(tmp_path_factory) -> Path:
    from bombs import deflated_zeros_dicom

    return deflated_zeros_dicom(tmp_path_factory.mktemp("bomb") / "zeros.dcm")


@pytest.fixture(scope="module")
def cropping_client(tmp_path_factory) -> TestClient:
    """A model trained on the content area (ingest --crop-content), as the demo's is."""
    from video_models import export_detector

    model = export_detector(tmp_path_factory.mktemp("cropping") / "model", crop="content")
    return TestClient(create_app(model, max_upload_bytes=40_000_000, load_in_background=False))


def test_a_deflated_dicom_over_the_pixel_budget_is_refused_with_413_from_its_header(
        cropping_client: TestClient, dicom_bomb: Path, monkeypatch):
    """A 262 KB file declaring 16384x16384 pixels is weighed by its header: never inflated, never decoded."""
    import time
    import zlib

    inflate = zlib.decompress

    def no_inflating(data, *args, **kwargs):
        assert len(data) < 100_000, "the whole deflated file was inflated"
        return inflate(data, *args, **kwargs)

    monkeypatch.setattr(zlib, "decompress", no_inflating)
    assert dicom_bomb.stat().st_size < 1_500_000
    started = time.perf_counter()
    response = cropping_client.post("/predict", files={"file": ("scan.dcm", dicom_bomb.read_bytes(), "application/dicom")})
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["max_pixel_values"] == 3 * Image.MAX_IMAGE_PIXELS
    assert "16384 x 16384" in body["detail"] and f"{body['max_pixel_values']:,}" in body["detail"]
    assert "SAMPLE" not in response.text and "SYN0001" not in response.text
    assert time.perf_counter() - started < 5


def test_a_png_over_the_pixel_budget_is_refused_with_413(cropping_client: TestClient, monkeypatch):
    from bombs import png_bytes

    monkeypatch.setenv("PROCTOVISION_PIXEL_BUDGET", "30000")
    response = cropping_client.post("/predict", files={"file": ("big.png", png_bytes((200, 200)), "image/png")})
    assert response.status_code == 413 and response.json()["max_pixel_values"] == 30000
    assert "200 x 200 = 40,000 pixel values" in response.json()["detail"]


@pytest.mark.parametrize("size, level", [((1280, 1024), 0), ((1280, 1024), 5), ((9000, 9000), 0)])
def test_a_frame_with_no_content_area_is_answered_too_dark_without_a_class(cropping_client: TestClient, size, level):
    """A black camera frame (or a nearly black one, or a black 81-megapixel PNG) is an answer, not a 500."""
    import time

    from bombs import png_bytes

    buffer = io.BytesIO()
    if size[0] < 5000:
        Image.new("RGB", size, (level, level, level)).save(buffer, format="JPEG", quality=90)
        upload = ("black.jpg", buffer.getvalue(), "image/jpeg")
    else:
        upload = ("black.png", png_bytes(size), "image/png")
    started = time.perf_counter()
    response = cropping_client.post("/predict", files={"file": upload})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predicted"] is None and body["probabilities"] is None and body["heatmap_png_base64"] is None
    assert body["quality"]["too_dark"] is True
    assert body["warning"].startswith("The frame is too dark") and "no class is shown" in body["warning"]
    assert time.perf_counter() - started < 20


def test_large_png_under_the_budget_is_answered_from_a_reduced_copy(cropping_client: TestClient):
    """An 81-megapixel PNG with a lit field: judged, on a copy reduced to what the model needs."""
    from PIL import ImageDraw

    picture = Image.new("L", (9000, 9000))
    ImageDraw.Draw(picture).ellipse((1000, 800, 8000, 8200), fill=140)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response = cropping_client.post("/predict", files={"file": ("big.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    if body["withheld"]:  # a grey picture may be flagged: the model still judged it, shown on request
        body = cropping_client.post(f"/answers/{body['answer_id']}/shown").json()
    assert body["predicted"] in {"normal", "hemorrhoid"}


def test_a_header_value_is_never_echoed_in_a_refusal(client: TestClient, tmp_path: Path):
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    dataset = pydicom.dcmread(CT)
    dataset["WindowCenter"] = RawDataElement(Tag(0x00281050), "DS", 18, b"DOE^JOHN MRN12345 ", 0, False, True)
    dataset.save_as(tmp_path / "named.dcm")
    response = client.post("/predict", files={"file": ("x.dcm", (tmp_path / "named.dcm").read_bytes(), "application/dicom")})
    assert response.status_code == 415, response.text
    assert "WindowCenter (0028,1050) is not a number" in response.json()["detail"]
    assert "DOE" not in response.text and "MRN12345" not in response.text


def test_serve_stops_on_sigterm_within_its_graceful_timeout(tmp_path: Path):
    """A real `serve` process: SIGTERM after a request, with another client's upload still in flight, ends it within
    the graceful timeout (uvicorn's default waits for that upload forever)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from video_models import export_detector

    model = export_detector(tmp_path / "model")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "proctovision", "serve", str(model), "--port", str(port),
                               "--graceful-timeout", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if json.load(urllib.request.urlopen(url + "/health", timeout=1))["status"] == "ok":
                    break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(url + "/predict?heatmap=false", data=_multipart(png_bytes()),
                                         headers={"Content-Type": "multipart/form-data; boundary=pv"})
        assert urllib.request.urlopen(request, timeout=30).status == 200
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=pv\r\n"
                        b"Content-Length: 100000\r\n\r\n--pv\r\n")
        time.sleep(0.3)  # the server has taken the stalled upload in
        started = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        assert time.perf_counter() - started < 2 + 3, "stopped within the graceful timeout (and a little)"
        stalled.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _multipart(data: bytes) -> bytes:
    return (b"--pv\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
            + data + b"\r\n--pv--\r\n")


def test_a_withheld_answer_hides_class_numbers_and_heatmap_until_shown_anyway(run_dir: Path, tmp_path: Path):
    log = tmp_path / "audit.log"
    audited = TestClient(create_app(run_dir, load_in_background=False, audit_log=log))
    dark = solid_image(tmp_path / "dark.png", (12, 6, 10), size=(60, 50)).read_bytes()
    body = audited.post("/predict", files={"file": ("dark.png", dark, "image/png")}).json()
    assert body["withheld"] is True and body["quality"]["too_dark"] is True
    assert body["predicted"] is None and body["probabilities"] is None and body["heatmap_png_base64"] is None
    assert "the model cannot judge such images" in body["warning"]
    shown = audited.post(f"/answers/{body['answer_id']}/shown")
    assert shown.status_code == 200, shown.text
    full = shown.json()
    assert full["shown_anyway"] is True and full["predicted"] in {"normal", "hemorrhoid"}
    assert abs(sum(full["probabilities"].values()) - 1) < 1e-4 and full["heatmap_png_base64"]
    assert "the model cannot judge such images" in full["warning"], "the sentence stays with the numbers"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["withheld"] is True and lines[0]["answer_id"] == body["answer_id"]
    assert lines[1]["event"] == "shown_anyway" and lines[1]["answer_id"] == body["answer_id"]
    assert lines[1]["input_sha256"] == lines[0]["input_sha256"]
    missing = audited.post("/answers/" + "0" * 32 + "/shown")
    assert missing.status_code == 404 and "no withheld answer" in missing.json()["detail"]
    good = audited.post("/predict", files={"file": ("ok.png", png_bytes(), "image/png")}).json()
    assert good["withheld"] is False
    assert audited.post(f"/answers/{good['answer_id']}/shown").status_code == 404, "only withheld answers wait"


def test_state_changing_requests_from_another_origin_are_refused_without_sign_in(client: TestClient):
    foreign = client.post("/predict", files={"file": ("a.png", png_bytes(), "image/png")},
                          headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json() == {"detail": "cross-origin request refused"}
    assert client.post("/answers/" + "0" * 32 + "/shown", headers={"Origin": "http://evil.example"}).status_code == 403
    own = client.post("/predict?heatmap=false", files={"file": ("a.png", png_bytes(), "image/png")},
                      headers={"Origin": "http://testserver"})
    assert own.status_code == 200, own.text


def test_the_overlay_is_drawn_for_its_displayed_width_not_enlarged(client: TestClient):
    """A 1280x1024 JPEG is decoded at 320x256 for the model; asked for a 640 px display, the overlay comes from the
    full-size picture at 640 px, not from the small copy stretched."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).resize((1280, 1024), Image.NEAREST).save(buffer, format="JPEG", quality=80)
    files = {"file": ("frame.jpg", buffer.getvalue(), "image/jpeg")}
    small = client.post("/predict", files=files).json()
    sharp = client.post("/predict?overlay_width=640", files=files).json()
    with Image.open(io.BytesIO(base64.b64decode(small["heatmap_png_base64"]))) as before, \
            Image.open(io.BytesIO(base64.b64decode(sharp["heatmap_png_base64"]))) as after:
        assert before.width < 640 and after.size == (640, 512)
    assert sharp["probabilities"] == small["probabilities"], "the model's input is the same"
