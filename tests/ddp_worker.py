"""Run by tests/test_distributed.py: one tiny DDP training on CPU (gloo), each rank saving its final weights."""
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).parent))

from conftest import tiny_run_config  # noqa: E402

import proctovision.workflows.training as training  # noqa: E402


class SaveRankWeights(Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer, module) -> None:
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.save({key: value.detach().clone() for key, value in module.state_dict().items()},
                   self.folder / f"rank{rank}.pt")


def main(split: str, out: str) -> None:
    folder = Path(out)
    build = training.build_trainer

    def build_with_saver(config, paths, progress, logger=None):
        trainer = build(config, paths, progress, logger)
        trainer.callbacks.append(SaveRankWeights(folder))
        return trainer

    training.build_trainer = build_with_saver
    config = tiny_run_config(Path(split), folder / "run", epochs=2)
    config.trainer.accelerator = "cpu"
    config.trainer.devices = 2
    config.trainer.strategy = "ddp"
    config.trainer.deterministic = False
    training.train(config, progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
