import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from proctovision.data.transforms import eval_transform
from proctovision.models.registry import create_backbone, get_backbone
from proctovision.models.weights import WeightsError, apply_weights, map_by_position, resolve_weights


def _grey_crops(image: np.ndarray, count: int, rng: np.random.Generator) -> list[Image.Image]:
    """Equalised grey crops: colour and contrast no longer tell the photos apart, content does."""
    from skimage import color, exposure

    grey = exposure.equalize_hist(color.rgb2gray(image))
    picture = Image.fromarray((grey * 255).astype(np.uint8)).convert("RGB")
    crops = []
    for _ in range(count):
        side = int(min(picture.size) * rng.uniform(0.5, 0.8))
        x, y = rng.integers(0, picture.width - side), rng.integers(0, picture.height - side)
        crops.append(picture.crop((x, y, x + side, y + side)))
    return crops


def test_packaged_lite0_weights_really_are_imagenet_trained():
    from skimage import data
    from sklearn.metrics import silhouette_score

    spec = get_backbone("efficientnet_lite0")
    loaded = resolve_weights(spec, "imagenet")
    assert loaded is not None and loaded.source.startswith("package:")
    assert loaded.preprocessing.mean == (0.5, 0.5, 0.5), "inputs scaled to [-1, 1]"
    rng = np.random.default_rng(0)
    images = _grey_crops(data.chelsea(), 12, rng) + _grey_crops(data.coffee(), 12, rng)
    batch = torch.stack([eval_transform(spec.preprocessing)(image) for image in images])
    labels = [0] * 12 + [1] * 12
    scores = {}
    for name in ("imagenet", "none"):
        torch.manual_seed(0)
        backbone = create_backbone(spec)
        if name == "imagenet":
            assert apply_weights(backbone, loaded) == {"loaded": 294, "total": 294}
        with torch.no_grad():
            features = backbone.eval()(batch).numpy()
        scores[name] = silhouette_score(features, labels, metric="cosine")
    assert scores["imagenet"] > 0.5
    assert scores["imagenet"] > 3 * scores["none"], scores


def test_imagenet_offline_fails_fast_with_a_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"--weights path/to/weights.pth"):
        resolve_weights(get_backbone("resnet18"), "imagenet")
    assert time.perf_counter() - started < 5


def test_local_weights_file_round_trip(tmp_path: Path):
    spec = get_backbone("test_efficientnet")
    source = create_backbone(spec)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    target = create_backbone(spec)
    apply_weights(target, resolve_weights(spec, str(path)))
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key


def test_weights_for_another_architecture_are_refused(tmp_path: Path):
    path = tmp_path / "r18.pth"
    torch.save(create_backbone(get_backbone("resnet18")).state_dict(), path)
    spec = get_backbone("test_efficientnet")
    with pytest.raises(WeightsError, match="another architecture|cannot map"):
        apply_weights(create_backbone(spec), resolve_weights(spec, str(path)))


def test_missing_or_garbage_weights_file_is_named(tmp_path: Path):
    spec = get_backbone("resnet18")
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(spec, str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth cannot be read"):
        resolve_weights(spec, str(garbage))


def test_map_by_position_checks_shapes():
    source = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    target = {"x": torch.ones(2, 3), "y": torch.ones(4)}
    assert list(map_by_position(source, target)) == ["x", "y"]
    with pytest.raises(WeightsError, match="does not fit"):
        map_by_position(source, {"x": torch.ones(3, 2), "y": torch.ones(4)})
