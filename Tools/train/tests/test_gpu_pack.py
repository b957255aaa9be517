"""gpu_pack.py: what a lent GPU machine trains on must split like the photos here."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gpu_pack  # noqa: E402
from psic_train.data import list_images  # noqa: E402


def test_packed_photos_keep_their_order_and_the_held_out_ones_their_bytes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a_1", "b_2", "c_3", "d_4"):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(src / f"{name}.png")
    count, size = gpu_pack.pack_photos(list_images(src), 2, tmp_path / "out", quality=90)
    packed = list_images(tmp_path / "out")
    assert count == 4 and size == sum(p.stat().st_size for p in packed)
    assert [p.stem for p in packed] == ["a_1", "b_2", "c_3", "d_4"]
    assert [p.suffix for p in packed] == [".jpg", ".jpg", ".png", ".png"]
    assert all((src / p.name).read_bytes() == p.read_bytes() for p in packed[2:])
    with Image.open(packed[0]) as im:
        assert im.size == (56, 40) and im.mode == "RGB"


def test_wheels_are_the_requirements_pins(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.15.0\ncompressai==1.2.8\npytorch-msssim==1.0.0\n")
    assert gpu_pack.pinned(req) == ["compressai==1.2.8", "pytorch-msssim==1.0.0"]
    req.write_text("compressai==1.2.8\n")
    with pytest.raises(SystemExit, match="pins no version of pytorch-msssim"):
        gpu_pack.pinned(req)
