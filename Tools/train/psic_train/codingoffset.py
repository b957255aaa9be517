"""The coder's scale-index offsets (model format version 2; docs/integer-entropy-model.md).

One scale serves two ends in the SVI model: the coder's probability of the transmitted residual
and the spread of the details the decoder samples for untransmitted levels. Training pulls it
between them: the sampled-details distortion pulls it down (less noise in a sampled decode),
the rate pulls it toward the residual's real spread. The trained scale sits below the spread,
so the coder pays for a too-narrow table (session 50, the shipped step-206500 model on six Kodak
photos: the best table per channel is 1–5 grid steps, up to 36 %, wider at levels 3–8; coding
with it cost 3.7 % fewer bits). The sampler needs the narrow one: sampling from 5 % wider
scales costs a 2.6 % PSNR BD-rate, coding 10 % wider saves 1.1 %, on the same model.

So a model file carries one small integer per latent channel that the coder (encoder and
decoder alike) adds to the scale index, while the sampler keeps the index the network computed.
It is integer, per channel and fixed at export, so streams still decode the same everywhere;
decodes do not change at all, only the bits. The exporter picks each channel's offset as the one
that codes the calibration crops' symbols in the fewest bits (`calibrate`). Tools/train/offset_probe.py
measures what a finer grain (per channel and scale-index range), an oracle fit and better table
shapes (psic_train/tableshape.py) would add on photos the offsets were not fitted on.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .intmodel import IntEntropyModel

# Offsets searched, in scale-grid steps (128 scales: 6.3 % of sigma a step). The shipped model's
# best lie in -4 ... +5 on Kodak; the search reaches past both ends so a model whose best is
# farther is seen as hitting the bound in the report rather than silently cut.
SEARCH = range(-8, 13)


def offset_costs(ent: IntEntropyModel, encodes: Iterable[dict], search: range = SEARCH, buckets: int = 1) -> np.ndarray:
    """bits [C, len(search)]: what each latent channel's symbols in `encodes` (IntEntropyModel.encode
    results) cost with each offset of `search`, up to a constant per channel: values beyond every
    table are priced as the table range's end column (CDFTables.cost_table), the same for every
    offset. With `buckets` > 1, bits [C, buckets, len(search)]: the same split by where the network's
    scale index falls, bucket = k * buckets // S (a finer offset grain than the model file's)."""
    cost, v0 = ent.gaussian.cost_table
    count = ent.scale_grid.count
    out = np.zeros((ent.C * buckets, len(search)))
    for enc in encodes:
        k = np.asarray(enc["k"], np.int64).transpose(1, 0, 2, 3).reshape(ent.C, -1)
        col = np.clip(np.asarray(enc["q"], np.int64).transpose(1, 0, 2, 3).reshape(ent.C, -1) - v0,
                      0, cost.shape[1] - 1)
        cell = (np.arange(ent.C)[:, None] * buckets + k * buckets // count).ravel()
        for j, d in enumerate(search):
            out[:, j] += np.bincount(cell, weights=cost[np.clip(k + d, 0, count - 1), col].ravel(),
                                     minlength=ent.C * buckets)
    return out if buckets == 1 else out.reshape(ent.C, buckets, len(search))


def best_offsets(costs: np.ndarray, search: range = SEARCH) -> np.ndarray:
    """The offset of `search` with the lowest cost along the last axis of `costs` (offset_costs'),
    ties to the one nearest 0: a row with nothing to price keeps 0."""
    values = np.asarray(search)
    # the smallest |offset| wins, because argmin keeps the first of equal costs
    order = np.argsort(np.abs(values), kind="stable")
    return values[order][np.argmin(costs[..., order], axis=-1)]


def priced(costs: np.ndarray, offsets: np.ndarray, search: range = SEARCH) -> np.ndarray:
    """costs at `offsets` (one per row of `costs`, same leading shape): the bits each row spends."""
    idx = np.asarray(offsets, np.int64) - search[0]
    return np.take_along_axis(costs, idx[..., None], axis=-1)[..., 0]


def calibrate(ent: IntEntropyModel, encodes: list[dict], search: range = SEARCH) -> tuple[np.ndarray, dict]:
    """(offsets int64 [C], summary): per channel the offset of `search` that codes `encodes` in the
    fewest bits (ties to the one nearest 0). The summary gives the fraction of the levels' bits
    they save, per level and in all, and how many channels chose an end of the search."""
    costs = offset_costs(ent, encodes, search)
    values = np.asarray(search)
    best = best_offsets(costs, search)
    zero = priced(costs, np.zeros(ent.C, np.int64), search)
    chosen = priced(costs, best, search)
    lc = ent.level_channels
    summary = {
        "search": [int(values[0]), int(values[-1])],
        "level_bits_saving": [float(1 - chosen[i * lc:(i + 1) * lc].sum() / max(zero[i * lc:(i + 1) * lc].sum(), 1e-9))
                              for i in range(ent.L)],
        "bits_saving": float(1 - chosen.sum() / max(zero.sum(), 1e-9)),
        "at_search_bound": int(((best == values[0]) | (best == values[-1])).sum()),
        "offsets": [int(v) for v in best],
    }
    return best.astype(np.int64), summary
