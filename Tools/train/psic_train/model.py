"""The PSIC model: conv + GDN transforms, a hyperprior, and L channel-conditional synonymous levels.

Everything that decides probabilities at decode time (h_s, the entropy-parameter networks) is
later quantised to integers by the exporter; here it is trained in float32. The analysis and
synthesis transforms may run in bfloat16 autocast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN

from .objective import ms_ssim_5

# Negative slope of every LeakyReLU in the model. A power of two so the integer networks
# reproduce it exactly as `(v * 16) >> 8`.
LEAKY_SLOPE = 1.0 / 16.0
# Lower bound of the Gaussian scale, and the top of the exported scale table.
SCALE_MIN = 0.11
SCALE_MAX = 256.0
LOG_SCALE_MAX = math.log(SCALE_MAX)


@dataclass(frozen=True)
class ScaleFactors:
    """Multipliers of the entropy model's scale sigma, apart where the coder reads it (`code`: the
    rates) and where the sampler does (`sample`: the spread of the details drawn for levels not
    transmitted). A trained model is evaluated at 1 and 1; scale_probe.py measures what each is
    worth, which is how session 50 found the coder wanted a wider table than the sampler."""
    code: float = 1.0
    sample: float = 1.0


UNSCALED = ScaleFactors()


@dataclass
class ModelConfig:
    N: int = 96          # transform width
    C: int = 160         # latent channels
    L: int = 8           # synonymous levels (C % L == 0)
    hyper: int = 128     # channels of the hyper features fed to the entropy-parameter nets
    ep_width: int = 128  # hidden width of each entropy-parameter net

    @property
    def level_channels(self) -> int:
        return self.C // self.L

    def to_dict(self):
        return asdict(self)


def conv(cin, cout, k=5, stride=2):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin, cout, k=5, stride=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


# What the training rate of a level is the likelihood of. "noise": y - mu plus uniform noise in
# [-0.5, 0.5), the smooth proxy every run before session 49 trained with. "round": the rounded
# residual round(y - mu) the coder spends bits on (straight-through gradient to y and mu, exact to
# sigma). On Kodak the noise proxy charged the step-206500 model 7 % more than the coder spends,
# and 70 % more at level 1, whose residuals are mostly 0 (Tools/train/proxy_gap.py, session 49).
RATE_PROXIES = ("noise", "round")


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Rounds in the forward pass, identity gradient in the backward pass."""
    return (torch.round(x) - x).detach() + x


def gaussian_likelihood(residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(residual in [r-0.5, r+0.5]) under N(0, sigma): the discretised Gaussian the coder uses."""
    v = residual.abs()
    s = math.sqrt(0.5)
    upper = 0.5 * torch.erfc(-(0.5 - v) / sigma * s)
    lower = 0.5 * torch.erfc(-(-0.5 - v) / sigma * s)
    return (upper - lower).clamp_min(1e-9)


class PSICModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.C % cfg.L == 0, "C must be divisible by L"
        self.cfg = cfg
        N, C, L = cfg.N, cfg.C, cfg.L
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, C))
        self.g_s = nn.Sequential(
            deconv(C, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3))
        self.h_a = nn.Sequential(
            conv(C, N, 3, 1), nn.LeakyReLU(LEAKY_SLOPE), conv(N, N), nn.LeakyReLU(LEAKY_SLOPE), conv(N, N))
        self.h_s = nn.Sequential(
            deconv(N, N), nn.LeakyReLU(LEAKY_SLOPE), deconv(N, N), nn.LeakyReLU(LEAKY_SLOPE),
            conv(N, cfg.hyper, 3, 1))
        self.entropy_bottleneck = EntropyBottleneck(N)
        lc = cfg.level_channels
        self.entropy_parameters = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(cfg.hyper + i * lc, cfg.ep_width, 1), nn.LeakyReLU(LEAKY_SLOPE),
                nn.Conv2d(cfg.ep_width, cfg.ep_width, 1), nn.LeakyReLU(LEAKY_SLOPE),
                nn.Conv2d(cfg.ep_width, 2 * lc, 1))
            for i in range(L)])

    # -- pieces -------------------------------------------------------------------------------
    def level_params(self, i: int, hyper: torch.Tensor, previous: list[torch.Tensor]):
        """Mean and scale of level i given the hyper features and the decoded levels < i."""
        out = self.entropy_parameters[i](torch.cat([hyper] + previous, dim=1))
        mean, log_scale = out.chunk(2, dim=1)
        sigma = torch.exp(log_scale.clamp(max=LOG_SCALE_MAX)).clamp_min(SCALE_MIN)
        return mean, sigma, log_scale

    def hyper(self, y: torch.Tensor):
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = ste_round(z) if self.training else torch.round(z)
        return z_hat, z_likelihoods, self.h_s(z_hat)

    def sample_levels(self, hyper, transmitted: list[torch.Tensor], generator=None, mean_details: bool = False,
                      sigma_factor: float = 1.0):
        """Completes `transmitted` (decoded levels 0..l-1) by sampling the remaining levels in
        order from the conditional prior: y_i = mu_i + round(sigma_i * eps); with `mean_details`
        each is its mean mu_i (symbol 0, the decoder's `--details mean`). `sigma_factor` widens
        (or narrows) the draw: ScaleFactors.sample, 1 everywhere but in scale_probe.py.

        The draw passes gradients to sigma, so the sampled-details distortion pulls the coder's
        scale down (E[(y-mu)^2/sigma^2] is 1.3-1.6 on the levels sampled most, a bit cost). Cutting
        that gradient (sigma.detach()) was tried in session 14 from step 40243: within ~300 steps
        the sampled decodes blew up (their PSNR -80 to -140 dB, loss 1e10-1e16) and the full
        decode fell 0.3-1 dB, so it was reverted (presumably the sampled term is what bounds sigma
        where the rate term barely constrains it). A fix needs a separate sampling scale or a
        bound on sigma, tried as an A/B."""
        levels = list(transmitted)
        for i in range(len(levels), self.cfg.L):
            mean, sigma, _ = self.level_params(i, hyper, levels)
            if mean_details:
                levels.append(mean)
                continue
            # a seeded draw comes from the generator's device (evaluations seed a CPU one) and is
            # moved, so a model on a GPU samples the same details as on the CPU
            where = mean.device if generator is None else generator.device
            eps = torch.randn(mean.shape, generator=generator, device=where, dtype=mean.dtype).to(mean.device)
            if sigma_factor != 1.0:
                sigma = sigma * sigma_factor
            levels.append(mean + ste_round(sigma * eps))
        return levels

    def forward(self, x: torch.Tensor, level: int, samples: int, autocast: bool = False, rate_proxy: str = "noise"):
        """Training forward pass at transmitted level `level` (1..L) with `samples` detail draws.

        Returns the full decode, the sampled decodes (samples*B images, or None when level == L),
        per-level likelihoods, z likelihoods, and the latents needed for consistency terms.
        `rate_proxy` (RATE_PROXIES) is what the levels' likelihoods are taken of; z's are always
        on uniform noise (CompressAI's bottleneck; about 0.5 % of the bits).
        """
        if rate_proxy not in RATE_PROXIES:
            raise ValueError(f"unknown rate proxy {rate_proxy!r}; choose one of {', '.join(RATE_PROXIES)}")
        L = self.cfg.L
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = self.g_a(x)
        y = y.float()
        z_hat, z_lik, hyper = self.hyper(y)
        ys = y.chunk(L, dim=1)
        decoded, likelihoods = [], []
        for i in range(L):
            mean, sigma, _ = self.level_params(i, hyper, decoded)
            q = ste_round(ys[i] - mean)
            if rate_proxy == "round":
                likelihoods.append(gaussian_likelihood(q, sigma))
            else:
                noisy = ys[i] + torch.empty_like(ys[i]).uniform_(-0.5, 0.5)
                likelihoods.append(gaussian_likelihood(noisy - mean, sigma))
            decoded.append(q + mean)
        y_full = torch.cat(decoded, dim=1)
        sampled = None
        if level < L and samples > 0:
            hyper_m = hyper.repeat(samples, 1, 1, 1)
            trans_m = [d.repeat(samples, 1, 1, 1) for d in decoded[:level]]
            sampled = torch.cat(self.sample_levels(hyper_m, trans_m), dim=1)
            y_in = torch.cat([y_full, sampled], dim=0)
        else:
            y_in = y_full
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            x_all = self.g_s(y_in)
        x_all = x_all.float()
        B = x.shape[0]
        return {
            "x_full": x_all[:B],
            "x_sampled": x_all[B:] if sampled is not None else None,
            "y_full": y_full,
            "y_sampled": sampled,
            "likelihoods": likelihoods,
            "z_likelihoods": z_lik,
        }


def z_likelihood(eb: EntropyBottleneck, z_hat: torch.Tensor) -> torch.Tensor:
    """Likelihood of integer z under the factorised prior (no noise, no median offset)."""
    C = z_hat.shape[1]
    v = z_hat.permute(1, 0, 2, 3).reshape(C, 1, -1)
    lik = eb._likelihood(v)
    lik = lik[0] if isinstance(lik, tuple) else lik
    return lik.clamp_min(1e-9).reshape(C, z_hat.shape[0], z_hat.shape[2], z_hat.shape[3]).permute(1, 0, 2, 3)


@torch.no_grad()
def checkpoint_weights(ckpt: dict, ema: bool = True) -> tuple[dict, bool]:
    """A train.py checkpoint's state dict: its moving average of the weights (`ema`, parameters
    only, buffers from the trained model) when asked for and present, else the raw weights.
    Returns the state dict and whether it is the average."""
    use_ema = ema and "ema" in ckpt
    return ({**ckpt["model"], **ckpt["ema"]} if use_ema else ckpt["model"]), use_ema


def round_to_mean(y: torch.Tensor, mean: torch.Tensor):
    """The float model's coding rule: q = round(y - mean), decoded about `mean` itself."""
    return torch.round(y - mean), mean


def code_levels(model: PSICModel, hyper: torch.Tensor, ys, rule=round_to_mean):
    """Codes the levels `ys` in order, each conditioned on the decoded levels before it:
    per level (sigma, q, decoded). `rule(y_i, mean)` gives (q, centre), decoded = q + centre, so
    a rule that moves the mean (the integer model's 1/16 grid) moves the later levels with it."""
    decoded, out = [], []
    for i in range(model.cfg.L):
        mean, sigma, _ = model.level_params(i, hyper, decoded)
        q, centre = rule(ys[i], mean)
        decoded.append(q + centre)
        out.append((sigma, q, decoded[-1]))
    return out


@torch.no_grad()
def level_decodes(model: PSICModel, x: torch.Tensor, seed: int = 0, mean_details: bool = False,
                  scales: ScaleFactors = UNSCALED):
    """Codes `x` once and yields, for every level l = 1..L in order, (l, bits, x_hat): the bits of
    z and levels <= l (rounded symbols, as the coder would spend them) and the decode with the
    levels past l sampled from a generator seeded with `seed` (or at their mean with
    `mean_details`), clamped to [0, 1]. The one decode path of evaluate_levels and the realism
    probe. `scales` multiplies sigma for the rates and for the draws apart (ScaleFactors)."""
    L = model.cfg.L
    x = x.to(next(model.parameters()).device)   # crops are held on the CPU whatever trains where
    y = model.g_a(x)
    z = model.h_a(y)
    z_hat = torch.round(z)
    z_bits = -torch.log2(z_likelihood(model.entropy_bottleneck, z_hat)).sum()
    hyper = model.h_s(z_hat)
    coded = code_levels(model, hyper, y.chunk(L, dim=1))
    bits = [(-torch.log2(gaussian_likelihood(q, sigma if scales.code == 1.0 else sigma * scales.code))).sum().item()
            for sigma, q, _ in coded]
    decoded = [d for _, _, d in coded]
    g = torch.Generator().manual_seed(seed)
    for l in range(1, L + 1):
        levels = model.sample_levels(hyper, decoded[:l], generator=g, mean_details=mean_details,
                                     sigma_factor=scales.sample)
        yield l, z_bits.item() + sum(bits[:l]), model.g_s(torch.cat(levels, dim=1)).clamp(0, 1)


def evaluate_levels(model: PSICModel, x: torch.Tensor, seed: int = 0, mean_details: bool = False, extra=None,
                    scales: ScaleFactors = UNSCALED):
    """Per-level rate (bits of rounded symbols, as the coder would spend them) and the PSNR and
    five-scale MS-SSIM of a decode at every level l = 1..L (level_decodes). `extra(x, x_hat)`, when
    given, returns more metrics of a decode (a dict) for each level's row. `scales` multiplies
    sigma for the rates and for the draws apart (ScaleFactors)."""
    model.eval()
    B, _, H, W = x.shape
    npix = B * H * W
    x = x.to(next(model.parameters()).device)
    results = []
    for l, bits, x_hat in level_decodes(model, x, seed, mean_details, scales):
        mse = torch.mean((x_hat - x) ** 2).item()
        results.append({"level": l, "bpp": bits / npix, "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
                        "ms_ssim": ms_ssim_5(x_hat, x), **(extra(x, x_hat) if extra else {})})
    model.train()
    return results


def mean_curve(model: PSICModel, crops: list[torch.Tensor], mean_details: bool = False, extra=None,
               scales: ScaleFactors = UNSCALED) -> list[dict]:
    """evaluate_levels averaged over crops (each crop weighs the same, whatever its size): the
    held-out curve that train.py logs, compare.py prints and export.py stores in its report.
    `extra` and `scales` as for evaluate_levels; extra's metrics are averaged too."""
    with torch.no_grad():
        res = [evaluate_levels(model, x, mean_details=mean_details, extra=extra, scales=scales) for x in crops]
    return [{"level": i + 1, **{k: sum(r[i][k] for r in res) / len(res) for k in res[0][i] if k != "level"}}
            for i in range(len(res[0]))]
