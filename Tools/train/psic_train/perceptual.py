"""Perceptual terms for the SVI objective, selected by name (`train.py --perceptual NAME`).

Every term is a callable `P(x_hat, x) -> scalar tensor` (lower is better, differentiable in x_hat,
images in [0, 1], NCHW). Registered terms:

- `msssim`: 1 - MS-SSIM (3 scales, so 128 px crops work). Needs no downloads. Default.
- `lpips`:  LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a
            Perceptual Metric"): unit-normalised AlexNet or VGG16 activations at five depths, squared
            differences weighted per channel by learned 1x1 linear heads, averaged over space and
            summed over depths. The network is built here from torchvision's architecture with
            `weights=None` (nothing is downloaded); all weights (backbone and heads) come from local
            files given with `--lpips-weights`.
- `none`:   no perceptual term (the factory returns None; the objective then skips the term).

LPIPS weight files (.pt/.pth state dicts or .safetensors; several files are merged, so the
torchvision backbone file and the LPIPS heads file can be given side by side):
  backbone: torchvision names `features.<i>.weight|bias` (e.g. alexnet-owt-7be5be79.pth), or the
            `lpips` package's names `net.slice<k>.<i>.weight|bias` (a full `lpips.LPIPS` state dict);
  heads:    `lin<k>.model.1.weight` (the released v0.1 files, trained with dropout) or
            `lin<k>.model.0.weight`, shape (1, C_k, 1, 1).
A leading `module.` (DataParallel) is ignored. Missing tensors are an error that names them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .objective import msssim_loss

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Feature taps: (index of the last torchvision `features` module in each slice) + 1, and channels.
LPIPS_NETS = {
    "alex": {"slices": [2, 5, 8, 10, 12], "channels": [64, 192, 384, 256, 256]},
    "vgg": {"slices": [4, 9, 16, 23, 30], "channels": [64, 128, 256, 512, 512]},
}
# LPIPS's input normalisation of [-1, 1] images (ScalingLayer in the paper's code).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def _backbone(net: str) -> nn.Sequential:
    from torchvision import models
    if net == "alex":
        features = models.alexnet(weights=None).features
    elif net == "vgg":
        features = models.vgg16(weights=None).features
    else:
        raise ValueError(f"unknown LPIPS network {net!r} (alex or vgg)")
    return features[:LPIPS_NETS[net]["slices"][-1]]


class LPIPS(nn.Module):
    """LPIPS distance with a frozen backbone. forward(x_hat, x) -> mean distance over the batch."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net_name = net
        self.features = _backbone(net)
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.slices = LPIPS_NETS[net]["slices"]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_NETS[net]["channels"])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always a fixed metric

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((2 * x - 1) - self.shift) / self.scale
        out, start = [], 0
        for end in self.slices:
            for m in self.features[start:end]:
                h = m(h)
            out.append(h)
            start = end
        return out

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        fa, fb = self.taps(x_hat.float()), self.taps(x.float())
        total = 0.0
        for head, a, b in zip(self.heads, fa, fb):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((a - b) ** 2).mean(dim=(2, 3))
        return total.mean()

    # -- weights -----------------------------------------------------------------------------
    def lpips_state_dict(self) -> dict[str, torch.Tensor]:
        """This network's weights under the names the loader accepts (torchvision backbone,
        released-LPIPS heads): what `load_weights` reads back."""
        sd = {f"features.{k}": v.clone() for k, v in self.features.state_dict().items()}
        sd.update({f"lin{k}.model.1.weight": h.weight.detach().clone() for k, h in enumerate(self.heads)})
        return sd

    def load_weights(self, paths: list[Path] | Path) -> "LPIPS":
        paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        merged: dict[str, torch.Tensor] = {}
        for p in paths:
            merged.update(_read_state_dict(p))
        features, heads = {}, {}
        for k, v in merged.items():
            k = k.removeprefix("module.")
            if m := re.fullmatch(r"(?:net\.)?features\.(\d+\.(?:weight|bias))", k):
                features[m.group(1)] = v
            elif m := re.fullmatch(r"net\.slice\d+\.(\d+\.(?:weight|bias))", k):
                features[m.group(1)] = v
            elif m := re.fullmatch(r"lin(\d+)\.model\.[01]\.weight", k):
                heads[int(m.group(1))] = v
        want = self.features.state_dict()
        missing = [f"features.{k}" for k in want if k not in features]
        missing += [f"lin{k}.model.1.weight" for k in range(len(self.heads)) if k not in heads]
        if missing:
            raise SystemExit(f"--lpips-weights {', '.join(map(str, paths))}: no tensors for the {self.net_name} "
                             f"LPIPS network's {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} "
                             "(give the backbone and the linear heads; see psic_train/perceptual.py)")
        try:
            self.features.load_state_dict({k: features[k] for k in want})
            for k, h in enumerate(self.heads):
                h.weight.copy_(heads[k].reshape(h.weight.shape))
        except (RuntimeError, ValueError) as e:
            raise SystemExit(f"--lpips-weights: tensors do not fit the {self.net_name} LPIPS network: {e}")
        return self


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SystemExit(f"--lpips-weights: {path} does not exist. LPIPS needs local weight files "
                         "(nothing is downloaded); use --perceptual msssim or none without them")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SystemExit(f"--lpips-weights: {path} does not hold a state dict")
    return {k: v for k, v in sd.items() if torch.is_tensor(v)}


def _make_msssim(**_) -> PerceptualFn:
    return msssim_loss


def _make_lpips(lpips_weights=None, lpips_net: str = "alex", device="cpu", **_) -> PerceptualFn:
    if not lpips_weights:
        raise SystemExit("--perceptual lpips needs --lpips-weights FILE [FILE ...] (local backbone and "
                         "linear-head weights; nothing is downloaded)")
    return LPIPS(lpips_net).load_weights(lpips_weights).to(device)


def _make_none(**_) -> None:
    return None


REGISTRY: dict[str, Callable[..., PerceptualFn | None]] = {
    "msssim": _make_msssim,
    "lpips": _make_lpips,
    "none": _make_none,
}


def make_perceptual(name: str, **options) -> PerceptualFn | None:
    """The perceptual term called `name` (see REGISTRY), or None for `none`. Options: lpips_weights
    (a path or a list of paths), lpips_net (alex or vgg), device."""
    if name not in REGISTRY:
        raise SystemExit(f"unknown perceptual term {name!r}: one of {', '.join(REGISTRY)}")
    return REGISTRY[name](**options)
