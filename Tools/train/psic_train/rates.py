"""Rates of the float entropy model and of the integer one (real table costs), per level."""
from __future__ import annotations

import numpy as np
import torch

from .intmodel import IntEntropyModel
from .model import PSICModel, code_levels, gaussian_likelihood, z_likelihood


@torch.no_grad()
def float_bits(model: PSICModel, y: torch.Tensor, z_hat: torch.Tensor, batch: int = 16):
    """(z bits, [bits of level i]) summed over the batch, float entropy model (evaluate_levels' rule)."""
    L = model.cfg.L
    zb, lb = 0.0, np.zeros(L)
    for s in range(0, y.shape[0], batch):
        yy, zz = y[s:s + batch], z_hat[s:s + batch]
        zb += float(-torch.log2(z_likelihood(model.entropy_bottleneck, zz)).sum())
        for i, (sigma, q, _) in enumerate(code_levels(model, model.h_s(zz), yy.chunk(L, dim=1))):
            lb[i] += float(-torch.log2(gaussian_likelihood(q, sigma)).sum())
    return zb, lb


@torch.no_grad()
def proxy_bits(model: PSICModel, y: torch.Tensor, z_hat: torch.Tensor, draws: int = 4,
               generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([bits of level i] as the coder spends them, [the same under train.py's noise proxy]) summed
    over the batch: the rounded residual round(y - mu) against y - mu plus uniform noise (mean of
    `draws` draws), each level conditioned on the levels decoded before it as the coder does. How
    far apart they are is how wrong a rate the noise proxy trains with (train.py --rate-proxy)."""
    L = model.cfg.L
    hard, noise = np.zeros(L), np.zeros(L)
    ys = y.chunk(L, dim=1)
    for i, (sigma, q, decoded) in enumerate(code_levels(model, model.h_s(z_hat), ys)):
        r = ys[i] - (decoded - q)   # y - mu: decoded is q + mu
        hard[i] = float(-torch.log2(gaussian_likelihood(q, sigma)).sum())
        for _ in range(draws):
            u = torch.rand(r.shape, generator=generator) - 0.5
            noise[i] += float(-torch.log2(gaussian_likelihood(r + u, sigma)).sum()) / draws
    return hard, noise


def z_bits_int(im: IntEntropyModel, z_hat: np.ndarray):
    z_hat = np.asarray(z_hat, np.int64)
    rows = np.broadcast_to(np.arange(z_hat.shape[1]).reshape(1, -1, 1, 1), z_hat.shape)
    return im.z.bits(rows, z_hat)


def level_bits(im: IntEntropyModel, k_code: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, int]:
    """([bits of level i], escapes) of symbols `q` [B, C, h, w] coded with tables `k_code` (the
    coder's index, offsets included), as the coder's tables price them."""
    lc = im.level_channels
    bits, escapes = np.zeros(im.L), 0
    for i in range(im.L):
        sl = slice(i * lc, (i + 1) * lc)
        bits[i], e = im.gaussian.bits(k_code[:, sl], q[:, sl])
        escapes += e
    return bits, escapes


def int_bits(im: IntEntropyModel, y: np.ndarray, z_hat: np.ndarray, batch: int = 16, encodes: list[dict] | None = None):
    """(z bits, [bits of level i], escapes, encodes) with the integer model's real table costs.
    `encodes`, this function's earlier result for the same crops, prices those symbols with the
    model's current coding offsets instead of encoding again (k and q do not depend on them)."""
    zb, lb, esc = 0.0, np.zeros(im.L), 0
    encs = []
    for n, s in enumerate(range(0, y.shape[0], batch)):
        zz = np.asarray(z_hat[s:s + batch], np.int64)
        b, e = z_bits_int(im, zz)
        zb += b
        esc += e
        enc = encodes[n] if encodes is not None else im.encode(np.asarray(y[s:s + batch]), zz)
        b, e = level_bits(im, im.coding_index(enc["k"]), enc["q"])
        lb += b
        esc += e
        encs.append(enc)
    return zb, lb, esc, encs
