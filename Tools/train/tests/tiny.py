"""The tiny model the training tool's tests train and widen (no ../shared, seconds per run)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from psic_train.model import ModelConfig, PSICModel  # noqa: E402

TINY = ["--N", "16", "--C", "16", "--L", "4", "--hyper", "16", "--ep-width", "16"]   # train.py's options for it
TINY_CONFIG = ModelConfig(N=16, C=16, L=4, hyper=16, ep_width=16)


def tiny_integer_model():
    """(model, its integer entropy model, y, z): a fresh tiny model (seed 0) in eval mode, exported
    with Int16-range ep.*.0 weights from random latents y [8, C, 8, 8] and z_hat [8, N, 2, 2]."""
    import numpy as np
    import torch
    from psic_train.quantize import calibrate, quantize_entropy_model
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG).eval()
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(0, 4, (8, TINY_CONFIG.C, 8, 8)).astype(np.float32))
    z = torch.from_numpy(rng.integers(-3, 4, (8, TINY_CONFIG.N, 2, 2)).astype(np.float32))
    ent = quantize_entropy_model(model, calibrate(model, y, z),
                                 weight_bits={f"ep.{i}.0": 16 for i in range(TINY_CONFIG.L)})
    return model, ent, y, z
