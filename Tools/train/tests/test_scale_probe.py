"""scale_probe.py: the coder's and the sampler's scale, changed apart."""
import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import scale_probe  # noqa: E402
from psic_train.model import PSICModel, evaluate_levels  # noqa: E402
from tiny import TINY_CONFIG  # noqa: E402

torch.set_num_threads(1)


def test_code_scales_only_the_rates_and_joint_also_the_samples():
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG).eval()
    x = torch.rand(1, 3, 64, 64)
    ref = evaluate_levels(model, x)
    code, joint, sample = (evaluate_levels(model, x, scales=scale_probe.factors(mode, 1.5))
                           for mode in ("code", "joint", "sample"))
    assert evaluate_levels(model, x, scales=scale_probe.factors("joint", 1.0)) == ref
    assert [r["psnr"] for r in code] == [r["psnr"] for r in ref]
    assert all(a["bpp"] != b["bpp"] for a, b in zip(code, ref))
    # the full decode samples nothing; below it the sampler read the wider scale
    assert joint[-1]["psnr"] == ref[-1]["psnr"]
    assert all(a["psnr"] != b["psnr"] for a, b in zip(joint[:-1], ref[:-1]))
    assert [r["bpp"] for r in joint] == [r["bpp"] for r in code]
    # the sampler alone: the rates stay, the sampled decodes are joint's
    assert [r["bpp"] for r in sample] == [r["bpp"] for r in ref]
    assert [r["psnr"] for r in sample] == [r["psnr"] for r in joint]


@pytest.mark.parametrize("text", ["code", "both:1.1", "joint:0", "code:x", "joint:-1"])
def test_variants_are_checked(text):
    with pytest.raises(argparse.ArgumentTypeError, match="MODE:FACTOR"):
        scale_probe.variant(text)
    assert scale_probe.variant("joint:1.05") == ("joint", 1.05)
