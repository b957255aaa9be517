"""How far the coder's Gaussian table shapes are from the symbols they code (a measurement for
offset_probe.py; the model file's tables stay the discretised Gaussians of psic_train/tables.py).

Session 50 asked whether better table shapes would pay for a format change. Two figures answer it:
the in-sample bound (each (level, coder table) cell's own histogram, fitted to and priced on the
same symbols: no table can do better there) and a held-out estimate (histograms fitted on one set
of symbols, blended with the Gaussian table for sparse cells, priced on another).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .intmodel import IntEntropyModel

# Pseudo-counts of the Gaussian table in a refitted cell: about where a cell's own histogram
# starts to carry its shape.
PRIOR_WEIGHT = 64.0


def cell_counts(ent: IntEntropyModel, encodes: Iterable[dict]) -> np.ndarray:
    """counts [L, S, W]: how often each column of cost_table (value v0 + j, values past the columns
    counted at the end column) is coded with each coder table (offsets included) at each level."""
    cost, v0 = ent.gaussian.cost_table
    S, W, lc = ent.scale_grid.count, cost.shape[1], ent.level_channels
    counts = np.zeros((ent.L, S, W))
    for enc in encodes:
        k = ent.coding_index(enc["k"])
        col = np.clip(np.asarray(enc["q"], np.int64) - v0, 0, W - 1)
        level = np.broadcast_to((np.arange(ent.C) // lc).reshape(1, -1, 1, 1), k.shape)
        counts += np.bincount(((level * S + k) * W + col).ravel(), minlength=ent.L * S * W).reshape(ent.L, S, W)
    return counts


def table_shape_bound(ent: IntEntropyModel, encodes: Iterable[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(table bits [L], ideal bits [L]) of the symbols in `encodes` coded with `ent`'s coder tables
    (offsets included), and with the ideal table of each (level, coder table) cell: the symbols' own
    histogram, -sum n log2(n / N). The ideal is measured on the data it is fitted to, so 1 - ideal /
    table bounds what any better table shapes could save there. Both price values past the tables'
    columns as the end column (cost_table), so escapes weigh the same in both."""
    cost, _ = ent.gaussian.cost_table
    counts = cell_counts(ent, encodes)
    table = (counts * cost[None]).sum(axis=(1, 2))
    total = counts.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ideal = -np.where(counts > 0, counts * np.log2(counts / np.maximum(total, 1)), 0.0).sum(axis=(1, 2))
    return table, ideal


def refitted_table_bits(ent: IntEntropyModel, fit: Iterable[dict], test: Iterable[dict],
                        prior_weight: float = PRIOR_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """(table bits [L], refitted bits [L]) of `test`'s symbols: with `ent`'s coder tables, and with
    tables refitted per (level, coder table) cell on `fit`'s symbols, p_j = (n_j + m t_j) / (N + m)
    where t is the Gaussian table's own distribution over the columns and m = `prior_weight`
    pseudo-counts (a sparse cell stays near its Gaussian, a full one follows its data)."""
    cost, _ = ent.gaussian.cost_table
    t = np.exp2(-cost)
    t /= t.sum(axis=1, keepdims=True)
    n = cell_counts(ent, fit)
    p = (n + prior_weight * t[None]) / (n.sum(axis=2, keepdims=True) + prior_weight)
    m = cell_counts(ent, test)
    return (m * cost[None]).sum(axis=(1, 2)), -(m * np.log2(p)).sum(axis=(1, 2))


def refitted_z_bits(ent: IntEntropyModel, fit: Iterable[np.ndarray], test: Iterable[np.ndarray],
                    prior_weight: float = PRIOR_WEIGHT) -> tuple[float, float]:
    """(table bits, refitted bits) of the integer z [B, N, h, w] in `test`: with `ent`'s z tables
    (its factorised prior), and with each channel's table refitted on `fit`'s z as
    refitted_table_bits refits the level tables (prior_weight pseudo-counts of the file's table)."""
    cost, v0 = ent.z.cost_table
    N, W = cost.shape

    def counts(zs):
        n = np.zeros((N, W))
        for z in zs:
            col = np.clip(np.asarray(z, np.int64) - v0, 0, W - 1)
            channel = np.broadcast_to(np.arange(N).reshape(1, -1, 1, 1), col.shape)
            n += np.bincount((channel * W + col).ravel(), minlength=N * W).reshape(N, W)
        return n

    t = np.exp2(-cost)
    t /= t.sum(axis=1, keepdims=True)
    n = counts(fit)
    p = (n + prior_weight * t) / (n.sum(axis=1, keepdims=True) + prior_weight)
    m = counts(test)
    return float((m * cost).sum()), float(-(m * np.log2(p)).sum())
