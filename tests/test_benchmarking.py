import torch

from proctovision.deploy.bench import flops_per_image, matmul_gflops
from proctovision.models.module import ClassifierModule
from proctovision.core.perf import tune_allocator


def test_flop_count_of_resnet18_is_the_published_figure():
    model = ClassifierModule("resnet18", 2, mode="frozen", head="linear", image_size=224).eval()
    assert 3.5 < flops_per_image(model, 224) < 3.8  # 1.82 GMACs, counted as 2 FLOPs each


def test_matmul_rate_is_positive_and_allocator_tuning_applies():
    assert matmul_gflops(size=256, inner=256) > 0.1
    assert tune_allocator() is True
    assert torch.zeros(10).sum() == 0


def test_predictor_reads_full_size_frames_at_reduced_scale(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from proctovision.deploy.bench import full_size_frames
    from proctovision.imaging import images
    from proctovision.inference.predictor import inputs as predictor
    from proctovision.imaging.preprocessing import Preprocessing

    paths = full_size_frames(tmp_path, 4)
    assert len(paths) == 4 and Image.open(paths[0]).size == (1280, 1024)
    decoded_sizes = []
    real = images.read_image
    monkeypatch.setattr(predictor, "read_image", lambda *a, **k: decoded_sizes.append(real(*a, **k).size) or real(*a, **k))
    item = predictor.load_input((paths[0], None), Preprocessing(224, (0.5,) * 3, (0.5,) * 3))
    assert decoded_sizes == [(320, 256)], "a 1280x1024 JPEG for 224 px decodes at 1/4 scale"
    assert item.shape == (3, 224, 224) and item.dtype == np.float32
    full = np.asarray(Image.open(paths[0]).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32)
    assert np.abs((item.transpose(1, 2, 0) * 0.5 + 0.5) * 255 - full).mean() < 4.0


def test_decode_and_end_to_end_rates_feed_every_frame_to_the_model(tmp_path):
    import numpy as np

    from proctovision.deploy.bench import decode_and_end_to_end_rates

    seen = []

    def runner(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return np.zeros((len(batch), 2), dtype=np.float32)

    decode, files = decode_and_end_to_end_rates(runner, 32, 4, tmp_path, images=8)
    assert decode > 0 and files > 0
    assert seen[0] == (4, 3, 32, 32) and sum(shape[0] for shape in seen) % 8 == 0 and len(seen) >= 2 * 3
