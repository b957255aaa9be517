#!/usr/bin/env python3
"""Take an exported integer entropy model's rate loss apart: the float model's rate, then the scale
grid, the mean grid, the 16-bit tables and the integer networks added one at a time
(psic_train/ratebreakdown.py says what each stage adds).

    python Tools/train/rate_breakdown.py --checkpoint runs/s9/last.pt --model /tmp/exp/psic-conv.safetensors
    python Tools/train/rate_breakdown.py --checkpoint CKPT --model FILE --images ../shared/data/kodak

The model file must be the export of that checkpoint's weights (same training step): the float
stages run the checkpoint, the last runs the file's integer model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import list_images, load_rgb, pad_to_multiple, random_crops, to_tensor  # noqa: E402
from psic_train.fromfile import exported_checkpoint  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.quantize import analyse  # noqa: E402
from psic_train.ratebreakdown import format_breakdown, rate_breakdown  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="train.py checkpoint the model file was exported from")
    p.add_argument("--model", type=Path, required=True, help="the model file (*.safetensors) exported from it")
    p.add_argument("--weights", choices=["ema", "raw"], default="ema",
                   help="checkpoint weights to use (export.py's default is the moving average)")
    p.add_argument("--images", type=Path,
                   help="measure whole images of this folder instead of crops (each padded to a multiple of 64 "
                        "by edge replication, as the codec does; bpp is over the padded pixels)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="training photos to take crops from (default: ../shared/data/train)")
    p.add_argument("--holdout", type=int, default=8, help="last N photos are held out, as train.py does; crops "
                                                          "come from the others")
    p.add_argument("--crops", type=int, default=32, help="number of random crops")
    p.add_argument("--crop", type=int, default=256, help="crop side in pixels")
    p.add_argument("--seed", type=int, default=1, help="crop seed (export.py calibrates on seed 0's crops)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    p.add_argument("--json", action="store_true", help="print the stages as JSON")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    require_files("rate_breakdown.py", args.checkpoint, args.model)
    model, step, mf = exported_checkpoint(args.checkpoint, args.model, ema=args.weights == "ema")
    if args.images:
        files = list_images(args.images, option="--images")
        what = f"{len(files)} images of {args.images}"
    else:
        files = list_images(args.data)
        files = files[:-args.holdout] if args.holdout else files
        what = f"{args.crops} crops of {args.crop}² from {len(files)} photos of {args.data} (seed {args.seed})"
    with torch.no_grad():
        if args.images:   # whole images differ in size: one (y, z) pair each, measured together
            latents = (analyse(model, to_tensor(pad_to_multiple(load_rgb(f), 64))) for f in files)
        else:
            x = torch.from_numpy(random_crops(files, args.crops, args.crop, np.random.default_rng(args.seed)))
            latents = [analyse(model, x.permute(0, 3, 1, 2).float() / 255)]
        rows = rate_breakdown(model, mf.entropy, latents)
    if args.json:
        print(json.dumps({"step": step, "model": str(args.model), "measured_on": what, "stages": rows}, indent=1))
        return
    print(f"step {step}, {args.model.name} ({mf.meta['fingerprint']}), {what}:")
    print("\n".join(format_breakdown(rows)))


if __name__ == "__main__":
    main()
