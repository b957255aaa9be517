"""Optional adversarial fine-tuning: a patch discriminator and the non-saturating GAN loss.

    generator term     (added to the SVI loss, weight --adversarial-weight):
        0.5 * mean softplus(-D(x_full)) + 0.5 * mean softplus(-D(x_sampled))
    discriminator loss (its own Adam, trained from scratch):
        mean softplus(-D(x)) + 0.5 * mean softplus(D(x_full)) + 0.5 * mean softplus(D(x_sampled))
(softplus(-t) = -log sigmoid(t): the non-saturating loss of Goodfellow et al. 2014.) At level L
there is no sampled decode and the full decode takes the whole weight. Both the full decode and
the sampled decodes are pushed to look real: a sampled decode is a member of the synonymous set
and should be as natural an image as the full one.

Why the discriminator is unconditional (sees only the image, no latent). HiFiC (Mentzer et al.
2020) conditions D on the quantised latent so that D judges "is this a real image *for this
code*". In PSIC a sampled decode's latent is partly drawn from the prior: conditioned on the
transmitted levels only, D could not tell which details were meant; conditioned on the whole
latent (encoded for real images, partly sampled for the fakes), D gets a shortcut, the statistics
of prior samples vs. encoder outputs, that says nothing about how the pixels look, and the
generator would be pushed to change the prior instead of the texture. Fidelity to the input is
already enforced by the MSE and perceptual terms of the SVI objective (on the transmitted
levels) and by the consistency term; what the adversarial term must add is per-patch
naturalness, for which the image alone is the right input. It is also the cheaper choice on the
CPU this is trained on.

The discriminator is a PatchGAN (Isola et al. 2017): strided 4x4 convolutions with spectral norm
and LeakyReLU(0.2), one logit per ~70 px receptive field. Its state lives outside PSICModel
(checkpoint keys "discriminator", "discriminator_optimizer", "discriminator_config"), so the
codec's state_dict and the exporter never see it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    width: int = 64    # channels of the first layer (doubles per downsampling, capped at 8x)
    layers: int = 3    # stride-2 layers


class PatchDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        mods, cin = [], 3
        for i in range(cfg.layers):
            cout = cfg.width * min(2 ** i, 8)
            mods += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        cout = cfg.width * min(2 ** cfg.layers, 8)
        mods += [spectral_norm(nn.Conv2d(cin, cout, 4, 1, 1)), nn.LeakyReLU(0.2),
                 spectral_norm(nn.Conv2d(cout, 1, 4, 1, 1))]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits (B, 1, h, w) for images in [0, 1]."""
        return self.net(2 * x - 1).float()


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log sigmoid(D(x_hat)) = softplus(-D(x_hat))."""
    return F.softplus(-logits_fake).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(x_hat))) = softplus(-D(x)) + softplus(D(x_hat))."""
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


class Adversarial:
    """The discriminator, its optimiser, and the two loss halves used by train.py."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig(), lr: float = 1e-4,
                 device="cpu", autocast: bool = False):
        self.cfg = cfg
        self.D = PatchDiscriminator(cfg).to(device).to(memory_format=torch.channels_last)
        # beta1 = 0.5: the usual choice for GAN discriminators (Radford et al. 2016).
        self.opt = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.autocast = autocast

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            return self.D(x)

    @staticmethod
    def _halves(x_full: torch.Tensor, x_sampled: torch.Tensor | None):
        return [(x_full, 1.0)] if x_sampled is None else [(x_full, 0.5), (x_sampled, 0.5)]

    def generator_term(self, x_full: torch.Tensor, x_sampled: torch.Tensor | None) -> torch.Tensor:
        """The generator's adversarial loss; gradients reach the decodes, not D's parameters."""
        self.D.requires_grad_(False)
        try:
            return sum(w * generator_loss(self._logits(x)) for x, w in self._halves(x_full, x_sampled))
        finally:
            self.D.requires_grad_(True)

    def discriminator_step(self, x: torch.Tensor, x_full: torch.Tensor,
                           x_sampled: torch.Tensor | None) -> dict:
        """One Adam step of D on real x against the (detached) decodes. Returns statistics."""
        real = self._logits(x)
        fakes = [(self._logits(f.detach()), w) for f, w in self._halves(x_full, x_sampled)]
        loss = F.softplus(-real).mean() + sum(w * F.softplus(lf).mean() for lf, w in fakes)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"d_loss": loss.item(), "d_real": real.mean().item(),
                "d_fake": sum(w * lf.mean().item() for lf, w in fakes)}

    # -- checkpoint ---------------------------------------------------------------------------
    def state(self) -> dict:
        return {"discriminator": self.D.state_dict(), "discriminator_optimizer": self.opt.state_dict(),
                "discriminator_config": asdict(self.cfg)}

    def load(self, ckpt: dict, lr: float | None = None) -> bool:
        """Loads D (and its optimiser) from a checkpoint; False if it holds none (D starts fresh)."""
        if "discriminator" not in ckpt:
            return False
        self.D.load_state_dict(ckpt["discriminator"])
        if "discriminator_optimizer" in ckpt:
            self.opt.load_state_dict(ckpt["discriminator_optimizer"])
            if lr is not None:
                for g in self.opt.param_groups:
                    g["lr"] = lr
        return True


DISCRIMINATOR_KEYS = ("discriminator", "discriminator_optimizer", "discriminator_config")
