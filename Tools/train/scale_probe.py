#!/usr/bin/env python3
"""What the entropy model's scale is worth to the coder and to the sampler, measured apart: the
model's level curve with every scale sigma multiplied by a factor where the coder reads it alone
("code": the rates change, the decodes do not), where the sampler reads it alone ("sample": the
decodes below the full level change, the rates do not) or both ("joint": what one scale for both,
the model file's format version 1, allows). BD-rates against the model as it is (compare.py's
evaluation: the float model, rates of the rounded symbols, seed-0 samples; --ssimulacra2 scores
the decodes with it too, as compare.py does).

    python Tools/train/scale_probe.py Models/psic-conv.safetensors --data ../shared/data/kodak \\
        --every-photo --crop 0 code:1.1 code:1.2 joint:1.05

Session 50 (the step-206500 model on Kodak): code 1.1 gave PSNR BD-rate -1.13 %, joint 1.05
+2.59 %: the trained scale is too narrow for the coder and not too wide for the sampler, which is
why a model file now carries per-channel coding offsets (psic_train/codingoffset.py) instead of a
wider scale.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import Ssimulacra2Scorer  # noqa: E402  (the SSIMULACRA2 scorer of compare.py's screen)
from figures import bd  # noqa: E402
from psic_train.data import evaluation_crops, list_images  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.model import PSICModel, ScaleFactors, mean_curve  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODES = ("code", "sample", "joint")


def variant(text: str) -> tuple[str, float]:
    """MODE:FACTOR, e.g. code:1.1."""
    mode, _, factor = text.partition(":")
    try:
        value = float(factor)
    except ValueError:
        value = 0.0
    if mode not in MODES or not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give MODE:FACTOR with MODE one of {', '.join(MODES)} "
                                         f"and a positive FACTOR, e.g. code:1.1")
    return mode, value


def factors(mode: str, factor: float) -> ScaleFactors:
    """The ScaleFactors a MODE:FACTOR variant evaluates with."""
    return ScaleFactors(code=factor if mode in ("code", "joint") else 1.0,
                        sample=factor if mode in ("sample", "joint") else 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a model file (*.safetensors) or a train.py checkpoint (*.pt)")
    p.add_argument("variants", type=variant, nargs="+", metavar="MODE:FACTOR",
                   help="code:F scales sigma for the coder alone, sample:F for the sampler alone, joint:F for both")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="photos (default: ../shared/data/train, its last --holdout photos)")
    p.add_argument("--holdout", type=int, default=8, help="last N photos of --data evaluated (as train.py)")
    p.add_argument("--every-photo", action="store_true", help="evaluate every photo of --data (e.g. Kodak)")
    p.add_argument("--crop", type=int, default=256, help="top-left crop side (0: whole photos)")
    p.add_argument("--ssimulacra2", action="store_true",
                   help="also score every decode with SSIMULACRA2 (compare.py's scorer; needs Tools/eval/requirements.txt)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    require_files("scale_probe.py", args.model)
    torch.set_num_threads(args.threads)
    photos = list_images(args.data, option="--data")
    crops = evaluation_crops(photos if args.every_photo else photos[-args.holdout:], args.crop)
    model = load_model(args.model)[0].eval()
    with tempfile.TemporaryDirectory() as scratch:
        extra = Ssimulacra2Scorer(Path(scratch)) if args.ssimulacra2 else None
        probe(args, model, crops, extra)
        if extra:
            print(extra.summary())


def probe(args, model: PSICModel, crops: list[torch.Tensor], extra) -> None:
    t0 = time.time()
    ref = mean_curve(model, crops, extra=extra)
    print(f"{args.model.name} on {len(crops)} crops of {args.data}: " +
          " ".join(f"{r['bpp']:.4f}/{r['psnr']:.3f}" for r in ref) + f" ({time.time() - t0:.0f} s)", flush=True)
    for mode, factor in args.variants:
        cur = mean_curve(model, crops, extra=extra, scales=factors(mode, factor))
        rates = " ".join(f"{100 * (a['bpp'] / b['bpp'] - 1):+.2f}" for a, b in zip(cur, ref))
        dq = " ".join(f"{a['psnr'] - b['psnr']:+.3f}" for a, b in zip(cur, ref))
        s2 = ""
        if extra:
            s2 = (f", SSIMULACRA2 BD-rate {bd(ref, cur, 'ssimulacra2'):+.2f} %; SSIMULACRA2 per level "
                  + " ".join(f"{a['ssimulacra2'] - b['ssimulacra2']:+.2f}" for a, b in zip(cur, ref)))
        print(f"{mode} x{factor:g}: PSNR BD-rate {bd(ref, cur):+.2f} %, MS-SSIM BD-rate {bd(ref, cur, 'ms_ssim'):+.2f} %; "
              f"rate per level (%) {rates}; PSNR per level (dB) {dq}{s2}", flush=True)


if __name__ == "__main__":
    main()
