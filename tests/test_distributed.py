"""DDP through Lightning on CPU: two gloo processes end with the same weights."""
import os
import subprocess
import sys
from pathlib import Path

import torch


def test_ddp_two_processes_end_with_identical_weights(split_file: Path, tmp_path: Path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(worker), str(split_file), str(tmp_path)], capture_output=True, text=True, timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert set(first) == set(second) and first
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
