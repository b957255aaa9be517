"""CDF tables of the integer entropy model (docs/integer-entropy-model.md, "Symbols, CDF tables").

- Gaussian table k (k = 0..S-1, one per scale of the ScaleGrid): symbols -R_k..R_k plus the escape, R_k = ceil(6.5 sigma_k) (capped
  so a table has at most 2^12 symbols), from the discretised zero-mean Gaussian.
- z table per channel: from the EntropyBottleneck's learned cumulative evaluated at integer
  +-0.5 points (no median offset: the codec's z_hat is round(z)), over the integer support whose
  outside tail mass is below 2^-16 (within +-Z_CLAMP).
Both are quantised to 2^16 with every symbol (escape included) at frequency >= 1.
"""
from __future__ import annotations

import copy
import heapq
import math

import numpy as np

from .intmodel import CDF_TOTAL, Z_CLAMP, CDFTables, ScaleGrid

MAX_TABLE_SYMBOLS = 1 << 12
GAUSSIAN_TAIL_SIGMAS = 6.5
Z_TAIL_MASS = 2.0 ** -16


def quantize_pmf(p: np.ndarray, total: int = CDF_TOTAL) -> np.ndarray:
    """Integer frequencies summing to `total`, each >= 1, close to total*p in the sense of the
    expected code length sum p_i * -log2(f_i/total) (greedy exchange from rounded values)."""
    p = np.asarray(p, np.float64)
    p = np.maximum(p, 0)
    p = p / p.sum()
    n = len(p)
    if n > total:
        raise ValueError("more symbols than CDF precision allows")
    f = np.maximum(1, np.rint(p * total)).astype(np.int64)
    diff = int(total - f.sum())
    if diff > 0:
        # add where the code-length gain p*log2((f+1)/f) is largest
        heap = [(-p[i] * math.log2((f[i] + 1) / f[i]), i) for i in range(n)]
        heapq.heapify(heap)
        for _ in range(diff):
            _, i = heapq.heappop(heap)
            f[i] += 1
            heapq.heappush(heap, (-p[i] * math.log2((f[i] + 1) / f[i]), i))
    elif diff < 0:
        # remove where the code-length loss p*log2(f/(f-1)) is smallest (never below 1)
        heap = [(p[i] * math.log2(f[i] / (f[i] - 1)), i) for i in range(n) if f[i] > 1]
        heapq.heapify(heap)
        for _ in range(-diff):
            _, i = heapq.heappop(heap)
            f[i] -= 1
            if f[i] > 1:
                heapq.heappush(heap, (p[i] * math.log2(f[i] / (f[i] - 1)), i))
    assert f.sum() == total and f.min() >= 1
    return f


def pack_tables(freqs: list[np.ndarray], offsets: list[int]) -> CDFTables:
    """freqs[r]: frequencies of table r with the escape last."""
    maxlen = max(len(f) for f in freqs)
    cdf = np.zeros((len(freqs), maxlen + 1), np.int32)
    for r, f in enumerate(freqs):
        cdf[r, 1:len(f) + 1] = np.cumsum(f)
    t = CDFTables(cdf=cdf, length=np.array([len(f) for f in freqs], np.int32),
                  offset=np.array(offsets, np.int32))
    t.validate()
    return t


def _phi(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF in float64."""
    return 0.5 * np.array([math.erfc(-v / math.sqrt(2.0)) for v in np.ravel(x)]).reshape(np.shape(x))


def gaussian_tables(grid: ScaleGrid = ScaleGrid()) -> CDFTables:
    """One table per scale of `grid` (the default: new exports' grid)."""
    freqs, offsets = [], []
    for sigma in grid.sigmas():
        R = min(math.ceil(GAUSSIAN_TAIL_SIGMAS * sigma), (MAX_TABLE_SYMBOLS - 2) // 2)
        q = np.arange(-R, R + 1, dtype=np.float64)
        # symmetric evaluation: mass of [|q|-1/2, |q|+1/2] from the upper tail (accurate far out)
        a = np.abs(q)
        p = _phi(-(a - 0.5) / sigma) - _phi(-(a + 0.5) / sigma)
        p[a == 0] = 1.0 - 2.0 * _phi(np.array([-0.5 / sigma]))[0]
        escape = 2.0 * _phi(np.array([-(R + 0.5) / sigma]))[0]
        freqs.append(quantize_pmf(np.append(p, escape)))
        offsets.append(-R)
    assert len(freqs) == grid.count
    return pack_tables(freqs, offsets)


def z_tables(entropy_bottleneck) -> CDFTables:
    """Per-channel tables from a compressai EntropyBottleneck's learned cumulative."""
    import torch
    eb = copy.deepcopy(entropy_bottleneck).double().cpu()
    C = eb.matrices[0].shape[0]
    edges = np.arange(-Z_CLAMP - 0.5, Z_CLAMP + 1.0, 1.0)          # -1023.5 .. 1023.5
    with torch.no_grad():
        x = torch.from_numpy(edges).reshape(1, 1, -1).repeat(C, 1, 1)
        logits = eb._logits_cumulative(x, stop_gradient=True).reshape(C, -1).numpy()
    with np.errstate(over="ignore"):
        lower_tail = 1.0 / (1.0 + np.exp(-logits))     # P(z < edge)
        upper_tail = 1.0 / (1.0 + np.exp(logits))      # P(z > edge)
    freqs, offsets = [], []
    half = Z_TAIL_MASS / 2
    for c in range(C):
        lo_t, up_t = lower_tail[c], upper_tail[c]
        # support [a, b]: symbol v covers [edges[v+1023], edges[v+1024]]
        ia = np.nonzero(lo_t <= half)[0]          # edge indices with lower tail below half the mass
        a_edge = ia.max() if len(ia) else 0
        ib = np.nonzero(up_t <= half)[0]
        b_edge = ib.min() if len(ib) else len(edges) - 1
        if b_edge <= a_edge:                       # degenerate density: keep one symbol around it
            b_edge = a_edge + 1
        a = a_edge - Z_CLAMP                       # first symbol: lower edge index a_edge
        b = b_edge - 1 - Z_CLAMP                   # last symbol: upper edge index b_edge
        if b - a + 2 > MAX_TABLE_SYMBOLS:
            raise ValueError(f"z channel {c}: support {a}..{b} too wide for a table")
        # symbol masses (difference of lower tails left of the median, of upper tails right of it)
        lo_m = lo_t[a_edge:b_edge + 1]
        up_m = up_t[a_edge:b_edge + 1]
        p = np.where(lo_m[1:] < 0.5, lo_m[1:] - lo_m[:-1], up_m[:-1] - up_m[1:])
        p = np.maximum(p, 0)
        escape = lo_t[a_edge] + up_t[b_edge]
        freqs.append(quantize_pmf(np.append(p, escape)))
        offsets.append(a)
    return pack_tables(freqs, offsets)
