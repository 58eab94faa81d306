"""The LightningModule: a timm backbone, a head, and the three training modes.

Batches may hold images (``[B, 3, H, W]``) or cached backbone features (``[B, D]``):
frozen mode trains the head on features computed once, and the checkpoint still holds
the whole model, so evaluation, export and serving see one network.
"""
from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F

from proctovision.models.heads import build_head
from proctovision.models.registry import create_backbone, feature_dim, get_backbone


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        backbone: str,
        num_classes: int,
        mode: str = "frozen",
        head: str = "study",
        dropout: float = 0.0,
        image_size: int | None = None,
        optimizer: str = "adam",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        classes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = get_backbone(backbone)
        self.backbone = create_backbone(self.spec, image_size)
        self.head = build_head(head, feature_dim(self.backbone), num_classes, dropout)
        self.mode = mode
        if mode == "frozen":
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "ClassifierModule":
        super().train(mode)
        if self.mode == "frozen":
            self.backbone.eval()  # frozen means frozen: batch-norm statistics too
        return self

    def on_fit_start(self) -> None:
        if self.device.type == "cuda":
            self.to(memory_format=torch.channels_last)  # tensor cores want NHWC; a no-op for cached features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits from images, or from cached features when given ``[B, D]``."""
        features = inputs if inputs.ndim == 2 else self.backbone(inputs)
        return self.head(features)

    def _step(self, batch: tuple, stage: str) -> torch.Tensor:
        inputs, targets = batch[0], batch[1]
        if inputs.ndim == 4 and inputs.is_cuda:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        logits = self(inputs)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=1) == targets).float().mean()
        size = targets.shape[0]
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{stage}_accuracy", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=size,
                 sync_dist=True)
        return loss

    def training_step(self, batch: tuple, batch_index: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple, batch_index: int) -> torch.Tensor:
        return self._step(batch, "val")

    def predict_step(self, batch: tuple, batch_index: int) -> torch.Tensor:
        return torch.softmax(self(batch[0]), dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        options = {"lr": self.hparams.lr, "weight_decay": self.hparams.weight_decay}
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(params, **options)
        if self.hparams.optimizer == "adamw":
            return torch.optim.AdamW(params, **options)
        return torch.optim.SGD(params, momentum=0.9, **options)


def load_module(run: "RunInfo") -> ClassifierModule:  # noqa: F821 - a run folder read by artefacts.runs
    """The run's best checkpoint (else the last), in eval mode on the CPU."""
    module = ClassifierModule.load_from_checkpoint(run.checkpoint(), map_location="cpu", weights_only=False)
    return module.eval()
