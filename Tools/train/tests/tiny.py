"""The tiny model the training tool's tests train and widen (no ../shared, seconds per run)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from psic_train.model import ModelConfig  # noqa: E402

TINY = ["--N", "16", "--C", "16", "--L", "4", "--hyper", "16", "--ep-width", "16"]   # train.py's options for it
TINY_CONFIG = ModelConfig(N=16, C=16, L=4, hyper=16, ep_width=16)
