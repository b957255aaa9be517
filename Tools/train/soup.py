#!/usr/bin/env python3
"""Writes a weight soup of two checkpoints of one lineage: (1 - W) x the first + W x the second.

    python Tools/train/soup.py runs/s29/eval-207500.pt runs/s30/eval-206000.pt --weight 0.3 --out soup.pt
    python Tools/train/compare.py --data ../shared/data/kodak --every-photo --crop 0 Models/psic-conv.safetensors soup.pt

The soup is a train.py checkpoint (psic_train/soup.py says what is mixed and which recipe it
records) that compare.py screens, export.py exports and train.py --init continues (Adam starts
fresh: give --warmup-steps). Both checkpoints must be the same architecture; runs started from the
same model a few thousand steps apart are what it is for, since the mean of two unrelated models'
weights is not a model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.checkpoint import write_checkpoint  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.soup import SoupError, soup  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first", type=Path, help="a train.py checkpoint (*.pt)")
    p.add_argument("second", type=Path, help="a checkpoint of the same architecture")
    p.add_argument("--weight", type=float, required=True,
                   help="the second checkpoint's share in [0, 1] (0: the first checkpoint's weights)")
    p.add_argument("--out", type=Path, required=True, help="the soup checkpoint to write (*.pt)")
    args = p.parse_args(argv)
    require_files("soup.py", args.first, args.second)
    for path in (args.first, args.second):
        if path.suffix != ".pt":
            raise SystemExit(f"soup.py: {path} is not a train.py checkpoint (*.pt); a model file holds "
                             "quantised entropy networks, not the weights a soup mixes")
    if args.out.suffix != ".pt":
        raise SystemExit(f"soup.py: --out {args.out} should end in .pt (train.py and compare.py read a .pt as a checkpoint)")
    a, b = (torch.load(path, map_location="cpu", weights_only=False) for path in (args.first, args.second))
    try:
        ckpt, notes = soup(a, b, args.weight, (str(args.first), str(args.second)))
    except SoupError as e:
        raise SystemExit(f"soup.py: {e}") from None
    write_checkpoint(args.out, ckpt)
    print(f"{args.out}: {ckpt['args']['souped_from']}; "
          f"{'moving averages and raw weights' if 'ema' in ckpt else 'raw weights'} mixed"
          + "".join(f"\n  recipe {n}" for n in notes))


if __name__ == "__main__":
    main()
