"""A corpus of hostile inputs built on the fly: each is read correctly or refused with the file and the reason."""
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from proctovision.imaging import images
from proctovision.imaging.images import ImageReadError, read_image
from proctovision.data.ingest import ingest
from proctovision.core.tasks import load_task


def _jpeg_bytes(mode: str = "RGB", size=(40, 30), exif=None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new(mode, size, (200, 30, 40) if mode == "RGB" else (10, 200, 30, 5))
    image.save(buffer, format="JPEG", **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def build_corpus(root: Path) -> dict[str, str | None]:
    """name → expected reason fragment (None: must be read)."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    (root / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "empty file"
    (root / "truncated.jpg").write_bytes(_jpeg_bytes()[:200])
    expected["truncated.jpg"] = "corrupt or truncated"
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(png, format="PNG")
    (root / "truncated.png").write_bytes(png.getvalue()[:60])
    expected["truncated.png"] = "corrupt or truncated"
    (root / "notes.jpg").write_text("patient notes, not a picture")
    expected["notes.jpg"] = "not a recognised image format"
    (root / "error.png").write_text("<html><body>502 Bad Gateway</body></html>")
    expected["error.png"] = "not a recognised image format"
    Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50)).save(root / "deep16.png")
    expected["deep16.png"] = None
    Image.new("RGBA", (40, 30), (10, 200, 30, 128)).save(root / "alpha.png")
    expected["alpha.png"] = None
    Image.new("P", (40, 30), 3).save(root / "palette.png")
    expected["palette.png"] = None
    Image.new("CMYK", (40, 30), (0, 128, 128, 0)).save(root / "cmyk.jpg")
    expected["cmyk.jpg"] = None
    Image.new("L", (40, 30), 90).save(root / "grey.png")
    expected["grey.png"] = None
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: width and height swap when applied
    (root / "rotated.jpg").write_bytes(_jpeg_bytes(exif=exif.tobytes()))
    expected["rotated.jpg"] = None
    os.symlink(root / "loop_b.png", root / "loop_a.png")
    os.symlink(root / "loop_a.png", root / "loop_b.png")
    expected["loop_a.png"] = expected["loop_b.png"] = "symbolic link"
    (root / "naïve name with spaces.png").write_bytes((root / "grey.png").read_bytes())
    expected["naïve name with spaces.png"] = None
    return expected


def test_hostile_corpus_is_read_or_refused_with_reasons(tmp_path: Path):
    folder = tmp_path / "data" / "normal"
    expected = build_corpus(folder)
    build_corpus(tmp_path / "data" / "hemorrhoid")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if not p.is_symlink()}
    result = ingest(tmp_path / "data", load_task("hemorrhoid"))
    reasons = {Path(item.path).name: item.reason for item in result.excluded if "/normal/" in item.path}
    kept = {Path(path).name for path in result.manifest["path"] if "/normal/" in path}
    for name, fragment in expected.items():
        if fragment is None:
            assert name in kept, f"{name} should be ingested: {reasons.get(name)}"
        else:
            assert fragment in reasons[name], (name, reasons.get(name))
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if not p.is_symlink()}
    assert before == after, "ingest must never modify the user's files"
    rotated = result.manifest[result.manifest["path"].str.endswith("normal/rotated.jpg")].iloc[0]
    assert (int(rotated["width"]), int(rotated["height"])) == (30, 40), "EXIF orientation applied"


def test_every_mode_becomes_8_bit_rgb(tmp_path: Path):
    build_corpus(tmp_path)
    for name in ("deep16.png", "alpha.png", "palette.png", "cmyk.jpg", "grey.png"):
        picture = read_image(tmp_path / name)
        assert picture.mode == "RGB", name
    deep = np.asarray(read_image(tmp_path / "deep16.png"))[..., 0]
    assert deep.min() == 0 and deep.max() == 255, "16-bit range scaled, not clipped"


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageReadError, match="decompression-bomb"):
        read_image(tmp_path / "big.png")


def test_unreadable_file_is_named(tmp_path: Path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images.Image, "open", refuse)
    with pytest.raises(ImageReadError, match="permission denied") as caught:
        read_image(path)
    assert caught.value.path == str(path)


def test_unsupported_files_in_class_folders_are_listed(tmp_path: Path):
    (tmp_path / "normal").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "normal" / "a.png")
    (tmp_path / "normal" / "Thumbs.db").write_bytes(b"\x00")
    (tmp_path / "normal" / ".DS_Store").write_bytes(b"\x00")
    result = ingest(tmp_path, load_task("hemorrhoid"))
    assert [(Path(e.path).name, e.reason) for e in result.excluded] == [("Thumbs.db", "unsupported file type (.db)")]


def _frame_jpeg(path: Path, size=(1280, 1024), exif=None) -> Path:
    """A textured frame, so that a decode at reduced scale can be compared with a full one."""
    yy, xx = np.mgrid[: size[1], : size[0]]
    pixels = np.stack([(xx * 255 // size[0]), (yy * 255 // size[1]), ((xx // 40 + yy // 40) % 2) * 200], axis=-1)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format="JPEG", quality=90, **({"exif": exif} if exif else {}))
    return path


def test_min_size_decodes_a_full_size_jpeg_at_reduced_scale_never_below_the_input(tmp_path: Path):
    path = _frame_jpeg(tmp_path / "frame.jpg")
    assert read_image(path).size == (1280, 1024), "without the hint the default decode is full size"
    assert read_image(path, min_size=224).size == (320, 256)
    assert read_image(path, min_size=500).size == (640, 512)
    assert read_image(path, min_size=600).size == (1280, 1024), "1/2 scale would go below 600 px in height"
    full = np.asarray(read_image(path).resize((224, 224), Image.BILINEAR), dtype=float)
    reduced = np.asarray(read_image(path, min_size=224).resize((224, 224), Image.BILINEAR), dtype=float)
    assert np.abs(full - reduced).mean() < 4.0, "the reduced decode shows the same picture at the model's size"


def test_min_size_leaves_other_formats_and_small_files_at_their_size(tmp_path: Path):
    Image.new("RGB", (1280, 1024), (9, 90, 200)).save(tmp_path / "frame.png")
    assert read_image(tmp_path / "frame.png", min_size=224).size == (1280, 1024)
    small = _frame_jpeg(tmp_path / "small.jpg", size=(300, 260))
    assert read_image(small, min_size=224).size == (300, 260)


def test_min_size_keeps_exif_orientation(tmp_path: Path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _frame_jpeg(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_image(path, min_size=224).size == (256, 320)
