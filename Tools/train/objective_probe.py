#!/usr/bin/env python3
"""Score models on the training objective itself: the SVI loss of train.py, every level drawn once,
on the same training crops with the same noise and detail draws for every model, so that two
models' difference is their own. Where a run's held-out BD-rate worsens, this says whether training
still lowers its objective (the objective and the metric disagree) or not (the steps only add noise).

    python Tools/train/objective_probe.py Models/psic-conv.safetensors Tools/train/runs/sNN/eval-STEP.pt

The objective's weights are the first model's recipe (as train.py would resume it) unless given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import CropSampler, list_images  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.model import RATE_PROXIES  # noqa: E402
from psic_train.objective import ObjectiveConfig, SVIObjective  # noqa: E402
from psic_train.recipe import fill_recipe, recipe_defaults  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The objective's parts that the table prints beside the loss (train.py's statistics of a step).
PARTS = ("bpp", "mse_full", "perceptual_full", "mse_sampled", "perceptual_sampled")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, nargs="+", help="model files (*.safetensors) or train.py checkpoints "
                                                        "(*.pt, their moving average of the weights)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="training photos to crop (default: ../shared/data/train)")
    p.add_argument("--holdout", type=int, default=8, help="last N photos left out, as train.py does")
    p.add_argument("--batches", type=int, default=6, help="batches of crops; each is scored at every level")
    p.add_argument("--batch", type=int, default=None, help="crops per batch (default: the recipe's)")
    p.add_argument("--crop", type=int, default=None, help="crop side (default: the recipe's)")
    p.add_argument("--samples", type=int, default=None, help="detail draws M (default: the recipe's)")
    p.add_argument("--rate-proxy", choices=RATE_PROXIES, default=None, help="rate proxy (default: the recipe's)")
    p.add_argument("--seed", type=int, default=123, help="seed of the crops, the noise and the detail draws")
    p.add_argument("--autocast", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast in g_a/g_s, as training on this machine runs them")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    args = p.parse_args(argv)
    if args.batches < 1:
        p.error("--batches must be 1 or more")
    return args


def probe(model, objective: SVIObjective, batches: list[torch.Tensor], samples: int, seed: int,
          autocast: bool) -> dict:
    """The objective of `model` averaged over `batches` and every level (each level's loss too,
    and the PARTS), with the random draws seeded alike for every model. Training-mode rounding
    (straight-through, z and the rate proxy's noise), no gradients, consistency on every batch."""
    model.train()
    torch.manual_seed(seed)
    L = model.cfg.L
    levels, parts = [0.0] * L, dict.fromkeys(PARTS, 0.0)
    with torch.no_grad():
        for x in batches:
            for level in range(1, L + 1):
                out = model(x, level, samples, autocast=autocast, rate_proxy=objective.cfg.rate_proxy)
                loss, stats = objective(model, x, out, level, step=0)
                levels[level - 1] += loss.item() / len(batches)
                for k in PARTS:
                    parts[k] += stats.get(k, 0.0) / (len(batches) * L)
    return {"loss": sum(levels) / L, "levels": levels, **parts}


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    require_files("objective_probe.py", *args.models)
    _, _, recipe, _ = load_model(args.models[0])
    opts = argparse.Namespace(**dict.fromkeys(recipe_defaults()))   # the recipe, as train.py resumes it
    for name in ("batch", "crop", "samples", "rate_proxy"):
        setattr(opts, name, getattr(args, name))
    fill_recipe(opts, recipe)
    cfg = ObjectiveConfig(**{f: getattr(opts, f) for f in vars(ObjectiveConfig())})
    cfg.consistency_every = 1
    files = list_images(args.data)
    files = files[:-args.holdout] if args.holdout else files
    sampler = CropSampler(files, opts.crop, seed=args.seed)
    batches = [sampler.batch(opts.batch) for _ in range(args.batches)]
    print(f"{args.batches} batches of {opts.batch}x{opts.crop}² from {len(files)} photos "
          f"of {args.data}, M={opts.samples}, rate proxy {cfg.rate_proxy}, lambda "
          f"{cfg.lambda_min:g}-{cfg.lambda_max:g}, perceptual weight {cfg.perceptual_weight:g}")
    first = None
    for path in args.models:
        model, step, _, _ = load_model(path)
        r = probe(model, SVIObjective(model.cfg.L, cfg), batches, opts.samples, args.seed, args.autocast)
        line = f"{path} (step {step}): objective {r['loss']:.4f}  levels " + " ".join(f"{v:.3f}" for v in r["levels"])
        if first is None:
            first = r
        else:
            line += f"  ({100 * (r['loss'] / first['loss'] - 1):+.2f} %)"
        print(line)
        print("    " + "  ".join(f"{k} {r[k]:.6g}" + ("" if r is first else f" ({100 * (r[k] / first[k] - 1):+.2f} %)")
                                 for k in PARTS if first[k]))


if __name__ == "__main__":
    main()
