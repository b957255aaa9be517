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
"""
from __future__ import annotations

import torch

# Top-level PSICModel modules each choice trains; None = all of them.
PARTS: dict[str, tuple[str, ...] | None] = {"all": None, "synthesis": ("g_s",), "transforms": ("g_a", "g_s")}


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
