"""The synonymous variational inference (SVI) objective, after Liang et al., ICML 2025.

Per batch at transmitted level l (drawn uniformly in 1..L):
    0.5 * (lambda_L * MSE(x, x_full) + gamma_L * P(x, x_full) + beta_L * bpp_all)
  + 0.5 * (lambda_l * E_m[MSE(x, x_m)] + gamma_l * E_m[P(x, x_m)] + beta_l * (bpp_{levels<=l} + bpp_z))
  + w_c * consistency  (g_a of a sampled decode should give back the transmitted and sampled levels)
  + w_e * spread of the per-level rates (keeps the levels' rates even)
where x_m are decodes whose levels > l are sampled from the prior. P is the perceptual term
(1 - MS-SSIM by default; psic_train/perceptual.py holds the choices, None = no term).
lambda rises and beta falls with l:
lambda_l = lambda_min * (lambda_max / lambda_min) ** ((l-1)/(L-1)), beta_l = 2 ** (6 - 6 l / L).
Where this departs from the paper's setting (a session-14 review): lambda is geometric in l, not
linear, which weights the middle levels' sampled decodes 1.3-2.3x less; gamma_l rises with
lambda_l where the paper's perceptual weight falls with l; the evenness term stays on for the
whole run; z is charged at beta_l in the partial term, so z bits are dear (the hyperprior is
little used: 0.005 bpp on Kodak). The consistency term, at 0.02, is ~0.001 of the loss;
consistency_every K computes it on one step in K at K times the weight. Each is
a candidate for a measured A/B, not a settled choice.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

# 3-scale MS-SSIM weights (renormalised first three of Wang et al.'s five) so 128px crops work.
MSSSIM_WEIGHTS = [0.0448, 0.2856, 0.3001]
MSSSIM_WIN = 7


@dataclass
class ObjectiveConfig:
    lambda_min: float = 128.0
    lambda_max: float = 2048.0
    perceptual_weight: float = 0.01   # gamma_l = perceptual_weight * lambda_l
    consistency_weight: float = 0.02
    evenness_weight: float = 2.0
    # The consistency term on one step in K, weighted K times: the same expected gradient. Its
    # re-analysis through g_a is the costliest part of a step that trains g_s alone; K=4 made
    # training steps 10 % faster (session 38: Tools/train/bench-steps.sh, RESULTS.md).
    consistency_every: int = 1
    # The levels' rate proxy in training (psic_train/model.py RATE_PROXIES): part of the recipe, so
    # a resumed run keeps it. The model's forward pass takes the likelihoods, the objective sums them.
    rate_proxy: str = "noise"


def ms_ssim(X: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor, win_size: int = MSSSIM_WIN) -> torch.Tensor:
    """Mean MS-SSIM of NCHW images in [0, 1] over len(weights) scales: pytorch_msssim.ms_ssim's
    computation (same ops, same result), without its assertion that the image survive 4
    downsamplings whatever the number of scales (3 scales of a 7-tap window need >= 28 px)."""
    win = _fspecial_gauss_1d(win_size, 1.5).repeat([X.shape[1], 1, 1, 1])
    mcs = []
    for i in range(weights.shape[0]):
        ssim_per_channel, cs = _ssim(X, Y, win=win, data_range=1.0, size_average=False, K=(0.01, 0.03))
        if i < weights.shape[0] - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in X.shape[2:]]
            X = F.avg_pool2d(X, kernel_size=2, padding=padding)
            Y = F.avg_pool2d(Y, kernel_size=2, padding=padding)
    stacked = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean()


# Wang et al.'s five scales with their 11-tap window: the MS-SSIM export.py reports on Kodak
# (pytorch_msssim.ms_ssim's defaults), for the held-out evaluation.
MSSSIM_WEIGHTS_5 = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def ms_ssim_5(a: torch.Tensor, b: torch.Tensor) -> float:
    """Five-scale MS-SSIM of NCHW images in [0, 1], as pytorch_msssim.ms_ssim(data_range=1)
    computes it for images of sides over 160 px, and defined for smaller held-out crops too."""
    with warnings.catch_warnings():
        # Under 176 px the coarsest scales are smaller than the window, which pytorch_msssim then
        # skips (and says so at every call): the defined meaning here, not worth a warning per level.
        warnings.filterwarnings("ignore", message="Skipping Gaussian Smoothing")
        return float(ms_ssim(a, b, weights=torch.tensor(MSSSIM_WEIGHTS_5, device=a.device), win_size=11))


def msssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(MSSSIM_WEIGHTS, device=a.device)
    return 1.0 - ms_ssim(a.clamp(0, 1), b, weights=w / w.sum())


class SVIObjective:
    def __init__(self, levels: int, cfg: ObjectiveConfig, perceptual=msssim_loss):
        self.L = levels
        self.cfg = cfg
        self.perceptual = perceptual

    def lam(self, l: int) -> float:
        if self.L == 1:
            return self.cfg.lambda_max
        t = (l - 1) / (self.L - 1)
        return self.cfg.lambda_min * (self.cfg.lambda_max / self.cfg.lambda_min) ** t

    def beta(self, l: int) -> float:
        return 2.0 ** (6.0 - 6.0 * l / self.L)

    def __call__(self, model, x: torch.Tensor, out: dict, level: int, step: int = 0) -> tuple[torch.Tensor, dict]:
        """The loss of one batch and its statistics. `step` (the global step) picks the steps that
        compute the consistency term when `consistency_every` > 1."""
        B, _, H, W = x.shape
        npix = B * H * W
        bpp_levels = torch.stack([-torch.log2(lk).sum() / npix for lk in out["likelihoods"]])
        bpp_z = -torch.log2(out["z_likelihoods"]).sum() / npix
        bpp_all = bpp_levels.sum() + bpp_z
        L = self.L
        mse_full = F.mse_loss(out["x_full"], x)
        zero = torch.zeros((), device=x.device)
        perc_full = self.perceptual(out["x_full"], x) if self.perceptual is not None else zero
        full = self.lam(L) * mse_full + self.cfg.perceptual_weight * self.lam(L) * perc_full + self.beta(L) * bpp_all
        stats = {"bpp": bpp_all.item(), "bpp_z": bpp_z.item(), "mse_full": mse_full.item(),
                 "bpp_levels": bpp_levels.detach().tolist(), "perceptual_full": perc_full.item()}
        every = max(1, int(self.cfg.consistency_every))
        consistency = torch.zeros((), device=x.device)
        if out["x_sampled"] is not None:
            xs = out["x_sampled"]
            M = xs.shape[0] // B
            xr = x.repeat(M, 1, 1, 1)
            mse_s = F.mse_loss(xs, xr)
            perc_s = self.perceptual(xs, xr) if self.perceptual is not None else zero
            bpp_l = bpp_levels[:level].sum() + bpp_z
            partial = self.lam(level) * mse_s + self.cfg.perceptual_weight * self.lam(level) * perc_s \
                + self.beta(level) * bpp_l
            stats.update(mse_sampled=mse_s.item(), perceptual_sampled=perc_s.item())
            if step % every == 0:
                # Consistency on the first detail draw only: g_a is the costliest transform to repeat.
                y_again = model.g_a(xs[:B])
                consistency = F.mse_loss(y_again.float(), out["y_sampled"][:B].detach())
                stats.update(consistency=consistency.item())
        else:
            partial = full
        evenness = ((bpp_levels - bpp_levels.mean()) ** 2).sum()
        loss = 0.5 * full + 0.5 * partial + every * self.cfg.consistency_weight * consistency \
            + self.cfg.evenness_weight * evenness
        stats["loss"] = loss.item()
        return loss, stats


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))
