#!/usr/bin/env python3
"""How far the noise rate proxy train.py used before session 49 is from the bits the coder spends:
per level, the float entropy model's bits for the rounded residuals round(y - mu) against those of
y - mu plus uniform noise (train.py --rate-proxy noise), on whole photos.

    python Tools/train/proxy_gap.py Models/psic-conv.safetensors --images ../shared/data/kodak --limit 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import list_images, load_rgb, pad_to_multiple, to_tensor  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.rates import proxy_bits  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a model file (*.safetensors) or train.py checkpoint (*.pt, its "
                                            "moving average of the weights)")
    p.add_argument("--images", type=Path, required=True,
                   help="folder of photos, each measured whole (padded to a multiple of 64 as the codec does)")
    p.add_argument("--limit", type=int, default=0, help="the first N photos by name only (0 = all)")
    p.add_argument("--draws", type=int, default=4, help="noise draws averaged per photo")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    args = p.parse_args(argv)
    if args.limit < 0 or args.draws < 1:
        p.error("--limit must be 0 (all) or more photos, --draws 1 or more")
    return args


def gap_table(hard, noise, pixels: int) -> list[str]:
    """One line per level and a total: bpp as coded, bpp under the noise proxy, their ratio."""
    lines = ["level  coded bpp  noise bpp  coded/noise"]
    rows = [(f"L{i + 1}", h, n) for i, (h, n) in enumerate(zip(hard, noise))] + [("all", sum(hard), sum(noise))]
    for name, h, n in rows:
        lines.append(f"{name:>5}  {h / pixels:9.4f}  {n / pixels:9.4f}  {h / n if n else float('nan'):11.3f}")
    return lines


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    require_files("proxy_gap.py", args.model)
    files = list_images(args.images, option="--images")
    files = files[:args.limit] if args.limit else files
    model, step, _, _ = load_model(args.model)
    model.eval()
    g = torch.Generator().manual_seed(args.seed)
    hard = noise = 0
    pixels = 0
    with torch.no_grad():
        for f in files:
            x = to_tensor(pad_to_multiple(load_rgb(f), 64))
            y = model.g_a(x)
            h, n = proxy_bits(model, y, torch.round(model.h_a(y)), draws=args.draws, generator=g)
            hard, noise = hard + h, noise + n
            pixels += x.shape[-1] * x.shape[-2]
    print(f"{args.model} (step {step}), {len(files)} photos of {args.images}, {args.draws} noise draws each")
    print("\n".join(gap_table(hard, noise, pixels)))


if __name__ == "__main__":
    main()
