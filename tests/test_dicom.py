"""DICOM as scanners write it: pydicom's bundled files (globbed from the package, never downloaded) across
transfer syntaxes and photometric interpretations, windowing, multi-frame, bad files, and patient privacy."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.imaging.dicom import WindowError, parse_window, pseudonym, to_uint8
from proctovision.imaging.images import read_image
from proctovision.data.ingest import DicomOptions, ingest

FILES = Path(pydicom.__file__).parent / "data" / "test_files"
MR_LOSSLESS = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
               "MR_small_implicit.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]


def pixels(name: str, **options) -> np.ndarray:
    return np.asarray(read_image(FILES / name, **options)).astype(int)


def test_lossless_transfer_syntaxes_decode_to_the_same_image():
    reference = pixels("MR_small.dcm")
    assert reference.std() > 10
    for name in MR_LOSSLESS[1:]:
        assert np.array_equal(pixels(name), reference), name


def test_grey_pipeline_matches_pydicom_after_the_modality_lut_and_window():
    dataset = pydicom.dcmread(FILES / "CT_small.dcm")
    assert dataset.PixelRepresentation == 1, "signed 16-bit data"
    hounsfield = apply_modality_lut(dataset.pixel_array, dataset).astype(float)
    expected = np.clip((hounsfield - (40 - 200)) / 400, 0, 1) * 255
    got = pixels("CT_small.dcm", window="40,400")[..., 0]
    assert np.abs(got - expected.round()).max() <= 1
    mr = pydicom.dcmread(FILES / "MR_small.dcm")
    values = apply_modality_lut(mr.pixel_array, mr).astype(float)
    if "WindowCenter" in mr:
        values = apply_voi_lut(values, mr).astype(float)
    assert np.array_equal(pixels("MR_small.dcm", window="file")[..., 0], to_uint8(values))


def test_monochrome1_is_inverted(tmp_path: Path):
    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(tmp_path / "inverted.dcm")
    assert np.array_equal(np.asarray(read_image(tmp_path / "inverted.dcm")).astype(int), 255 - pixels("MR_small.dcm"))


@pytest.mark.parametrize("name, tolerance", [("SC_rgb_jpeg_gdcm.dcm", 0), ("SC_rgb_gdcm_KY.dcm", 0),
                                             ("SC_rgb_dcmtk_+eb+cy+n1.dcm", 4), ("SC_rgb_dcmtk_+eb+cy+np.dcm", 4),
                                             ("SC_rgb_jls_lossy_line.dcm", 4)])
def test_colour_syntaxes_and_ybr_match_the_lossless_rgb(name: str, tolerance: float):
    reference = pixels("SC_rgb_rle.dcm")
    assert np.abs(pixels(name) - reference).mean() <= tolerance


def test_palette_colour_and_big_endian_rgb():
    dataset = pydicom.dcmread(FILES / "examples_palette.dcm")
    expected = to_uint8(apply_color_lut(dataset.pixel_array, dataset).astype(float))
    assert np.array_equal(pixels("examples_palette.dcm"), expected.astype(int))
    rgb = pixels("ExplVR_BigEnd.dcm")
    assert rgb.shape[2] == 3 and not np.array_equal(rgb[..., 0], rgb[..., 2])


def test_multiframe_file_becomes_one_row_per_frame(tmp_path: Path):
    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    shutil.copy(FILES / "SC_rgb_rle_2frame.dcm", folder / "cine")
    from proctovision.core.tasks import load_task

    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"))
    assert sorted(result.manifest["frame"]) == ["0", "1"]
    first, second = (np.asarray(read_image(folder / "cine", frame=index)) for index in (0, 1))
    assert not np.array_equal(first, second)


def test_window_specifications():
    assert parse_window(None) == "file"
    assert parse_window("pelvis") == "40,400"
    assert parse_window((50, 350)) == "50,350"
    assert parse_window("percentile:1,99") == "percentile:1,99"
    for bad in ("40", "40,-5", "percentile:90,10", "liver-ish"):
        with pytest.raises(WindowError):
            parse_window(bad)
    narrow, wide = pixels("CT_small.dcm", window="percentile:40,60"), pixels("CT_small.dcm", window="percentile:0,100")
    assert ((narrow == 0) | (narrow == 255)).mean() > ((wide == 0) | (wide == 255)).mean()


def test_bad_dicom_files_are_reported_by_file_and_reason(tmp_path: Path):
    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    (folder / "text.dcm").write_text("not dicom at all")
    (folder / "cut.dcm").write_bytes((FILES / "CT_small.dcm").read_bytes()[:3000])
    no_pixels = pydicom.dcmread(FILES / "CT_small.dcm")
    del no_pixels.PixelData
    no_pixels.save_as(folder / "nopixels.dcm")
    odd_syntax = pydicom.dcmread(FILES / "MR_small.dcm")
    from pydicom.encaps import encapsulate

    odd_syntax.PixelData = encapsulate([odd_syntax.PixelData])
    odd_syntax["PixelData"].VR = "OB"
    odd_syntax.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG-2: no decoder
    odd_syntax.save_as(folder / "mpeg.dcm", enforce_file_format=False)
    shutil.copy(FILES / "MR_small.dcm", folder / "good.dcm")
    from proctovision.core.tasks import load_task

    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"))
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert "not a DICOM file" in reasons["text.dcm"] or "unreadable" in reasons["text.dcm"]
    assert "cut.dcm" in reasons
    assert "no pixel data" in reasons["nopixels.dcm"]
    assert "cannot decode pixel data" in reasons["mpeg.dcm"] and "1.2.840.10008.1.2.4.100" in reasons["mpeg.dcm"]
    assert list(result.manifest["path"].map(lambda p: Path(p).name)) == ["good.dcm"]


def test_pseudonyms_are_stable_salted_and_not_the_id():
    assert pseudonym("12345", "a") == pseudonym("12345", "a") != pseudonym("12345", "b")
    assert "12345" not in pseudonym("12345", "a")


def test_dicom_folder_run_never_writes_or_prints_patient_identity(tmp_path: Path):
    """Ingest (labels by SOPInstanceUID, PNG export) → train → evaluate → predict → export → report, then scan
    every file written and everything printed for the names, ids and birth dates in the DICOM headers."""
    from proctovision.data.synthetic.mri import generate_mri

    generate_mri(tmp_path / "archive", patients=10, slices_per_patient=2, size=64)
    secrets_ = ["SYNTHETIC^PATIENT", "SYN-00", "19700101"]
    runner = CliRunner()
    work = tmp_path / "work"
    outputs = []

    def call(*args: str) -> None:
        result = runner.invoke(app, list(args))
        outputs.append(result.output)
        assert result.exit_code == 0, result.output

    call("ingest", str(tmp_path / "archive" / "mri"), "--task", "fistula", "--labels",
         str(tmp_path / "archive" / "fistula_labels.csv"), "--window", "pelvis", "--export-png", str(work / "png"),
         "--out", str(work / "manifest.csv"))
    manifest = pd.read_csv(work / "manifest.csv", dtype=str)
    assert set(manifest["window"]) == {"40,400"} and manifest["patient_id"].nunique() == 10
    assert len(list((work / "png").rglob("*.png"))) == 20
    call("split", str(work / "manifest.csv"), "--val", "0.2", "--test", "0.2", "--out", str(work / "split.csv"))
    call("train", str(work / "split.csv"), "--task", "fistula", "--backbone", "test_efficientnet", "--mode", "scratch",
         "--weights", "none", "--epochs", "1", "--image-size", "32", "--out", str(work / "run"))
    call("evaluate", str(work / "run"), "--split", "test", "--resamples", "20")
    call("predict", str(work / "run"), str(tmp_path / "archive" / "mri"), "--out", str(work / "predictions.json"))
    call("export", str(work / "run"), "--out", str(work / "export"))
    call("report", str(work / "run"), "--out", str(work / "report.html"), "--no-cams")
    assert "40,400" in (work / "run" / "config.yaml").read_text(), "the window travels with the run"
    assert '"window": "40,400"' in (work / "export" / "model_card.json").read_text()
    written = [path for path in work.rglob("*") if path.is_file()]
    assert len(written) > 30
    for path in written:
        content = path.read_bytes()
        for secret in secrets_:
            assert secret.encode() not in content, f"{secret} leaked into {path}"
    for text in outputs:
        for secret in secrets_:
            assert secret not in text


def test_fistula_demo_runs_end_to_end_on_dicom(tmp_path: Path):
    from proctovision.demo.pipeline import run_demo

    summary = run_demo(tmp_path / "demo", task="fistula", epochs=3, patients=12, images_per_patient=2)
    manifest = pd.read_csv(summary["paths"]["manifest"], dtype=str)
    assert set(manifest["modality"]) == {"MR"} and manifest["patient_id"].str.startswith("P").all()
    assert summary["test"]["n_images"] > 0


def cine(path: Path, frames: int = 6) -> Path:
    """A multi-frame RLE file whose frames all differ (MR_small, shifted), built on the fly."""
    from pydicom.uid import RLELossless, generate_uid

    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    stack = np.stack([np.roll(dataset.pixel_array, 7 * index, axis=1) for index in range(frames)])
    dataset.NumberOfFrames = frames
    dataset.SOPInstanceUID = generate_uid()
    dataset.compress(RLELossless, stack, encoding_plugin="pydicom")
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path)
    return path


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count RLE frame decodes by wrapping every decoder plugin pydicom has for the syntax."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    decoder = get_decoder(RLELossless)
    calls: list[int] = []
    for label, function in list(decoder._available.items()):
        def counted(src, runner, function=function):
            calls.append(1)
            return function(src, runner)

        monkeypatch.setitem(decoder._available, label, counted)
    return calls


def test_ingest_decodes_every_frame_of_a_cine_exactly_once(tmp_path: Path, decoder_calls: list[int]):
    from proctovision.core.tasks import load_task

    path = cine(tmp_path / "data" / "normal" / "cine.dcm", frames=6)
    frames_seen: list[int] = []
    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"), workers=0,
                    frames_progress=frames_seen.append)
    assert len(decoder_calls) == 6, "one decode per frame, not one whole-file decode per frame"
    assert list(result.manifest["frame"]) == [str(index) for index in range(6)]
    assert frames_seen[-1] == 6
    assert result.manifest["phash"].nunique() > 1, "the frames differ, so their rows do"
    decoder_calls.clear()
    fourth = np.asarray(read_image(path, frame=4)).astype(int)
    assert len(decoder_calls) == 1, "reading frame i by index decodes frame i only"
    assert not np.array_equal(fourth, np.asarray(read_image(path, frame=0)).astype(int))


def test_training_dataset_and_pixel_cache_decode_one_frame_per_row(tmp_path: Path, decoder_calls: list[int]):
    from torchvision.transforms import v2

    from proctovision.data.datasets import ManifestDataset
    from proctovision.data.pixel_cache import PixelCache

    path = cine(tmp_path / "cine.dcm", frames=5)
    frame = pd.DataFrame({"path": [str(path)] * 5, "frame": [str(index) for index in range(5)], "label": ["normal"] * 5})
    dataset = ManifestDataset(frame, ("normal", "internal_orifice"), v2.Compose([v2.PILToTensor()]))
    items = [dataset[index][0] for index in range(5)]
    assert len(decoder_calls) == 5
    assert not any(np.array_equal(items[0].numpy(), item.numpy()) for item in items[1:])
    decoder_calls.clear()
    cache = PixelCache(tmp_path / "cache", frame, size=32)
    for index in range(5):
        cache.image(index)
    assert len(decoder_calls) == 5 and cache.decoded == 5


def test_malformed_header_is_that_file_reason_and_the_rest_goes_on(tmp_path: Path):
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from proctovision.imaging.images import ImageReadError
    from proctovision.core.tasks import load_task

    folder = tmp_path / "data" / "normal"
    cine(folder / "a_good_cine.dcm", frames=3)
    broken = pydicom.dcmread(cine(tmp_path / "spare.dcm", frames=3))
    broken["NumberOfFrames"] = RawDataElement(Tag(0x00280008), "IS", 2, b"1A", 0, False, True)
    broken.save_as(folder / "b_bad_frames.dcm")
    shutil.copy(FILES / "MR_small.dcm", folder / "c_good.dcm")
    with pytest.raises(ImageReadError, match=r"malformed header: NumberOfFrames \(0028,0008\) is not an integer") as refused:
        read_image(folder / "b_bad_frames.dcm")
    assert "1A" not in str(refused.value), "a header value is never repeated"

    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"), workers=0)
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert list(reasons) == ["b_bad_frames.dcm"]
    assert "NumberOfFrames (0028,0008)" in reasons["b_bad_frames.dcm"]
    assert list(result.manifest["path"].map(lambda p: Path(p).name)) == ["a_good_cine.dcm"] * 3 + ["c_good.dcm"]


def test_a_file_without_preamble_is_read_and_noted_not_refused(tmp_path: Path):
    from pydicom.filewriter import dcmwrite

    from proctovision.core.tasks import load_task

    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    dataset.preamble = None
    del dataset.file_meta
    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    dcmwrite(folder / "old_style", dataset, implicit_vr=True, little_endian=True, enforce_file_format=False)
    raw = (folder / "old_style").read_bytes()
    assert raw[128:132] != b"DICM" and raw[:2] == b"\x08\x00", "no preamble, no meta header"
    assert np.array_equal(np.asarray(read_image(folder / "old_style")).astype(int), pixels("MR_small.dcm"))
    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"), workers=0)
    assert not result.excluded
    assert len(result.manifest) == 1 and result.manifest["modality"].iloc[0] == "MR"
    assert any("without the 128-byte preamble" in note and "old_style" in note for note in result.notes)


def test_reasons_name_the_object_the_truncation_and_the_transfer_syntax(tmp_path: Path):
    from proctovision.core.tasks import load_task

    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    for name in ("rtplan.dcm", "rtstruct.dcm", "test-SR.dcm", "waveform_ecg.dcm", "MR_truncated.dcm", "rtdose.dcm"):
        shutil.copy(FILES / name, folder / name)
    whole = (FILES / "CT_small.dcm").read_bytes()
    pixels_start = whole.index(b"\xe0\x7f\x10\x00OW") + 12  # explicit VR: tag, VR, 2 reserved, 4-byte length
    (folder / "ct_cut_in_pixels.dcm").write_bytes(whole[: pixels_start + 20000])
    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"), workers=0)
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert reasons["rtplan.dcm"] == "no pixel data: RT Plan Storage object (RTPLAN), not an image"
    assert "RT Structure Set" in reasons["rtstruct.dcm"] and reasons["rtstruct.dcm"].startswith("no pixel data")
    assert "SR Storage" in reasons["test-SR.dcm"] and "ECG Waveform" in reasons["waveform_ecg.dcm"]
    assert reasons["MR_truncated.dcm"] == "truncated pixel data (8130 of 8192 bytes)"
    assert reasons["ct_cut_in_pixels.dcm"] == "truncated pixel data (20000 of 32768 bytes)"
    assert list(result.manifest["frame"]) == [str(index) for index in range(15)], "the RT Dose grid has pixels"


def test_colour_cine_frames_by_index_match_pydicom_own_decoding():
    """A 30-frame YBR_FULL_422 JPEG ultrasound cine: each frame read by index (decoded by Pillow, YCbCr→RGB by
    Pillow) against pydicom's whole-cine decoding and colour conversion."""
    reference = pydicom.dcmread(FILES / "examples_ybr_color.dcm").pixel_array.astype(int)
    assert reference.shape == (30, 240, 320, 3)
    for index in (0, 13, 29):
        got = pixels("examples_ybr_color.dcm", frame=index)
        expected = to_uint8(reference[index].astype(float)).astype(int)
        difference = np.abs(got - expected)
        assert difference.max() <= 6 and difference.mean() < 0.1, index
    assert not np.array_equal(pixels("examples_ybr_color.dcm", frame=0), pixels("examples_ybr_color.dcm", frame=29))


def test_files_over_the_pixel_budget_or_with_a_named_header_are_listed_and_the_rest_goes_on(tmp_path: Path, monkeypatch):
    """ingest and predict refuse a deflated 16384x16384 DICOM from its header (its pixel data never inflated) and a
    WindowCenter holding a name by naming the attribute, never its value; the other files go on."""
    import zlib

    from bombs import deflated_zeros_dicom
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag
    from video_models import export_detector

    from proctovision.core.tasks import load_task
    from proctovision.inference.predictor import load_predictor

    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    deflated_zeros_dicom(folder / "a_bomb.dcm")
    named = pydicom.dcmread(FILES / "MR_small.dcm")
    named["WindowCenter"] = RawDataElement(Tag(0x00281050), "DS", 18, b"DOE^JOHN MRN12345 ", 0, False, True)
    named.save_as(folder / "b_named.dcm")
    shutil.copy(FILES / "MR_small.dcm", folder / "c_good.dcm")

    inflate = zlib.decompress

    def no_inflating(data, *args, **kwargs):
        assert len(data) < 100_000, "the whole deflated file was inflated"
        return inflate(data, *args, **kwargs)

    monkeypatch.setattr(zlib, "decompress", no_inflating)
    result = ingest(tmp_path / "data", load_task("fistula"), dicom_options=DicomOptions(salt="s"), workers=0)
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert "16384 x 16384 = 268,435,456 pixel values, over the budget" in reasons["a_bomb.dcm"]
    assert "WindowCenter (0028,1050) is not a number" in reasons["b_named.dcm"]
    assert list(result.manifest["path"].map(lambda p: Path(p).name)) == ["c_good.dcm"], reasons
    predictor = load_predictor(export_detector(tmp_path / "model"))
    batch = predictor.predict_files(sorted(folder.iterdir()))
    errors = dict((Path(path).name, reason) for path, reason in batch.errors)
    assert "over the budget" in errors["a_bomb.dcm"] and "WindowCenter (0028,1050)" in errors["b_named.dcm"]
    assert [Path(item.path).name for item in batch.predictions] == ["c_good.dcm"]
    told = " ".join(reasons.values()) + " ".join(errors.values())
    assert "DOE" not in told and "MRN12345" not in told


def test_a_dicom_frame_far_larger_than_the_model_is_reduced_before_windowing(tmp_path: Path):
    from proctovision.imaging import images

    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    grown = np.kron(dataset.pixel_array, np.ones((80, 80), dtype=dataset.pixel_array.dtype))  # 5120 x 5120
    dataset.Rows, dataset.Columns, dataset.PixelData = *grown.shape, grown.tobytes()
    dataset.save_as(tmp_path / "large.dcm")
    assert read_image(tmp_path / "large.dcm").size == (5120, 5120), "decoded whole when no size is asked for"
    reduced = read_image(tmp_path / "large.dcm", min_size=256)
    assert reduced.size == (5120 // 20, 5120 // 20) and images.reduction_for(5120, 5120, 256) == 20


def test_a_modality_that_is_no_standard_code_is_not_kept(tmp_path: Path):
    from proctovision.imaging.dicom import open_dicom, info_of

    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    assert info_of(open_dicom(FILES / "MR_small.dcm"), "s").modality == "MR"
    dataset.Modality = "DOE^JOHN"
    dataset.save_as(tmp_path / "named.dcm")
    assert info_of(open_dicom(tmp_path / "named.dcm"), "s").modality == ""
