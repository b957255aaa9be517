#!/usr/bin/env python3
"""Train the PSIC progressive synonymous model on the SVI objective.

    python Tools/train/train.py --out Tools/train/runs/main            # start
    python Tools/train/train.py --out Tools/train/runs/main --resume   # continue from last.pt
    python Tools/train/train.py --out Tools/train/runs/main --init Models/psic-conv.safetensors \
        --warmup-steps 500                                            # from the shipped model
    python Tools/train/train.py --out runs/gan --init runs/main/last.pt \
        --adversarial-weight 0.01 --steps 20000                        # adversarial fine-tuning stage
    python Tools/train/train.py --out runs/dec --init runs/main/last.pt --trainable synthesis \
        --lr 2e-5 --warmup-steps 300                                   # the decoder alone, rates fixed
    python Tools/train/train.py --out runs/all --init runs/dec/last.pt --trainable all \
        --lr 1e-4 --entropy-lr-scale 0.1 --warmup-steps 300            # everything, entropy model slower

Checkpoints (model, optimiser, step, settings; the discriminator under its own keys when there is
one) are written to OUT/last.pt every few minutes and on exit (Ctrl-C or SIGTERM); OUT/log.jsonl
gets one line per logging interval. Progress: one updating line on a terminal, a plain line every
--log-every steps otherwise.

Perceptual term (--perceptual): msssim (default) and none need no downloads; lpips needs local
weight files (--lpips-weights, see psic_train/perceptual.py). The adversarial term
(--adversarial-weight > 0, from step --adversarial-start) trains a patch discriminator from
scratch (psic_train/adversarial.py); it applies to the full decode and to the sampled decodes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.allocator import keep_freed_memory  # noqa: E402
from psic_train.adversarial import DISCRIMINATOR_KEYS, Adversarial, DiscriminatorConfig  # noqa: E402
from psic_train.checkpoint import write_checkpoint  # noqa: E402
from psic_train.data import CropSampler, evaluation_crops, list_images  # noqa: E402
from psic_train.fromfile import starting_point  # noqa: E402
from psic_train.model import RATE_PROXIES, ModelConfig, PSICModel, mean_curve  # noqa: E402
from psic_train.objective import ObjectiveConfig, SVIObjective  # noqa: E402
from psic_train.recipe import (  # noqa: E402
    DEFAULT_BATCH, DEFAULT_CROP, DEFAULT_SAMPLES, UnknownPart, fill_recipe, fill_scope, recipe_defaults)
from psic_train.perceptual import LPIPS_NETS, REGISTRY as PERCEPTUAL, make_perceptual  # noqa: E402
from psic_train.progress import Progress, summarize  # noqa: E402
from psic_train.trainable import (  # noqa: E402
    PARTS as TRAINABLE, carry_adam_state, optimiser_groups, optimiser_order, optimiser_size, trains_entropy_model)

DEFAULT_STEPS = 1_000_000
GRAD_CLIP = 1.0     # default max gradient norm per step (--grad-clip)

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="folder of training photos (default: ../shared/data/train)")
    p.add_argument("--holdout", type=int, default=8, help="last N images (sorted) kept out of training for validation")
    p.add_argument("--out", type=Path, required=True, help="run folder for checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (without it, an OUT that holds last.pt is refused rather than overwritten)")
    p.add_argument("--init", type=Path, help="initialise weights from this checkpoint (fresh optimiser and step 0 unless it holds them) or from a shipped model file (*.safetensors: its integer entropy model rebuilt as floats, z prior fresh)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"stop after this many total steps (default {DEFAULT_STEPS}; the progress ETA only when given)")
    p.add_argument("--hours", type=float, default=None, help="stop after this many hours of this process")
    p.add_argument("--batch", type=int, default=None,
                   help=f"crops per step (default: the checkpoint's or model file's with --resume or --init, "
                        f"else {DEFAULT_BATCH})")
    p.add_argument("--crop", type=int, default=None,
                   help=f"side of the square training crops in pixels (default: the checkpoint's or model file's with "
                        f"--resume or --init, else {DEFAULT_CROP}); photos smaller than it are not used")
    p.add_argument("--samples", type=int, default=None,
                   help=f"M: detail draws per image for the expected distortion (default: the checkpoint's, "
                        f"else {DEFAULT_SAMPLES})")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate, reached after --warmup-steps (the entropy model trains at "
                        "--entropy-lr-scale times it); default: the checkpoint's with --resume or --init "
                        "CHECKPOINT.pt (a model file does not record it), else 1e-4")
    p.add_argument("--grad-clip", type=float, default=GRAD_CLIP, metavar="NORM",
                   help="clip each step's gradient norm to NORM (default %(default)s, every run so far); the "
                        "log's grad_norm_levels shows the norm per level drawn: clipped steps of larger norm "
                        "(the higher levels) weigh less than Adam alone would give them")
    p.add_argument("--warmup-steps", type=int, default=0, metavar="N",
                   help="raise the learning rate linearly to --lr over the first N steps of this process (0 = "
                        "none); for a run whose Adam state starts fresh, e.g. --init from a model file, where "
                        "Adam's first steps move every weight by about the learning rate whatever its gradient")
    p.add_argument("--trainable", choices=list(TRAINABLE), default=None,
                   help="parameters to train: all; synthesis (g_s alone; rates and the entropy model stay "
                        "fixed); transforms (g_a and g_s; the entropy model stays fixed, rates move); or "
                        "entropy (the entropy model alone, at --lr times --entropy-lr-scale; the latents stay "
                        "fixed); encoder (g_a and h_a; the decoder and its entropy model stay fixed, so "
                        "streams decode as before); "
                        "psic_train/trainable.py. Default: the checkpoint's with --resume or --init CHECKPOINT.pt "
                        "(a model file does not record it), else all")
    p.add_argument("--entropy-lr-scale", type=float, default=None, metavar="S",
                   help="train the entropy model (hyperprior, entropy-parameter networks) at S times --lr "
                        "when --trainable includes it; default: the checkpoint's with --resume or --init "
                        "CHECKPOINT.pt (a model file does not record it), else 1")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model trains")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads (two runs side by side: 1 each)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile g_a and g_s in place (checkpoints unchanged); measured with "
                        "Tools/train/bench-steps.sh: no gain on Zen 3 in fp32 (session 7), about 4 %% on Zen 4 "
                        "with bf16 autocast once compiled, after a minute or two of compiling per process "
                        "(session 47), so off by default")
    p.add_argument("--autocast", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast in g_a/g_s (entropy model stays fp32); default: on when the CPU "
                        "has native bf16 (AVX512-BF16 or AMX), where it is 2-3x faster; without it bf16 is "
                        "emulated and ~10x slower")
    p.add_argument("--ema", type=float, default=None,
                   help="decay of the exponential moving average of the weights kept beside the trained ones "
                        "(evaluated and exported by default; 0 = none); default: the checkpoint's with --resume "
                        "or --init CHECKPOINT.pt, else 0.999")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="minutes between saves of OUT/last.pt")
    p.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="keep freed memory for reuse instead of returning it (glibc; ~1.2x faster steps, "
                        "psic_train/allocator.py)")
    p.add_argument("--profile-steps", type=int, default=0, metavar="N",
                   help="profile N training steps (after one warm-up step) with torch.profiler, print where "
                        "their time goes and stop without writing anything to OUT (the profiler itself slows "
                        "the steps; time whole runs from the progress line instead)")
    p.add_argument("--keep-evaluated", type=int, default=None, metavar="N",
                   help="after each held-out evaluation also save last.pt and keep it as OUT/eval-STEP.pt (a hard link), keeping "
                        "the N most recent (0 = none): last.pt is overwritten every --checkpoint-minutes, so "
                        "without them the step whose evaluation looked best is gone by the time it is read; "
                        "default: the checkpoint's with --resume or --init CHECKPOINT.pt, else 0")
    p.add_argument("--log-every", type=int, default=25, help="steps per line of OUT/log.jsonl and of the progress log")
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between held-out evaluations (0: none; --holdout 0 holds no photo out, so none "
                        "either); default: the checkpoint's with --resume or --init CHECKPOINT.pt, else 1000")
    p.add_argument("--seed", type=int, default=1, help="seed of crops, levels and detail noise (offset by the step, so a resume draws new ones)")
    p.add_argument("--perceptual", choices=sorted(PERCEPTUAL), default=None,
                   help="perceptual term P of the objective (weight --perceptual-weight * lambda_l; 1 - MS-SSIM "
                        "and LPIPS have different scales, retune the weight when switching); default: the "
                        "checkpoint's with --resume or --init CHECKPOINT.pt, else msssim")
    p.add_argument("--lpips-weights", type=Path, nargs="+", metavar="FILE",
                   help="local LPIPS weights (backbone and linear heads, one or several state-dict files)")
    p.add_argument("--lpips-net", choices=sorted(LPIPS_NETS), default="alex", help="LPIPS backbone")
    p.add_argument("--adversarial-weight", type=float, default=None,
                   help="weight of the non-saturating generator loss (0 = no adversarial term, no discriminator); "
                        "default: the checkpoint's with --resume or --init CHECKPOINT.pt, else 0")
    p.add_argument("--adversarial-start", type=int, default=None,
                   help="global step from which the discriminator trains and the adversarial term applies "
                        "(default: the checkpoint's, else 0)")
    p.add_argument("--disc-lr", type=float, default=None,
                   help="discriminator Adam learning rate (default: the checkpoint's, else 1e-4)")
    p.add_argument("--disc-width", type=int, default=DiscriminatorConfig.width,
                   help="discriminator width (new discriminators only; a resumed one keeps its own)")
    for f, v in ModelConfig().to_dict().items():
        p.add_argument(f"--{f.replace('_', '-')}", type=int, default=v, help=f"model size {f} (new runs only)")
    what = {"consistency_every": "K: compute the consistency term on one step in K at K times its weight (the same "
                                 "expected gradient; K=4 made steps 10 %% faster when only g_s trains)",
            "rate_proxy": "what the levels' training rate is the likelihood of: y - mu plus uniform noise, or the "
                          "rounded residual the coder spends bits on (straight-through); psic_train/model.py"}
    choices = {"rate_proxy": RATE_PROXIES}
    for f, v in vars(ObjectiveConfig()).items():
        p.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=None, choices=choices.get(f),
                       help=f"{what.get(f, f'objective {f}')} (default: the checkpoint's, else {_value(v)})")
    args = p.parse_args(argv)
    if args.consistency_every is not None and args.consistency_every < 1:
        p.error(f"--consistency-every must be 1 or more (steps per consistency term), not {args.consistency_every}")
    if args.entropy_lr_scale is not None and not args.entropy_lr_scale > 0:
        p.error(f"--entropy-lr-scale must be positive (a multiple of --lr), not {args.entropy_lr_scale}")
    if args.keep_evaluated is not None and args.keep_evaluated < 0:
        p.error(f"--keep-evaluated must be 0 (none) or more checkpoints, not {args.keep_evaluated}")
    if args.eval_every is not None and args.eval_every < 0:
        p.error(f"--eval-every must be 0 (no evaluations) or a number of steps, not {args.eval_every}")
    if not args.grad_clip > 0:
        p.error(f"--grad-clip must be a positive norm, not {args.grad_clip}")
    if args.ema is not None and not 0 <= args.ema < 1:
        p.error(f"--ema must be a decay in [0, 1) (0 keeps no average), not {args.ema}")
    return args


def recipe_line(args, sources: dict[str, str]) -> str:
    """Start-up line: the batch shape and where it came from, then every recipe value that is not
    the default or was given (a resume given the default back changes what is trained: say so)."""
    if sources["batch"] == sources["crop"]:
        origin = sources["batch"]
    else:   # say which of the two came from where: "given and the checkpoint's" read as both
        origin = f"batch {sources['batch']}, crop {sources['crop']}"
    line = f"batch {args.batch}x{args.crop}² ({origin})"
    changed = [f"{n} {_value(getattr(args, n))} ({sources[n]})" for n, d in recipe_defaults().items()
               if n not in ("batch", "crop") and (getattr(args, n) != d or sources[n] == "given")]
    return line + ("; " + ", ".join(changed) if changed else "")


def _value(v) -> str:
    """A recipe value as the start-up line prints it: numbers shortest (%g), words as they are."""
    return v if isinstance(v, str) else f"{v:g}"


def held_out_span(files: list[Path]) -> str:
    """The held-out photos' names as the start-up line gives them, " (first … last)": which photos the
    periodic evaluation sees matters when reading its curve (with ../shared/data/train the last 8
    sorted names are Urban100 buildings, not a sample of every source)."""
    if not files:
        return ""
    return f" ({files[0].stem})" if len(files) == 1 else f" ({files[0].stem} … {files[-1].stem})"


def warmup_factor(steps_done: int, warmup_steps: int) -> float:
    """Learning-rate multiplier for the next step after `steps_done` steps of this process:
    1/N, 2/N, ... up to 1 over the first N = `warmup_steps` steps, then 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (steps_done + 1) / warmup_steps)


def entropy_rate_note(args, source: str) -> str:
    """", entropy model at lr X (scale S, SOURCE)" when the run trains the entropy model at a rate of
    its own (--entropy-lr-scale other than 1), whether or not the transforms train beside it;
    `source` says where the scale came from (psic_train/recipe.py)."""
    if args.entropy_lr_scale == 1 or not trains_entropy_model(args.trainable):
        return ""
    return f", entropy model at lr {args.lr * args.entropy_lr_scale:.3g} (scale {args.entropy_lr_scale:.3g}, {source})"


def ema_parameters(ema) -> dict:
    """The averaged parameters (not buffers) of an AveragedModel, keyed as in PSICModel.state_dict()."""
    return {name: p.detach().clone() for name, p in ema.module.named_parameters()}


def save(path: Path, model, opt, step: int, args, extra=None):
    """Writes the checkpoint atomically. `extra` adds top-level keys (the discriminator's, the EMA's)."""
    write_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                            "config": model.cfg.to_dict(), "args": {k: str(v) for k, v in vars(args).items()},
                            **(extra or {})})


def keep_evaluated(checkpoint: Path, step: int, keep: int) -> Path:
    """Keeps `checkpoint` (last.pt, just saved at an evaluated step) as eval-STEP.pt beside it and
    deletes the older ones beyond the `keep` most recent (by step). A hard link: save() replaces
    last.pt by a new file, so the link keeps this step's bytes without writing them twice."""
    out = checkpoint.parent
    path = out / f"eval-{step}.pt"
    path.unlink(missing_ok=True)
    try:
        os.link(checkpoint, path)
    except OSError:   # a file system without hard links
        shutil.copyfile(checkpoint, path)
    # Only names this function writes: another eval-*.pt in OUT is the user's, not ours to delete.
    steps = {int(f.stem[5:]): f for f in out.glob("eval-*.pt") if f.stem[5:].isdigit()}
    for old in [steps[k] for k in sorted(steps)][:-keep]:
        old.unlink()
    return path


def main(argv=None):
    args = parse_args(argv)
    if args.resume and args.init:
        raise SystemExit("--resume continues OUT/last.pt and --init starts a new run from a file: give one of them")
    if not args.resume and (args.out / "last.pt").exists():
        # A fresh start would overwrite the run's checkpoint and append a second run to its log.
        raise SystemExit(f"{args.out / 'last.pt'} already holds a run: give --resume to continue it, "
                         "or another --out to start a new one")
    if args.init and not args.init.is_file():
        # Before the run folder is made, so a mistyped path leaves nothing behind.
        raise SystemExit(f"--init: {args.init} does not exist; give a model file (*.safetensors) or a checkpoint (*.pt)")
    if args.autocast is None:
        args.autocast = args.device == "cpu" and bool(torch.cpu._is_avx512_bf16_supported())
    steps_bound = args.steps
    if args.steps is None:
        args.steps = DEFAULT_STEPS
    torch.set_num_threads(args.threads)
    kept = args.keep_freed_memory and keep_freed_memory()
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
        ckpt = starting_point(args.init)
    recipe_sources = fill_recipe(args, (ckpt or {}).get("args"))
    cfg = ModelConfig(**ckpt["config"]) if ckpt else ModelConfig(
        **{f: getattr(args, f) for f in ModelConfig().to_dict()})
    model = PSICModel(cfg).to(args.device).to(memory_format=torch.channels_last)
    if args.compile:
        # Module.compile keeps the parameter names, so checkpoints and exports read the same keys.
        model.g_a.compile()
        model.g_s.compile()
    # Like the recipe, what a run trains carries over unless given; the checkpoint's own part is
    # what its Adam state was saved over.
    stored = (ckpt or {}).get("args") or {}
    try:
        scope_sources, stored_trainable = fill_scope(args, stored)
    except UnknownPart as e:
        raise SystemExit(str(e)) from None
    groups, opt_names = optimiser_groups(model, args.trainable, args.lr, args.entropy_lr_scale)
    opt = torch.optim.Adam(groups, lr=args.lr)
    step = 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt and (args.resume or ckpt.get("step")):
            # Per-parameter state by name: the same part keeps all of it, a switched part what both train;
            # the hyperparameters (lr) stay this run's.
            old_names = optimiser_order(model, stored_trainable)
            if optimiser_size(ckpt["optimizer"]) != len(old_names):
                print(f"Adam state starts fresh: the checkpoint's optimiser covers {optimiser_size(ckpt['optimizer'])} "
                      f"parameters, not the {len(old_names)} that {stored_trainable} trains", flush=True)
            else:
                carried_n = carry_adam_state(opt, ckpt["optimizer"], old_names, opt_names)
                if stored_trainable != args.trainable:
                    what = (f"carried over for {carried_n} of the {len(opt_names)} trained parameters" if carried_n
                            else "starts fresh")
                    print(f"Adam state {what}: the checkpoint's optimiser trained {stored_trainable}, this run "
                          f"trains {args.trainable} (--warmup-steps eases the first steps)", flush=True)
        step = ckpt.get("step", 0)
        if "ema" in ckpt and args.trainable != "all":
            # A frozen parameter takes its averaged value, the one an export would use: the average
            # then holds it too, and the rates the run trains at are the exported model's.
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if not p.requires_grad and name in ckpt["ema"]:
                        p.copy_(ckpt["ema"][name])
    # Moving average of the weights: at a constant learning rate the raw weights wander by
    # 0.2-0.3 dB between checkpoints (Tools/train/RESULTS.md, session 2); the average does not.
    ema = None
    if args.ema > 0:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema))
        if ckpt and "ema" in ckpt:
            ema.module.load_state_dict({**model.state_dict(), **ckpt["ema"]})
            # An AveragedModel's first update copies the weights instead of averaging; this
            # one already holds an average.
            ema.n_averaged.fill_(1)
    perceptual = make_perceptual(args.perceptual, lpips_weights=args.lpips_weights, lpips_net=args.lpips_net,
                                 device=args.device)
    objective = SVIObjective(cfg.L, ObjectiveConfig(**{f: getattr(args, f) for f in vars(ObjectiveConfig())}),
                             perceptual=perceptual)

    # The discriminator lives outside PSICModel under its own checkpoint keys. A checkpoint without
    # them (every run before the adversarial stage) gives a fresh one; with the adversarial term off,
    # a discriminator found in the checkpoint is carried over unchanged to the checkpoints written.
    adv, carried = None, {}
    if args.adversarial_weight > 0:
        dcfg = DiscriminatorConfig(**ckpt["discriminator_config"]) if ckpt and "discriminator_config" in ckpt \
            else DiscriminatorConfig(width=args.disc_width)
        adv = Adversarial(dcfg, lr=args.disc_lr, device=args.device, autocast=args.autocast and args.device == "cpu")
        resumed_d = adv.load(ckpt, lr=args.disc_lr) if ckpt else False
        print(f"adversarial term {args.adversarial_weight:g} ({scope_sources['adversarial_weight']}) from step "
              f"{args.adversarial_start}, discriminator lr {args.disc_lr:g}; discriminator "
              f"{dcfg} " + ("loaded from the checkpoint" if resumed_d else "trained from scratch"), flush=True)
    elif ckpt:
        carried = {k: ckpt[k] for k in DISCRIMINATOR_KEYS if k in ckpt}
        if carried:
            print(f"adversarial term off ({scope_sources['adversarial_weight']}); the checkpoint's discriminator "
                  "is carried over untrained", flush=True)

    def extra():
        return {**(adv.state() if adv else carried), **({"ema": ema_parameters(ema)} if ema else {})}

    files = list_images(args.data)
    train_files, val_files = files[:-args.holdout] if args.holdout else files, files[-args.holdout:] if args.holdout else []
    print(f"model {cfg}; {len(train_files)} training images, {len(val_files)} held out{held_out_span(val_files)}; step {step}; "
          f"{recipe_line(args, recipe_sources)}; trains {args.trainable} ({scope_sources['trainable']}) "
          f"at lr {args.lr:g} ({scope_sources['lr']})"
          f"{entropy_rate_note(args, scope_sources['entropy_lr_scale'])}; "
          f"perceptual term {args.perceptual} ({scope_sources['perceptual']}); "
          f"{'EMA ' + format(args.ema, 'g') if args.ema > 0 else 'no EMA'} ({scope_sources['ema']}); "
          f"{f'evaluates every {args.eval_every} steps' if args.eval_every else 'no evaluations'} "
          f"({scope_sources['eval_every']}); "
          f"keeps {args.keep_evaluated or 'no'} evaluated checkpoint{'' if args.keep_evaluated == 1 else 's'} "
          f"({scope_sources['keep_evaluated']}); "
          f"bf16 autocast {'on' if args.autocast else 'off'}; freed memory {'kept for reuse' if kept else 'returned'}", flush=True)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    if sampler.skipped:
        print(f"warning: {sampler.skipped} of {len(train_files)} training images are smaller than "
              f"{args.crop}x{args.crop} and are not used; a smaller --crop uses them all", flush=True)
    # Levels and detail noise too are seeded from the step, so that a resumed run does not
    # replay the level and noise sequence of its start (crops above likewise).
    torch.manual_seed(args.seed + step)
    random.seed(args.seed + step)
    val = evaluation_crops(val_files)

    stop = {"now": False}

    def request_stop(*_):
        stop["now"] = True

    previous_handlers = (signal.signal(signal.SIGTERM, request_stop), signal.signal(signal.SIGINT, request_stop))

    profiler = None
    if args.profile_steps > 0:
        args.steps = step + 1 + args.profile_steps
        steps_bound = args.steps
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          schedule=torch.profiler.schedule(wait=0, warmup=1, active=args.profile_steps,
                                                                           repeat=1))
        profiler.start()
    t_start = time.time()
    t_ckpt = time.time()
    first_step = step
    window = []
    progress = Progress(cfg.L, step, args.log_every, max_steps=steps_bound, hours=args.hours)
    log = open(os.devnull if profiler else args.out / "log.jsonl", "a")
    while step < args.steps and not stop["now"]:
        if args.hours is not None and time.time() - t_start > args.hours * 3600:
            break
        t0 = time.time()
        x = sampler.batch(args.batch).to(args.device)
        level = random.randint(1, cfg.L)
        out = model(x, level, args.samples, autocast=args.autocast and args.device == "cpu",
                    rate_proxy=args.rate_proxy)
        loss, stats = objective(model, x, out, level, step=step)
        adversarial_on = adv is not None and step >= args.adversarial_start
        if adversarial_on:
            adv_g = adv.generator_term(out["x_full"], out["x_sampled"])
            loss = loss + args.adversarial_weight * adv_g
            stats.update(adv_g=adv_g.item(), loss=loss.item())
        if not math.isfinite(loss.item()):
            progress.message(f"step {step}: non-finite loss, batch skipped")
            opt.zero_grad(set_to_none=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # The norm before clipping, over the trained parameters only (frozen ones have no grad):
        # logged with the share of clipped steps, which says whether the clip shapes the updates.
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip))
        stats.update(grad_norm=grad_norm, clipped=float(grad_norm > args.grad_clip))
        if step - first_step < args.warmup_steps:     # past the ramp the last value set is --lr
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * warmup_factor(step - first_step, args.warmup_steps)
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        if adversarial_on:
            stats.update(adv.discriminator_step(x, out["x_full"], out["x_sampled"]))
        step += 1
        if profiler:
            profiler.step()
        stats.update(level=level, seconds=time.time() - t0)
        window.append(stats)
        progress.update(step, stats)
        if step % args.log_every == 0:
            line = {"step": step, **summarize(window, cfg.L), "time": time.time()}
            log.write(json.dumps(line) + "\n")
            log.flush()
            progress.log(step, line)
            window = []
        kept_step = False   # an evaluated step whose checkpoint --keep-evaluated keeps
        if val and args.eval_every and step % args.eval_every == 0 and not profiler:
            summary = mean_curve(ema.module if ema else model, val)
            log.write(json.dumps({"step": step, "eval": summary}) + "\n")
            log.flush()
            progress.message("eval " + " ".join(f"L{s['level']}:{s['bpp']:.3f}bpp/{s['psnr']:.2f}dB" for s in summary))
            kept_step = args.keep_evaluated > 0
        if kept_step or (time.time() - t_ckpt > args.checkpoint_minutes * 60 and not profiler):
            save(last, model, opt, step, args, extra())
            t_ckpt = time.time()
            if kept_step:
                keep_evaluated(last, step, args.keep_evaluated)
    progress.close()
    log.close()
    for sig, handler in zip((signal.SIGTERM, signal.SIGINT), previous_handlers):
        signal.signal(sig, handler)
    if profiler:
        profiler.stop()
        print(f"profile of {args.profile_steps} steps (after one warm-up step), by time in each operator itself:")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        return
    save(last, model, opt, step, args, extra())
    print(f"saved {last} at step {step}", flush=True)


if __name__ == "__main__":
    main()
