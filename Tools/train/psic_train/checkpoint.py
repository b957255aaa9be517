"""Writing train.py checkpoints (*.pt): whole or not at all."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def write_checkpoint(path: Path, ckpt: dict) -> None:
    """Saves `ckpt` beside `path` and renames it into place, so a reader (train.py --resume, an
    export of last.pt while training runs) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
