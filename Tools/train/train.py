#!/usr/bin/env python3
"""Train the PSIC progressive synonymous model on the SVI objective.

    python Tools/train/train.py --out Tools/train/runs/main            # start
    python Tools/train/train.py --out Tools/train/runs/main --resume   # continue from last.pt
    python Tools/train/train.py --init Models/psic-conv.pt ...          # start from a shipped checkpoint

Checkpoints (model, optimiser, step, settings) are written to OUT/last.pt every few minutes and
on exit (Ctrl-C or SIGTERM); OUT/log.jsonl gets one line per logging interval.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import CropSampler, list_images, load_rgb  # noqa: E402
from psic_train.model import ModelConfig, PSICModel, evaluate_levels  # noqa: E402
from psic_train.objective import ObjectiveConfig, SVIObjective, psnr  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="folder of training photos (default: ../shared/data/train)")
    p.add_argument("--holdout", type=int, default=8, help="last N images (sorted) kept out of training for validation")
    p.add_argument("--out", type=Path, required=True, help="run folder for checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", type=Path, help="initialise weights from this checkpoint (fresh optimiser and step 0 unless it holds them)")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop after this many total steps")
    p.add_argument("--hours", type=float, default=None, help="stop after this many hours of this process")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--samples", type=int, default=2, help="M: detail draws per image for the expected distortion")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--autocast", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast in g_a/g_s (entropy model stays fp32)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    for f, v in ModelConfig().to_dict().items():
        p.add_argument(f"--{f.replace('_', '-')}", type=int, default=v, help=f"model size {f} (new runs only)")
    for f, v in vars(ObjectiveConfig()).items():
        p.add_argument(f"--{f.replace('_', '-')}", type=float, default=v, help=f"objective {f}")
    return p.parse_args(argv)


def save(path: Path, model, opt, step: int, args, extra=None):
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": model.cfg.to_dict(), "args": {k: str(v) for k, v in vars(args).items()},
                **(extra or {})}, tmp)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    last = args.out / "last.pt"

    ckpt = None
    if args.resume:
        if not last.exists():
            raise SystemExit(f"--resume: {last} does not exist; start without --resume")
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
    elif args.init:
        ckpt = torch.load(args.init, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ckpt["config"]) if ckpt else ModelConfig(
        **{f: getattr(args, f) for f in ModelConfig().to_dict()})
    model = PSICModel(cfg).to(args.device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt and (args.resume or ckpt.get("step")):
            opt.load_state_dict(ckpt["optimizer"])
            for g in opt.param_groups:
                g["lr"] = args.lr
        step = ckpt.get("step", 0)
    objective = SVIObjective(cfg.L, ObjectiveConfig(**{f: getattr(args, f) for f in vars(ObjectiveConfig())}))

    files = list_images(args.data)
    train_files, val_files = files[:-args.holdout] if args.holdout else files, files[-args.holdout:] if args.holdout else []
    print(f"model {cfg}; {len(train_files)} training images, {len(val_files)} held out; step {step}", flush=True)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    val = [torch.from_numpy(load_rgb(p)[:256, :256]).permute(2, 0, 1).float().div(255)[None] for p in val_files]

    stop = {"now": False}

    def request_stop(*_):
        stop["now"] = True
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    t_start = time.time()
    t_ckpt = time.time()
    window = []
    log = open(args.out / "log.jsonl", "a")
    while step < args.steps and not stop["now"]:
        if args.hours is not None and time.time() - t_start > args.hours * 3600:
            break
        t0 = time.time()
        x = sampler.batch(args.batch).to(args.device)
        level = random.randint(1, cfg.L)
        out = model(x, level, args.samples, autocast=args.autocast and args.device == "cpu")
        loss, stats = objective(model, x, out, level)
        if not math.isfinite(loss.item()):
            print(f"step {step}: non-finite loss, batch skipped", flush=True)
            opt.zero_grad(set_to_none=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        stats.update(level=level, seconds=time.time() - t0)
        window.append(stats)
        if step % args.log_every == 0:
            n = len(window)
            mean = lambda k: sum(s[k] for s in window if k in s) / max(1, sum(1 for s in window if k in s))  # noqa: E731
            per_level = [sum(s["bpp_levels"][i] for s in window) / n for i in range(cfg.L)]
            line = {"step": step, "loss": mean("loss"), "bpp": mean("bpp"), "psnr_full": psnr(mean("mse_full")),
                    "psnr_sampled": psnr(mean("mse_sampled")) if any("mse_sampled" in s for s in window) else None,
                    "bpp_levels": per_level, "s_per_step": mean("seconds"), "time": time.time()}
            log.write(json.dumps(line) + "\n")
            log.flush()
            print(f"step {step:7d} | loss {line['loss']:.3f} | bpp {line['bpp']:.3f} | PSNR full "
                  f"{line['psnr_full']:.2f} dB, sampled {line['psnr_sampled'] or 0:.2f} dB | levels "
                  + " ".join(f"{b:.3f}" for b in per_level) + f" | {line['s_per_step']:.2f} s/step", flush=True)
            window = []
        if val and step % args.eval_every == 0:
            res = [evaluate_levels(model, v) for v in val]
            summary = [{"level": r[0]["level"] if False else i + 1,
                        "bpp": sum(rr[i]["bpp"] for rr in res) / len(res),
                        "psnr": sum(rr[i]["psnr"] for rr in res) / len(res)} for i, r in enumerate(res[0])]
            log.write(json.dumps({"step": step, "eval": summary}) + "\n")
            log.flush()
            print("eval " + " ".join(f"L{s['level']}:{s['bpp']:.3f}bpp/{s['psnr']:.2f}dB" for s in summary), flush=True)
        if time.time() - t_ckpt > args.checkpoint_minutes * 60:
            save(last, model, opt, step, args)
            t_ckpt = time.time()
    save(last, model, opt, step, args)
    print(f"saved {last} at step {step}", flush=True)


if __name__ == "__main__":
    main()
