"""Widening a trained model's transforms without changing what it computes.

A larger model trained from scratch needs hundreds of thousands of steps, which 2 CPU cores do
not have. Widening the trained one (Net2Net-style) starts the larger model at the smaller one's
function, so every step trains capacity instead of re-learning what is there:

- every old tensor is copied into the leading slice of the wider one;
- one side of each added channel starts at zero, so that nothing old reads it:
  - `start="incoming"` (the default): its incoming weights and bias are zero, so it is exactly 0 on
    every input (GDN, IGDN and LeakyReLU map 0 to 0), and its outgoing weights keep their random
    initialisation, which gives the incoming ones a gradient and breaks the symmetry between the
    added channels (zero on both sides would be a fixed point);
  - `start="outgoing"`: its incoming weights are random, so it computes a random feature from the
    first step, and the old channels' weights from it are zero; those get the gradient of how
    well the feature would serve them;
  either way the old channels' GDN terms from the added ones are 0 (a fresh GDN's off-diagonal
  gamma is 0);
- the z channels added to the hyperprior are always 0 (zero incoming weights in both starts), and
  their factorised prior is fitted to put its mass there, so they cost no bits from the first step.

`narrow` is the inverse: it keeps the leading channels, so a widened run whose added channels
never grew (`added_channel_weights` tells) exports at the narrower model's cost.

Only N (the transforms' and the hyper transforms' width) grows: C, L and the entropy-parameter
networks keep their shapes, so the latents, their levels and the stream layout are the same.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .fromfile import fit_density
from .model import ModelConfig, PSICModel


def _widen_conv(new: nn.Module, old: nn.Module, zero_incoming: bool, zero_outgoing: bool) -> None:
    """Copies `old`'s weights into the leading slice of `new` (same kind, wider or equal). With
    `zero_incoming` the added output channels' incoming weights are zero; with `zero_outgoing` the
    old output channels' weights from the added inputs are. The rest of the added weights keep
    `new`'s random ones; the added channels' biases are zero."""
    w_new, w_old = new.weight, old.weight
    # Conv2d stores [out, in, k, k], ConvTranspose2d [in, out, k, k].
    out_axis, in_axis = (1, 0) if isinstance(new, nn.ConvTranspose2d) else (0, 1)
    cout_old, cin_old = w_old.shape[out_axis], w_old.shape[in_axis]
    if zero_incoming:
        w_new.narrow(out_axis, cout_old, w_new.shape[out_axis] - cout_old).zero_()
    if zero_outgoing:
        w_new.narrow(out_axis, 0, cout_old).narrow(in_axis, cin_old, w_new.shape[in_axis] - cin_old).zero_()
    w_new[tuple(slice(0, s) for s in w_old.shape)] = w_old
    new.bias.zero_()
    new.bias[:cout_old] = old.bias


def _widen_gdn(new: nn.Module, old: nn.Module) -> None:
    """Copies the old GDN's stored (reparametrised) beta and gamma into the leading block; the
    added rows and columns keep the fresh GDN's beta 1, gamma 0.1 on the diagonal and 0 off it."""
    n = old.beta.shape[0]
    new.beta[:n] = old.beta
    new.gamma[:n, :n] = old.gamma


START = ("incoming", "outgoing")


def widen(model: PSICModel, N: int, seed: int = 0, start: str = "incoming") -> PSICModel:
    """A model of width `N` (>= model.cfg.N) that computes what `model` does; see the module
    comment. `start` says which weights of the added channels start at zero (`START`): "incoming"
    (the added channels are 0, their outgoing weights random) or "outgoing" (they compute random
    features that nothing reads yet). The z channels' incoming weights are zero either way, so
    that z stays 0 and free."""
    if start not in START:
        raise ValueError(f"widen: start {start!r} is not one of {', '.join(START)}")
    cfg = model.cfg
    if N < cfg.N:
        raise ValueError(f"widen: N {N} is narrower than the model's {cfg.N}")
    wide_cfg = ModelConfig(N=N, C=cfg.C, L=cfg.L, hyper=cfg.hyper, ep_width=cfg.ep_width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wide = PSICModel(wide_cfg)
    with torch.no_grad():
        z_layer = wide.h_a[len(wide.h_a) - 1]
        for name in ("g_a", "g_s", "h_a", "h_s"):
            for new, old in zip(getattr(wide, name), getattr(model, name)):
                if isinstance(new, (nn.Conv2d, nn.ConvTranspose2d)):
                    # z's added channels stay 0 whatever `start` is: zero incoming weights.
                    _widen_conv(new, old, zero_incoming=start == "incoming" or new is z_layer,
                                zero_outgoing=start == "outgoing")
                elif hasattr(new, "gamma"):
                    _widen_gdn(new, old)
        wide.entropy_parameters.load_state_dict(model.entropy_parameters.state_dict())
        old_eb = model.entropy_bottleneck.state_dict()
        for key, t in wide.entropy_bottleneck.state_dict().items():
            o = old_eb[key]
            if t.ndim and t.shape[0] == N and o.shape[0] == cfg.N:    # per-channel tensors
                t[:cfg.N] = o
            elif t.shape == o.shape:
                t.copy_(o)
    if N > cfg.N:
        # The added z channels' prior: all its mass on symbol 0 (the others' masses are zero).
        masses = torch.zeros(N, 1)
        masses[cfg.N:] = 1
        fit_density(wide.entropy_bottleneck, torch.zeros(N, 1), masses)
    return wide


def _rms(t: torch.Tensor) -> float | None:
    return float(t.pow(2).mean().sqrt()) if t.numel() else None


def added_channel_weights(model: PSICModel, old_N: int) -> list[tuple[str, float, float | None, float | None]]:
    """How far a widened model has taken its added channels into use: per transform convolution,
    the RMS of its old weights (old outputs from old inputs), of the added outputs' incoming
    weights, and of the old outputs' weights from the added inputs (None where that side did not
    grow). Both added parts start at zero on one side (`START`); while they stay far below the
    old weights, the model still computes much what the narrower one did."""
    rows = []
    for name in ("g_a", "g_s", "h_a", "h_s"):
        convs = [(i, m) for i, m in enumerate(getattr(model, name)) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        for k, (i, conv) in enumerate(convs):
            w = conv.weight.detach()
            if isinstance(conv, nn.ConvTranspose2d):
                w = w.transpose(0, 1)                     # [out, in, k, k] either way
            # Which sides are N wide (grew): not the image, the latents y, nor the hyper features.
            out_grew = not (k == len(convs) - 1 and name in ("g_a", "g_s", "h_s"))
            in_grew = not (k == 0 and name in ("g_a", "g_s", "h_a"))
            o = old_N if out_grew else w.shape[0]
            n = old_N if in_grew else w.shape[1]
            rows.append((f"{name}.{i}", _rms(w[:o, :n]), _rms(w[o:]), _rms(w[:o, n:])))
    return rows


def narrow(model: PSICModel, N: int) -> PSICModel:
    """The model cut back to its leading `N` channels of width N: the inverse of `widen` (exactly,
    while the added channels are as widen left them). A widened run whose added channels never
    grew (`added_channel_weights`) loses next to nothing by it and keeps the narrower model's cost.
    Every tensor is the leading slice of the wide one's, as `widen` laid them out."""
    cfg = model.cfg
    if not 0 < N <= cfg.N:
        raise ValueError(f"narrow: N {N} is not in 1...{cfg.N}")
    narrow_model = PSICModel(ModelConfig(N=N, C=cfg.C, L=cfg.L, hyper=cfg.hyper, ep_width=cfg.ep_width))
    wide_state = model.state_dict()
    narrow_model.load_state_dict({k: wide_state[k][tuple(slice(0, s) for s in t.shape)].clone()
                                  for k, t in narrow_model.state_dict().items()})
    return narrow_model
