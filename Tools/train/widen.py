#!/usr/bin/env python3
"""Writes a wider copy of a trained model as a checkpoint that train.py starts from (or, with a
smaller --N, cuts a widened one back).

    python Tools/train/widen.py --init Models/psic-conv.safetensors --N 128 --out runs/w1/widened.pt
    python Tools/train/train.py --init runs/w1/widened.pt --out runs/w1 ...
    python Tools/train/widen.py --inspect runs/w1/last.pt --old-N 96
    python Tools/train/widen.py --init Models/psic-conv.safetensors --N 128 --start split --out runs/w2/widened.pt

The wider model computes what the narrower one does (psic_train/widen.py says how), so training
goes on from the shipped curve with more capacity in g_a, g_s and the hyper transforms instead of
starting a larger model from scratch. The checkpoint keeps the source's step count and recipe
(train.py carries them like any checkpoint's); it has no optimiser state and no moving average,
so Adam starts fresh (give --warmup-steps) and the average starts at the widened weights.

A smaller --N than the model's keeps its leading N channels (psic_train/widen.py: narrow), the
inverse of widening: a widened run whose added channels never grew goes back to the narrower
model's cost (check it with compare.py against the wide checkpoint before exporting it).

--inspect prints, for a checkpoint of a widened run, how large the added channels' weights have
grown against the old ones (psic_train/widen.py: added_channel_weights).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.checkpoint import write_checkpoint  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.widen import SPLIT_NOISE, START, added_channel_weights, narrow, split_copy_gaps, widen  # noqa: E402


def print_added_weights(path: Path, old_N: int | None, parser: argparse.ArgumentParser, raw: bool = False) -> None:
    """--inspect: the table of psic_train/widen.py's added_channel_weights for a checkpoint."""
    if old_N is None:
        parser.error("--inspect needs --old-N, the width the model was widened from")
    require_files("widen.py --inspect", path)
    model, step, _, averaged = load_model(path, ema=not raw)
    if not 0 < old_N < model.cfg.N:
        raise SystemExit(f"--old-N {old_N}: the model is {model.cfg.N} wide; give the narrower width it was widened from")
    weights = "" if averaged is None else (", moving average" if averaged else ", raw weights")
    print(f"{path} (step {step}{weights}): weight RMS per layer, N {old_N} -> {model.cfg.N}")
    gaps = dict(split_copy_gaps(model, old_N))
    print(f"{'layer':8} {'old':>8} {'added in':>9} {'old from added':>15} {'copy gap':>9}")
    for name, old, added_in, from_added in added_channel_weights(model, old_N):
        cells = [f"{v:.5f}" if v is not None else "-" for v in (old, added_in, from_added, gaps.get(name))]
        print(f"{name:8} {cells[0]:>8} {cells[1]:>9} {cells[2]:>15} {cells[3]:>9}")
    print("copy gap (a split start): the added channels' median distance from the nearest old channel's incoming "
          "weights, relative to those; it starts at --noise, and copies that stay there add no capacity")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", type=Path,
                   help="the model to widen (or cut back): a shipped model file (*.safetensors) or a train.py "
                        "checkpoint (*.pt; its moving average)")
    p.add_argument("--N", type=int, help="the new transform width: wider than the model's adds channels, narrower keeps the leading ones")
    p.add_argument("--out", type=Path, help="the checkpoint to write (*.pt)")
    p.add_argument("--start", choices=START, default="incoming",
                   help="how the added channels begin: incoming (their incoming weights zero, so they are 0 and "
                        "their outgoing weights random), outgoing (the old channels' weights from them zero: they "
                        "compute random features nothing reads yet) or split (copies of the busiest old channels, "
                        "each pair read at half weight; Net2WiderNet); psic_train/widen.py")
    p.add_argument("--noise", type=float, default=SPLIT_NOISE,
                   help=f"with --start split: the noise on the copies' incoming weights, a fraction of their RMS "
                        f"(default {SPLIT_NOISE}; 0 copies exactly, and the copies would then never part under Adam)")
    p.add_argument("--seed", type=int, default=0, help="seed of the added channels' random weights")
    p.add_argument("--inspect", type=Path, metavar="CHECKPOINT",
                   help="instead of widening: the RMS of the old weights and of the added channels' weights of "
                        "CHECKPOINT (its moving average unless --raw), per transform convolution, and with a split start how far "
                        "the copies have parted")
    p.add_argument("--old-N", type=int, help="with --inspect: the width the model was widened from")
    p.add_argument("--raw", action="store_true",
                   help="with --inspect: the checkpoint's trained weights, not their moving average (which lags "
                        "the weights by about 1/(1 - EMA) steps)")
    args = p.parse_args(argv)
    if args.inspect:
        return print_added_weights(args.inspect, args.old_N, p, raw=args.raw)
    if args.init is None or args.N is None or args.out is None:
        p.error("give --init, --N and --out (or --inspect CHECKPOINT --old-N N)")
    require_files("widen.py --init", args.init)
    if args.out.suffix != ".pt":
        raise SystemExit(f"--out: {args.out} should end in .pt (train.py --init reads a .pt as a checkpoint)")
    if args.N < 1:
        raise SystemExit(f"--N {args.N}: give a width of at least 1")
    if not 0 <= args.noise < 1:
        raise SystemExit(f"--noise {args.noise}: give a fraction of the weights' RMS in [0, 1), e.g. {SPLIT_NOISE}")
    model, step, recipe, _ = load_model(args.init)
    step = step or 0
    widening = args.N >= model.cfg.N
    try:
        resized = (widen(model, args.N, seed=args.seed, start=args.start, noise=args.noise) if widening
                   else narrow(model, args.N))
    except ValueError as e:                      # a width the start cannot reach, e.g. a split past 2N
        raise SystemExit(f"--N {args.N}: {e}")
    how = "the leading channels kept"
    if widening:
        how = f"start {args.start}" + (f" (noise {args.noise:g})" if args.start == "split" else "")
    write_checkpoint(args.out, {"config": resized.cfg.to_dict(), "model": resized.state_dict(), "step": step,
                                "args": {**recipe, "resized_from": f"{args.init} (N {model.cfg.N} -> {args.N}, {how})"}})
    print(f"{args.out}: N {model.cfg.N} -> {args.N}, step {step}, {how}; "
          f"{sum(p.numel() for p in model.parameters()):,} -> {sum(p.numel() for p in resized.parameters()):,} parameters")


if __name__ == "__main__":
    main()
