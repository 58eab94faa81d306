from pathlib import Path

import numpy as np
import torch
from conftest import solid_image

from proctovision.data import pixel_cache as pixel_cache_module
from proctovision.data.datasets import ManifestDataset
from proctovision.data.manifest import read_manifest
from proctovision.data.pixel_cache import PixelCache, cache_key
from proctovision.data.transforms import eval_transform
from proctovision.models.registry import Preprocessing

PRE = Preprocessing(24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_second_pass_and_second_run_decode_no_file(split_file: Path, tmp_path: Path, monkeypatch):
    frame = read_manifest(split_file)
    calls = []
    real = pixel_cache_module.read_image
    monkeypatch.setattr(pixel_cache_module, "read_image", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    cache = PixelCache(tmp_path / "cache", frame, PRE.input_size)
    dataset = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(PRE), pixel_cache=cache)
    first = torch.stack([dataset[i][0] for i in range(len(dataset))])
    assert len(calls) == len(frame) and cache.complete
    second = torch.stack([dataset[i][0] for i in range(len(dataset))])
    assert len(calls) == len(frame), "the second epoch decoded files again"
    assert torch.equal(first, second)
    cache.flush()
    again = PixelCache(tmp_path / "cache", frame, PRE.input_size)
    assert again.complete and again.key == cache.key
    ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(PRE), pixel_cache=again)[0]
    assert len(calls) == len(frame), "a later run decoded files again"


def test_cached_pixels_equal_the_uncached_pipeline(split_file: Path, tmp_path: Path):
    frame = read_manifest(split_file).head(4)
    plain = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(PRE))
    cached = ManifestDataset(
        frame, ("normal", "hemorrhoid"), eval_transform(PRE), pixel_cache=PixelCache(tmp_path, frame, PRE.input_size)
    )
    for index in range(len(frame)):
        assert torch.allclose(plain[index][0], cached[index][0], atol=1 / 255 * 2 + 1e-6)


def test_key_changes_with_size_window_and_file_contents(tmp_path: Path):
    path = solid_image(tmp_path / "a.png", (10, 20, 30))
    import pandas as pd

    frame = pd.DataFrame({"path": [str(path)], "label": ["normal"], "patient_id": ["p"]})
    key = cache_key(frame, 32)
    assert key != cache_key(frame, 64)
    assert key != cache_key(frame, 32, window=[40, 400])
    solid_image(path, (200, 20, 30), size=(50, 40))
    assert key != cache_key(frame, 32)
    assert np.asarray(PixelCache(tmp_path / "c", frame, 32).image(0)).shape == (32, 32, 3)


def _one_image_frame(tmp_path: Path, name: str):
    import pandas as pd

    path = solid_image(tmp_path / f"{name}.png", (10, 20, 30))
    return pd.DataFrame({"path": [str(path)], "label": ["normal"], "patient_id": ["p"]})


def test_a_store_past_the_bound_is_refused_before_anything_is_written(tmp_path: Path):
    import pytest

    frame = _one_image_frame(tmp_path, "a")
    first = PixelCache(tmp_path / "cache", frame, 32, max_bytes=7000)
    first.image(0)
    assert pixel_cache_module.held_bytes(tmp_path / "cache") == 32 * 32 * 3 + 1
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    with pytest.raises(pixel_cache_module.PixelCacheFull) as refused:
        PixelCache(tmp_path / "cache", _one_image_frame(tmp_path, "b"), 40, max_bytes=7000)
    message = str(refused.value)
    assert str(tmp_path / "cache") in message and "needs" in message and "already holds" in message
    assert "0.00 GiB" in message and "PROCTOVISION_PIXEL_CACHE_GB" in message and "pixel_cache: false" in message
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == before, "the refused store left files behind"
    first.flush()
    reopened = PixelCache(tmp_path / "cache", frame, 32, max_bytes=7000)
    assert reopened.complete, "reopening a store already held is not counted twice against the bound"


def test_the_bound_comes_from_the_environment_and_describe_says_what_is_held(tmp_path: Path, monkeypatch):
    import pytest

    from proctovision.core.errors import UserError

    monkeypatch.setenv("PROCTOVISION_PIXEL_CACHE_GB", "0.000001")
    with pytest.raises(pixel_cache_module.PixelCacheFull):
        PixelCache(tmp_path / "cache", _one_image_frame(tmp_path, "a"), 32)
    monkeypatch.setenv("PROCTOVISION_PIXEL_CACHE_GB", "lots")
    with pytest.raises(UserError, match="not a number"):
        PixelCache(tmp_path / "cache", _one_image_frame(tmp_path, "a"), 32)
    monkeypatch.delenv("PROCTOVISION_PIXEL_CACHE_GB")
    cache = PixelCache(tmp_path / "cache", _one_image_frame(tmp_path, "a"), 32)
    assert cache.limit == 4 * 1024**3
    cache.image(0)
    assert cache.describe().endswith("1 store(s), 0.00 GiB of 4.00 GiB; this one 1/1 images ready")
    assert pixel_cache_module.describe_folder(tmp_path / "cache", 2 * 1024**3).endswith("1 store(s), 0.00 GiB of 2.00 GiB")


def test_a_content_cropped_store_holds_the_field_and_matches_the_uncached_crop(tmp_path: Path):
    """Models trained on the content area (ingest --crop-content) keep the cache: the crop is found once, stored,
    and the cached input equals cropping every time (the transform then does not crop again)."""
    import pandas as pd
    from PIL import Image, ImageDraw

    paths = []
    for index in range(3):
        picture = Image.new("RGB", (320, 256), "black")
        ImageDraw.Draw(picture).ellipse((70, 20, 290, 240), fill=(170 + 20 * index, 90, 80))
        ImageDraw.Draw(picture).text((4, 4), "PATIENT NAME", fill="white")
        paths.append(tmp_path / f"frame{index}.png")
        picture.save(paths[-1])
    frame = pd.DataFrame({"path": [str(path) for path in paths], "label": ["normal"] * 3, "patient_id": ["P"] * 3})
    cropping = PRE.with_crop("content")
    cache = PixelCache(tmp_path / "cache", frame, PRE.input_size, crop="content")
    assert cache.key != cache_key(frame, PRE.input_size), "a cropped store is a different store"
    cached = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(PRE), pixel_cache=cache)
    plain = ManifestDataset(frame, ("normal", "hemorrhoid"), eval_transform(cropping))
    for index in range(3):
        assert torch.allclose(cached[index][0], plain[index][0], atol=0.05)
    middle = PRE.input_size // 2
    assert np.asarray(cache.image(0))[middle, 1].mean() > 60, "the field reaches the edge: the border was cut away"
