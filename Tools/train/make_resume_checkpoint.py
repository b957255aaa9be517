#!/usr/bin/env python3
"""Writes the small checkpoint a later session resumes training from.

    python Tools/train/make_resume_checkpoint.py --checkpoint Tools/train/runs/main/last.pt \
        --out Models/psic-conv.resume.pt
    python Tools/train/train.py --out Tools/train/runs/main --init Models/psic-conv.resume.pt

Keeps the fp32 model weights, the model config, the step count and the training history line;
drops the optimiser state (it would triple the file) — Adam's moments rebuild in a few hundred steps.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.checkpoint import write_checkpoint  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (train.py's last.pt)")
    p.add_argument("--out", type=Path, required=True, help="where to write the resume checkpoint")
    p.add_argument("--hours", type=float, default=None, help="training hours so far, recorded in the file")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Copy first: the training process may rewrite last.pt while we read it.
        src = Path(tmp) / "ckpt.pt"
        shutil.copyfile(args.checkpoint, src)
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
    slim = {"model": ckpt["model"], "config": ckpt["config"], "step": ckpt.get("step", 0)}
    if args.hours is not None:
        slim["hours"] = args.hours
    write_checkpoint(args.out, slim)
    print(f"wrote {args.out} (step {slim['step']}, {args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
