"""A hand-weighted colour detector exported to ONNX with a model card: a fixed, known model for video tests.

It calls ``hemorrhoid`` when enough of the picture has the bluish-purple of the generated lesion
(blue close to red, red well above black), so a test can check where the video pipeline puts segments
without depending on how well a network learnt.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PurpleFraction(nn.Module):
    def __init__(self, cut: float = 0.013, gain: float = 400.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.cut, self.gain = cut, gain

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rgb = (images * self.std + self.mean) * 255
        red, blue = rgb[:, 0], rgb[:, 2]
        purple = torch.sigmoid((blue - 0.72 * red) / 4) * torch.sigmoid((red - 70) / 5)
        fraction = purple.mean(dim=(1, 2))
        logit = self.gain * (fraction - self.cut)
        return torch.softmax(torch.stack([torch.zeros_like(logit), logit], dim=1), dim=1)


def export_detector(folder: Path, size: int = 64, crop: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(PurpleFraction().eval(), (torch.zeros(1, 3, size, size),), str(folder / "model.onnx"),
                      input_names=["input"], output_names=["probabilities"],
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    card = {"format": "proctovision-model/1", "classes": ["normal", "hemorrhoid"],
            "task": {"name": "hemorrhoid", "classes": ["normal", "hemorrhoid"]},
            "preprocessing": {"input_size": size, "mean": list(MEAN), "std": list(STD), "resize": "square",
                              "window": None, "crop": crop},
            "threshold": {"value": 0.5, "rule": "fixed colour detector", "chosen_on": None}, "temperature": None}
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def fit_blur_cut(folder: Path, encoded: list[bytes]) -> float:
    """The detector's own blur cut, as ``fit_run_ood`` sets a trained model's: the 1st percentile of the sharpness
    of its "training" frames (JPEG bytes, decoded as uploads are), written to ood.json."""
    import io

    from proctovision.imaging.images import read_raster
    from proctovision.imaging.quality import MEASURE_WIDTH, assess_quality, blur_cut

    cut = blur_cut([assess_quality(read_raster(io.BytesIO(data), min_size=MEASURE_WIDTH)).sharpness
                    for data in encoded])
    (folder / "ood.json").write_text(json.dumps({"quality": {"blur_variance": cut, "quantile": 0.01}}))
    return cut


def jpeg_frames(path: str) -> list[bytes]:
    """Each frame of a video file as JPEG bytes, as the live page sends them."""
    import io

    import av

    encoded = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            frame.to_image().save(buffer, format="JPEG", quality=90)
            encoded.append(buffer.getvalue())
    return encoded


def blur_fitted_detector(folder: Path, seed: int, size: tuple[int, int] = (320, 256)) -> Path:
    """The colour detector with its blur cut fitted on a generated clip of the scene ``seed`` (7 frames a second)."""
    from proctovision.data.synthetic.video import write_demo_video

    model = export_detector(folder / "detector")
    training = write_demo_video(folder / "training.mp4", size=size, fps=7, seconds=6.0, segments=[(1.0, 2.5)],
                                seed=seed)
    fit_blur_cut(model, jpeg_frames(training.path))
    return model
