"""Which of the model's parameters a run trains (train.py --trainable).

"all" trains the whole model, as every run before session 34 did. "synthesis" trains g_s alone:
the encoder, the hyperprior and the entropy-parameter networks stay as they are, so the latents,
their rates and the integer entropy model an export derives from them do not move, and every change
a run makes shows as distortion at unchanged rate. A decoder fine-tuned this way can take a larger
learning rate than the whole model, whose rate terms turn noisy steps into rate drift. With a
moving average (train.py --ema) the frozen parameters start from their averaged values, so the
average, which is what export.py writes, keeps them exactly.
"""
from __future__ import annotations

import torch

# Top-level PSICModel modules each choice trains; None = all of them.
PARTS: dict[str, tuple[str, ...] | None] = {"all": None, "synthesis": ("g_s",)}


def select_trainable(model: torch.nn.Module, part: str) -> list[torch.nn.Parameter]:
    """Marks the parameters of `part` as trained and every other one as frozen (requires_grad off,
    so backward computes no gradient for them); returns the trained ones, in named_parameters order."""
    if part not in PARTS:
        raise ValueError(f"unknown trainable part {part!r}; choose one of {', '.join(PARTS)}")
    modules = PARTS[part]
    trained = []
    for name, p in model.named_parameters():
        on = modules is None or name.split(".", 1)[0] in modules
        p.requires_grad_(on)
        if on:
            trained.append(p)
    return trained


def optimiser_size(state: dict) -> int:
    """Number of parameters an optimiser state_dict covers."""
    return sum(len(g["params"]) for g in state["param_groups"])
