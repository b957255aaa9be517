"""Where the integer entropy model's rate loss comes from: the float model's rate, then the same
latents coded with one piece of the integer model's rules added at a time, ending at the integer
model itself (docs/integer-entropy-model.md names each piece):

    float        the float model: continuous mean and scale, discretised Gaussian likelihood
    scale grid   + each scale snapped to the nearest of the model file's table scales (in log σ)
    mean grid    + means on the 1/16 grid and ties rounded away from zero, as the integer model
                   codes q = round(y - μ/16); the decoded levels that condition later levels move
                   with them
    tables       + the 16-bit CDF tables' real costs (escape and bypass bits included) for the
                   levels and for z
    integer nets + h_s and the entropy-parameter networks in integer arithmetic
    coding offsets + the coder's per-channel scale-index offsets (psic_train/codingoffset.py): the
                   integer model as a model file of format version 2 codes (a gain, not a loss)

Each stage's rate minus the one before is that piece's cost; the stages sum to the integer model's
rate loss, which export.py's rate_summary reports alone.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from .intmodel import MEAN_SCALE, SCALE_MIN, IntEntropyModel, ScaleGrid
from .model import PSICModel, code_levels, gaussian_likelihood, z_likelihood
from .rates import int_bits, z_bits_int

STAGES = ("float", "scale grid", "mean grid", "tables", "integer nets", "coding offsets")


def scale_index(sigma: torch.Tensor, grid: ScaleGrid) -> torch.Tensor:
    """The index of `grid`'s scale nearest to each scale in log σ, clamped to the table."""
    k = torch.round((torch.log(sigma.double()) - math.log(SCALE_MIN)) / grid.log_step)
    return k.clamp(0, grid.count - 1).long()


def table_scale(k: torch.Tensor, grid: ScaleGrid) -> torch.Tensor:
    return (SCALE_MIN * torch.exp(k.double() * grid.log_step)).float()


def _half_away(t: torch.Tensor) -> torch.Tensor:
    return torch.sign(t) * torch.floor(t.abs() + 0.5)


def _grid_rule(y: torch.Tensor, mean: torch.Tensor):
    """The integer model's coding rule: means on the 1/16 grid, ties rounded away from zero."""
    mu16 = _half_away(mean * MEAN_SCALE) / MEAN_SCALE
    return _half_away(y - mu16), mu16


@torch.no_grad()
def _level_stages(model: PSICModel, y: torch.Tensor, z_hat: torch.Tensor, ent: IntEntropyModel, batch: int = 16):
    """Bits per level of the stages that run the float networks: (float, scale grid, mean grid,
    tables). The float and scale-grid stages share the float pass (float means and decoded levels);
    the mean-grid and tables stages share one pass on the 1/16 grid."""
    L = model.cfg.L
    grid = ent.scale_grid
    floats, scale_grid, mean_grid, tables = np.zeros(L), np.zeros(L), np.zeros(L), np.zeros(L)
    for s in range(0, y.shape[0], batch):
        h = model.h_s(z_hat[s:s + batch])
        ys = y[s:s + batch].chunk(L, dim=1)
        for i, ((sigma, q, _), (gsigma, gq, _)) in enumerate(zip(code_levels(model, h, ys),
                                                                  code_levels(model, h, ys, _grid_rule))):
            floats[i] += float(-torch.log2(gaussian_likelihood(q, sigma)).sum())
            scale_grid[i] += float(-torch.log2(gaussian_likelihood(q, table_scale(scale_index(sigma, grid), grid))).sum())
            k = scale_index(gsigma, grid)
            mean_grid[i] += float(-torch.log2(gaussian_likelihood(gq, table_scale(k, grid))).sum())
            tables[i] += ent.gaussian.bits(k.numpy(), gq.long().numpy())[0]
    return floats, scale_grid, mean_grid, tables


def rate_breakdown(model: PSICModel, ent: IntEntropyModel, latents) -> list[dict]:
    """The stages above over `latents`, pairs (y [B, C, h, w], z_hat) from quantize.analyse (several
    pairs for images of different sizes; bits and pixels are summed over all): per stage its bpp,
    z's and each level's bpp, and its cost over the previous stage and over the float model
    (fractions of the float model's total rate). `ent` is the integer model exported from `model`."""
    npix, sums = 0, None
    for y, z_hat in latents:
        npix += y.shape[0] * (y.shape[2] * 16) * (y.shape[3] * 16)
        with torch.no_grad():
            fz = float(-torch.log2(z_likelihood(model.entropy_bottleneck, z_hat)).sum())
        fl, sg, mg, tb = _level_stages(model, y, z_hat, ent)
        iz_tables = z_bits_int(ent, z_hat.numpy())[0]
        iz, il, _, _ = int_bits(replace(ent, coding_offset=None), y.numpy(), z_hat.numpy())
        oz, ol, _, _ = int_bits(ent, y.numpy(), z_hat.numpy())
        rows = [(fz, fl), (fz, sg), (fz, mg), (iz_tables, tb), (iz, il), (oz, ol)]
        sums = rows if sums is None else [(a + zb, b + lb) for (a, b), (zb, lb) in zip(sums, rows)]
    float_total = sums[0][0] + sums[0][1].sum()
    out, previous = [], float_total
    for name, (zb, lb) in zip(STAGES, sums):
        total = zb + lb.sum()
        out.append({"stage": name, "bpp": total / npix, "z_bpp": zb / npix,
                    "level_bpp": [float(v) / npix for v in lb],
                    "cost": total / previous - 1.0, "vs_float": total / float_total - 1.0})
        previous = total
    return out


def format_breakdown(rows: list[dict]) -> list[str]:
    """One line per stage: bpp, cost of the stage's piece, total loss so far."""
    lines = [f"{'stage':<14} {'bpp':>8} {'z bpp':>8}  {'this piece':>10}  {'vs float':>9}"]
    for r in rows:
        piece = "" if r["stage"] == "float" else f"{100 * r['cost']:+.3f} %"
        lines.append(f"{r['stage']:<14} {r['bpp']:8.5f} {r['z_bpp']:8.5f}  {piece:>10}  {100 * r['vs_float']:+8.3f} %")
    return lines
