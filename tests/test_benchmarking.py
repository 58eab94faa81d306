import torch

from proctovision.benchmarking import flops_per_image, matmul_gflops
from proctovision.models.module import ClassifierModule
from proctovision.perf import tune_allocator


def test_flop_count_of_resnet18_is_the_published_figure():
    model = ClassifierModule("resnet18", 2, mode="frozen", head="linear", image_size=224).eval()
    assert 3.5 < flops_per_image(model, 224) < 3.8  # 1.82 GMACs, counted as 2 FLOPs each


def test_matmul_rate_is_positive_and_allocator_tuning_applies():
    assert matmul_gflops(size=256, inner=256) > 0.1
    assert tune_allocator() is True
    assert torch.zeros(10).sum() == 0
