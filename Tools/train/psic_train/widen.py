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
- `start="split"` (Net2WiderNet) instead makes every added channel a second copy of one of the old
  channels that carry most (the largest outgoing weights): the copy reads what its source reads,
  has its source's GDN/IGDN terms, and the weights reading either copy are half the source's, as
  are the GDN terms over either copy, so the pair computes what the source did. Session 45 found
  the zero-started channels stayed unused (their weights a random walk of the step noise); a
  copy is in use from the first step. Exact copies get equal gradients and would stay equal for
  ever, so the copies' incoming weights get a little noise (`noise` times the source row's RMS),
  which changes the function by about that fraction of the split channels' share. At most N = 2
  × the old width (every channel copied once). Session 48 found the copies did not part either
  (after 555 steps at lr 1e-4 `split_copy_gaps` still read the noise);
- the z channels added to the hyperprior are always 0 (zero incoming weights in every start), and
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


START = ("incoming", "outgoing", "split")

# Relative size of the noise on a split copy's incoming weights (`widen(start="split")`).
SPLIT_NOISE = 0.01


def _conv_out_in(conv: nn.Module) -> torch.Tensor:
    """The weight as [out, in, k, k] (a view: writes go to the layer)."""
    return conv.weight.transpose(0, 1) if isinstance(conv, nn.ConvTranspose2d) else conv.weight


def _busiest_channels(model: PSICModel, name: str, index: int, count: int) -> torch.Tensor:
    """The `count` output channels of layer `index` of transform `name` that the next
    convolution reads most (largest norm of its weights from them), in ascending order."""
    layers = getattr(model, name)
    reader = next(m for m in list(layers)[index + 1:] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    w = _conv_out_in(reader).detach()
    load = w.pow(2).sum(dim=(0, 2, 3))
    return torch.sort(torch.topk(load, count).indices).values


# An origin-map entry for a wide channel that stands for no old channel (z's added channels): its
# weights, incoming and outgoing, are zero.
NO_ORIGIN = -1


def _share(cols: torch.Tensor, old_N: int) -> torch.Tensor:
    """Per wide input b, 1 / (the number of wide inputs standing for old input cols[b]): what a
    weight reading b is scaled by so that a split pair sums to the old input (0 for NO_ORIGIN)."""
    counts = torch.bincount(cols[cols != NO_ORIGIN], minlength=old_N).float()
    return torch.where(cols != NO_ORIGIN, 1.0 / counts[cols.clamp(min=0)], torch.zeros(()))


def _gather(w_old: torch.Tensor, b_old: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor | None, old_N: int):
    """The wide layer's weight [out, in, k, k] and bias from the old layer's: wide output a from
    wide input b is old output rows[a] from old input cols[b], times `_share(cols)[b]`; zero where
    either map is NO_ORIGIN. `cols` None: the input site kept its width and maps to itself."""
    if cols is None:
        cols, scale = torch.arange(w_old.shape[1]), torch.ones(w_old.shape[1])
    else:
        scale = _share(cols, old_N)
    w = w_old[rows.clamp(min=0)][:, cols.clamp(min=0)] * scale.view(1, -1, 1, 1)
    b = b_old[rows.clamp(min=0)].clone()
    w[rows == NO_ORIGIN], b[rows == NO_ORIGIN] = 0, 0
    return w, b


def _split(wide: PSICModel, model: PSICModel, noise: float, generator: torch.Generator) -> None:
    """Fills `wide` (N wider than `model`) with `model`'s function, each added channel a copy of
    a busy old one (module comment, start "split"). Every activation site of width N gets an
    origin map: wide channel a stands for old channel origin[a], and count[o] wide channels
    stand for old channel o. A layer's weight from wide input b to wide output a is the old
    one's from origin_in[b] to origin_out[a] divided by count_in[origin_in[b]], and so are the
    GDN terms; the sites that keep their width (image, y, hyper features) map to themselves, and
    z's added channels map to NO_ORIGIN: they stay exactly 0 and nothing reads them."""
    old_N, N = model.cfg.N, wide.cfg.N
    z_layer = wide.h_a[len(wide.h_a) - 1]
    z_origin = torch.cat([torch.arange(old_N), torch.full((N - old_N,), NO_ORIGIN)])
    reads = {"g_a": None, "g_s": None, "h_a": None, "h_s": z_origin}   # the site each transform reads
    for name in ("g_a", "g_s", "h_a", "h_s"):
        new_layers, old_layers = list(getattr(wide, name)), list(getattr(model, name))
        origin_in = reads[name]
        for i, (new, old) in enumerate(zip(new_layers, old_layers)):
            if isinstance(new, (nn.Conv2d, nn.ConvTranspose2d)):
                w_old, w_new = _conv_out_in(old).detach(), _conv_out_in(new)
                grows = w_new.shape[0] > w_old.shape[0]
                if new is z_layer:
                    origin_out = z_origin
                elif grows:
                    origin_out = torch.cat([torch.arange(old_N), _busiest_channels(model, name, i, N - old_N)])
                else:
                    origin_out = torch.arange(w_new.shape[0])
                w, b = _gather(w_old, old.bias.detach(), origin_out, origin_in, old_N)
                if grows and new is not z_layer and noise > 0:
                    rms = w[old_N:].pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
                    w[old_N:] += noise * rms * torch.randn(w[old_N:].shape, generator=generator)
                w_new.copy_(w)
                new.bias.copy_(b)
                origin_in = origin_out if grows else None
            elif hasattr(new, "gamma"):
                beta = old.beta_reparam(old.beta.detach())[origin_in]
                gamma = old.gamma_reparam(old.gamma.detach())[origin_in][:, origin_in]
                gamma = gamma * _share(origin_in, old_N).view(1, -1)
                new.beta.copy_(new.beta_reparam.init(beta))
                new.gamma.copy_(new.gamma_reparam.init(gamma))


def widen(model: PSICModel, N: int, seed: int = 0, start: str = "incoming", noise: float = SPLIT_NOISE) -> PSICModel:
    """A model of width `N` (>= model.cfg.N) that computes what `model` does; see the module
    comment. `start` says how the added channels begin (`START`): "incoming" (they are 0, their
    outgoing weights random), "outgoing" (they compute random features that nothing reads yet)
    or "split" (copies of the busiest old channels, their incoming weights perturbed by `noise`
    times their RMS, so the model computes what `model` does up to that noise). The z channels'
    incoming weights are zero in every start, so that z stays 0 and free."""
    if start not in START:
        raise ValueError(f"widen: start {start!r} is not one of {', '.join(START)}")
    cfg = model.cfg
    if N < cfg.N:
        raise ValueError(f"widen: N {N} is narrower than the model's {cfg.N}")
    if start == "split" and N > 2 * cfg.N:
        raise ValueError(f"widen: a split copies each channel at most once, so N {N} can be at most {2 * cfg.N}")
    wide_cfg = ModelConfig(N=N, C=cfg.C, L=cfg.L, hyper=cfg.hyper, ep_width=cfg.ep_width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wide = PSICModel(wide_cfg)
    with torch.no_grad():
        z_layer = wide.h_a[len(wide.h_a) - 1]
        for name in ("g_a", "g_s", "h_a", "h_s") if start != "split" else ():
            for new, old in zip(getattr(wide, name), getattr(model, name)):
                if isinstance(new, (nn.Conv2d, nn.ConvTranspose2d)):
                    # z's added channels stay 0 whatever `start` is: zero incoming weights.
                    _widen_conv(new, old, zero_incoming=start == "incoming" or new is z_layer,
                                zero_outgoing=start == "outgoing")
                elif hasattr(new, "gamma"):
                    _widen_gdn(new, old)
        if start == "split":
            _split(wide, model, noise, torch.Generator().manual_seed(seed))
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


def split_copy_gaps(model: PSICModel, old_N: int) -> list[tuple[str, float]]:
    """How far the copies of a split start (`widen(start="split")`) have parted from their
    sources: per transform convolution whose outputs grew (z's excepted), the median over added
    channels of the distance from its incoming weights to the nearest old channel's, relative to
    that channel's. A split starts at the noise (0.01); copies that stay there compute their
    source's feature and the width is unused."""
    rows = []
    for name in ("g_a", "g_s", "h_a", "h_s"):
        convs = [(i, m) for i, m in enumerate(getattr(model, name)) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        for k, (i, conv) in enumerate(convs):
            if k == len(convs) - 1:                       # y, the image, z or the hyper features
                continue
            w = _conv_out_in(conv).detach().flatten(1)
            old, added = w[:old_N], w[old_N:]
            gaps = torch.cdist(added, old).min(dim=1)
            rows.append((f"{name}.{i}", float((gaps.values / old[gaps.indices].norm(dim=1)).median())))
    return rows


def narrow(model: PSICModel, N: int) -> PSICModel:
    """The model cut back to its leading `N` channels of width N: the inverse of `widen`'s zero starts
    (exactly, while the added channels are as widen left them; after a split the halved weights
    stay halved, so it is not). A widened run whose added channels never
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
