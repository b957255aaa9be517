"""Which of the model's parameters a run trains (train.py --trainable).

"all" trains the whole model, as every run before session 34 did. "synthesis" trains g_s alone:
the encoder, the hyperprior and the entropy-parameter networks stay as they are, so the latents,
their rates and the integer entropy model an export derives from them do not move, and every change
a run makes shows as distortion at unchanged rate. A decoder fine-tuned this way can take a larger
learning rate than the whole model, whose rate terms turn noisy steps into rate drift. With a
moving average (train.py --ema) the frozen parameters start from their averaged values, so the
average, which is what export.py writes, keeps them exactly.

"transforms" trains g_a and g_s: the hyperprior and the entropy-parameter networks stay fixed, so the
networks an export quantises keep their weights (their calibrated activation bounds follow the new
latents), while the latents, and so the rates, move. Tried in session 39 (Tools/train/RESULTS.md):
on Kodak it bought PSNR with MS-SSIM and the low levels, presumably because the fixed prior's
scales no longer fit the latents the levels are sampled from. Switching part keeps Adam's state for
the parameters both parts train (`carry_adam_state`), so a branch that adds g_a to a g_s run does
not restart g_s's moments.

"entropy" trains the entropy model alone with g_a and g_s fixed: the latents stay as they are, so a
run moves only their rates and the prior the untransmitted levels are sampled from (which the
sampled-detail distortion still sees through the fixed g_s). It asks whether the prior, trained at a
tenth of the transforms' rate since session 40, has rate left to give. Tried in session 44: the
upper levels' rates fell by a few tenths of a per cent and the sampled PSNR of the middle levels
with them, 0.2-0.3 % BD-rate behind (Tools/train/RESULTS.md).

"encoder" trains what only the encoder runs, g_a and h_a, with everything the decoder runs (g_s, h_s,
z's prior, the entropy-parameter networks) fixed: a run changes which latents an image is sent as,
never what a stream decodes to, so the model file's decoder and integer entropy model keep their
weights (an export recalibrates only the activation bounds and coding offsets on the new latents).
With `--rate-proxy round` it trains the encoder on the rate the coder spends and the distortion of
the rounded latents, the decoder's objective exactly; training with noise leaves the encoder tuned
to a relaxation ("soft then hard", Guo et al., ICML 2021, fine-tunes the encoder this way). h_a
belongs to ENTROPY_MODEL, so --entropy-lr-scale applies to it. Tried in session 53 from the
step-206500 file (lr 3e-5, both rate proxies, 1,500-2,200 steps): the held-out PSNR BD-rate
worsened by 0.5-0.9 % as the first levels' rates rose 1.4-1.9 %, while the objective fell 0.1 %
(objective_probe.py): the encoder of that model sits at its objective's optimum to within what
batch-4 steps resolve, and what it can still trade goes to the perceptual term (Tools/train/RESULTS.md).

An entropy-model learning-rate scale (`optimiser_groups`, train.py --entropy-lr-scale) puts the
hyperprior and the entropy-parameter networks in a second Adam group at a fraction of the transforms'
rate: with "all" the prior can follow latents that g_a moves, without the rate drift that training
every part at one rate gave.
"""
from __future__ import annotations

import torch

# The modules that make up the entropy model (what an export quantises or tabulates), as opposed to
# the float transforms g_a and g_s. PSICModel defines them after the transforms, so the optimiser
# order of `optimiser_groups` (transforms, then entropy model) is named_parameters order, the order
# every checkpoint's single-group optimiser was saved in.
ENTROPY_MODEL = ("h_a", "h_s", "entropy_bottleneck", "entropy_parameters")
# Top-level PSICModel modules each choice trains; None = all of them.
PARTS: dict[str, tuple[str, ...] | None] = {"all": None, "synthesis": ("g_s",), "transforms": ("g_a", "g_s"),
                                            "entropy": ENTROPY_MODEL, "encoder": ("g_a", "h_a")}


def trained_names(model: torch.nn.Module, part: str) -> list[str]:
    """Names of the parameters `part` trains, in named_parameters order (the order of an optimiser
    built from select_trainable)."""
    if part not in PARTS:
        raise ValueError(f"unknown trainable part {part!r}; choose one of {', '.join(PARTS)}")
    modules = PARTS[part]
    return [name for name, _ in model.named_parameters() if modules is None or name.split(".", 1)[0] in modules]


def select_trainable(model: torch.nn.Module, part: str) -> list[torch.nn.Parameter]:
    """Marks the parameters of `part` as trained and every other one as frozen (requires_grad off,
    so backward computes no gradient for them); returns the trained ones, in named_parameters order."""
    names = set(trained_names(model, part))
    trained = []
    for name, p in model.named_parameters():
        on = name in names
        p.requires_grad_(on)
        if on:
            trained.append(p)
    return trained


def optimiser_groups(model: torch.nn.Module, part: str, lr: float,
                     entropy_lr_scale: float = 1.0) -> tuple[list[dict], list[str]]:
    """Marks `part` trainable (select_trainable) and returns Adam parameter groups for it with the
    names of their parameters in optimiser order: the transforms at `lr`, the entropy model at
    `lr * entropy_lr_scale`. Each group's "base_lr" is the rate a warm-up ramps towards. Groups with
    no trained parameters are left out, so a part without the entropy model has one group."""
    if not entropy_lr_scale > 0:
        raise ValueError(f"the entropy-model learning-rate scale must be positive, not {entropy_lr_scale}")
    select_trainable(model, part)
    params = dict(model.named_parameters())
    transforms, entropy = _split(trained_names(model, part))
    groups = [{"params": [params[n] for n in group], "lr": rate, "base_lr": rate}
              for group, rate in ((transforms, lr), (entropy, lr * entropy_lr_scale)) if group]
    return groups, transforms + entropy


def trains_entropy_model(part: str) -> bool:
    """Whether `part` trains (some of) the entropy model, so that --entropy-lr-scale applies to it."""
    modules = PARTS[part]
    return modules is None or any(m in ENTROPY_MODEL for m in modules)


def optimiser_order(model: torch.nn.Module, part: str) -> list[str]:
    """Names of the parameters `part` trains in the order an optimiser from `optimiser_groups`
    holds them (whatever the scale), without marking anything trainable."""
    transforms, entropy = _split(trained_names(model, part))
    return transforms + entropy


def _split(names: list[str]) -> tuple[list[str], list[str]]:
    is_entropy = [n.split(".", 1)[0] in ENTROPY_MODEL for n in names]
    return [n for n, e in zip(names, is_entropy) if not e], [n for n, e in zip(names, is_entropy) if e]


def carry_adam_state(opt: torch.optim.Optimizer, old: dict, old_names: list[str], new_names: list[str]) -> int:
    """Loads into `opt` (built over `new_names`) the per-parameter state of the optimiser state_dict
    `old` (built over `old_names`) for every parameter both lists hold; the others start fresh. The
    hyperparameters stay `opt`'s. Returns how many parameters kept their state."""
    if optimiser_size(old) != len(old_names):
        raise ValueError(f"the optimiser state covers {optimiser_size(old)} parameters, not the {len(old_names)} named")
    old_ids = [i for g in old["param_groups"] for i in g["params"]]
    by_name = {name: old["state"][i] for name, i in zip(old_names, old_ids) if i in old["state"]}
    new = opt.state_dict()
    new_ids = [i for g in new["param_groups"] for i in g["params"]]
    new["state"] = {i: by_name[name] for name, i in zip(new_names, new_ids) if name in by_name}
    opt.load_state_dict(new)
    return len(new["state"])


def optimiser_size(state: dict) -> int:
    """Number of parameters an optimiser state_dict covers."""
    return sum(len(g["params"]) for g in state["param_groups"])
