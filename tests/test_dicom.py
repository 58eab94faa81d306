"""DICOM decoding on pydicom's own bundled files (globbed from the package: never a download)."""
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from proctovision.data.images import ImageReadError, read_image

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
GREY_SYNTAXES = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                 "MR_small_implicit.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_08.dcm"]


@pytest.mark.parametrize("name", [n for n in GREY_SYNTAXES if (TEST_FILES / n).is_file()])
def test_grey_dicom_matches_pydicom_after_the_modality_lut(name: str):
    path = TEST_FILES / name
    dataset = pydicom.dcmread(path)
    values = apply_modality_lut(dataset.pixel_array, dataset).astype(float)
    image = np.asarray(read_image(path))
    assert image.shape[:2] == values.shape[:2] and image.shape[2] == 3
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.corrcoef(image[..., 0].ravel(), values.ravel())[0, 1] > 0.9 or "WindowCenter" in dataset


def test_rgb_jpeg_dicom_decodes_in_colour():
    image = np.asarray(read_image(TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"))
    assert image.shape == (100, 100, 3) and not np.array_equal(image[..., 0], image[..., 2])


def test_explicit_window_is_applied(tmp_path: Path):
    path = TEST_FILES / "CT_small.dcm"
    narrow = np.asarray(read_image(path, window=(40, 80)))[..., 0]
    wide = np.asarray(read_image(path, window=(40, 4000)))[..., 0]
    assert (narrow == 0).mean() + (narrow == 255).mean() > (wide == 0).mean() + (wide == 255).mean()


def test_truncated_and_fake_dicom_are_named_with_a_reason(tmp_path: Path):
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes((TEST_FILES / "CT_small.dcm").read_bytes()[:1500])
    fake = tmp_path / "fake.dcm"
    fake.write_text("hello")
    for path in (truncated, fake):
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        assert caught.value.path == str(path) and caught.value.reason
