"""NumPy reference of PSIC's integer entropy model (docs/integer-entropy-model.md).

Everything here is integer arithmetic with one definition shared by the Swift CPU backend and
the Vulkan shaders: integer conv / transposed conv layers with fixed-point requantisation, h_s and
the per-level entropy-parameter nets, the scale-index and mean decoding, the splitmix64 sampler
with inverse-CDF sampling, and the decoded latent `Y^ = clamp(16 q + mu, +-32767)`.

Convolutions are evaluated as matrix products in float64. That is exact, not an approximation:
every weight and input is an integer of magnitude < 2^15, and the layer's input bound guarantees
that every partial sum (in any summation order) is an integer of magnitude < 2^31 < 2^53, so
float64 represents each one exactly. `exact_int=True` evaluates the same products in int64
(slower); the tests check the two agree. Requantisation, activations and clamps are int64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

# -- constants (the spec's table) ------------------------------------------------------------------
MEAN_FRACTION_BITS = 4
MEAN_SCALE = 1 << MEAN_FRACTION_BITS          # means / decoded latents are in units of 1/16
SCALE_MIN = 0.11
SCALE_MAX = 256.0
# The scale count S is the one constant a model file chooses (its `scale_count`; the engine reads it
# from the file): files up to session 36 have 64 scales, new exports 128, which takes the scale
# grid's rate cost from about +0.11 % to about a quarter of that for ~0.85 MB more of CDF rows.
DEFAULT_SCALE_COUNT = 128
CDF_PRECISION = 16
CDF_TOTAL = 1 << CDF_PRECISION
LATENT_CLAMP = 2047
Z_CLAMP = 1023
LEAKY_SLOPE_NUMERATOR = 16                    # slope 16/256 = 1/16
LATENT_INT_MAX = 32767                        # |Y^|, |mu|, |H| <= 32767
ACC_LIMIT = 1 << 31
SAMPLING = "splitmix64-inverse-cdf-v1"


@dataclass(frozen=True)
class ScaleGrid:
    """The Gaussian scale table's grid: sigma_k = SCALE_MIN * exp(k * Delta), k = 0..count-1, with
    Delta = ln(SCALE_MAX / SCALE_MIN) / (count - 1). The ep nets' last layer computes the index k
    directly (its requantisation divides ln sigma by Delta), so the grid is fixed at export."""
    count: int = DEFAULT_SCALE_COUNT

    def __post_init__(self):
        if self.count < 2:
            raise ValueError(f"a scale grid needs at least 2 scales, got {self.count}")

    @property
    def log_step(self) -> float:
        """Delta, the grid's step in ln sigma."""
        return math.log(SCALE_MAX / SCALE_MIN) / (self.count - 1)

    def sigmas(self) -> np.ndarray:
        """sigma_k for k = 0..count-1 (float64)."""
        return SCALE_MIN * np.exp(np.arange(self.count) * self.log_step)


# -- integer layers --------------------------------------------------------------------------------
@dataclass
class IntLayer:
    """One integer conv / transposed conv (IntConv2dLayer in Swift).

    weight: PyTorch layout (Conv2d [out, in, k, k]; ConvTranspose2d [in, out, k, k]), integers in
    Int16 range; bias, multiplier, shift: [out]; activation "none" | "relu" | "leaky".
    """
    name: str
    kind: str                 # "conv" | "conv_transpose"
    kernel: int
    stride: int
    cin: int
    cout: int
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_bound: int
    activation: str
    output_min: int
    output_max: int
    extra: dict = field(default_factory=dict)   # exporter-only notes (scales, calibration)

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def transposed(self) -> bool:
        return self.kind == "conv_transpose"

    def worst_case_accumulator(self) -> int:
        """max over output channels of sum|w| * input_bound + |bias| (as IntConv2dLayer checks)."""
        w = np.abs(self.weight.astype(np.int64))
        per_out = w.sum(axis=(0, 2, 3)) if self.transposed else w.sum(axis=(1, 2, 3))
        return int((per_out * int(self.input_bound) + np.abs(self.bias.astype(np.int64))).max())

    def validate(self):
        w = self.weight
        assert w.shape == ((self.cin, self.cout, self.kernel, self.kernel) if self.transposed
                           else (self.cout, self.cin, self.kernel, self.kernel)), (self.name, w.shape)
        if w.min() < -32768 or w.max() > 32767:
            raise ValueError(f"{self.name}: weights outside Int16 range")
        if np.abs(self.bias.astype(np.int64)).max(initial=0) >= ACC_LIMIT:
            raise ValueError(f"{self.name}: bias outside Int32 range")
        if not (np.all(self.shift >= 1) and np.all(self.shift <= 62)):
            raise ValueError(f"{self.name}: shift outside 1...62")
        if np.abs(self.multiplier.astype(np.int64)).max() >= ACC_LIMIT:
            raise ValueError(f"{self.name}: multiplier outside Int32 range")
        worst = self.worst_case_accumulator()
        if worst >= ACC_LIMIT:
            raise OverflowError(f"{self.name}: sum|w|*inputBound+|bias| = {worst} >= 2^31 "
                                f"(input bound {self.input_bound})")

    def metadata(self) -> dict:
        return {"kind": self.kind, "kernel": self.kernel, "stride": self.stride, "in": self.cin,
                "out": self.cout, "input_bound": int(self.input_bound), "activation": self.activation,
                "output_min": int(self.output_min), "output_max": int(self.output_max)}

    # -- forward ----------------------------------------------------------------------------------
    def accumulate(self, x: np.ndarray, exact_int: bool = False) -> np.ndarray:
        """acc = bias + sum w*x as int64, x: integer array [B, cin, H, W] within +-input_bound."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != self.cin:
            raise ValueError(f"{self.name}: input shape {x.shape}, expected [B, {self.cin}, H, W]")
        if np.abs(x.astype(np.int64)).max(initial=0) > self.input_bound:
            raise ValueError(f"{self.name}: input outside +-{self.input_bound}")
        k, s, p = self.kernel, self.stride, self.padding
        w = self.weight.astype(np.int64)
        if self.transposed:
            # Transposed conv = stride-1 conv of the zero-dilated input with the flipped kernel.
            B, C, H, W = x.shape
            op = s - 1
            d = np.zeros((B, C, (H - 1) * s + 1, (W - 1) * s + 1), dtype=x.dtype)
            d[:, :, ::s, ::s] = x
            lo, hi = k - 1 - p, k - 1 - p + op
            xp = np.pad(d, ((0, 0), (0, 0), (lo, hi), (lo, hi)))
            w = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
            stride = 1
        else:
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            stride = s
        dt = np.int64 if exact_int else np.float64
        wm = np.ascontiguousarray(w.reshape(self.cout, -1).T).astype(dt)      # [cin*k*k, cout]
        if k == 1 and stride == 1:
            cols = xp.transpose(0, 2, 3, 1).astype(dt)                          # [B, H, W, cin]
        else:
            win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # B,C,Ho,Wo,k,k
            win = win[:, :, ::stride, ::stride]
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(win.shape[0], win.shape[2], win.shape[3], -1).astype(dt)
        acc = cols @ wm                                                          # [B, Ho, Wo, cout]
        acc = np.rint(acc).astype(np.int64) if not exact_int else acc
        acc = acc + self.bias.astype(np.int64)
        return acc.transpose(0, 3, 1, 2)

    def requantize(self, acc: np.ndarray) -> np.ndarray:
        return requantize(acc, self.multiplier, self.shift, self.activation, self.output_min, self.output_max)

    def forward(self, x: np.ndarray, exact_int: bool = False) -> np.ndarray:
        return self.requantize(self.accumulate(x, exact_int=exact_int))


def requantize(acc, multiplier, shift, activation, output_min, output_max) -> np.ndarray:
    """v = (acc*m + 2^(shift-1)) >> shift (arithmetic), activation, clamp; acc [B, C, H, W] int64."""
    acc = np.asarray(acc, dtype=np.int64)
    if np.abs(acc).max(initial=0) >= ACC_LIMIT:
        raise OverflowError("accumulator outside Int32")
    m = np.asarray(multiplier, dtype=np.int64).reshape(1, -1, 1, 1)
    sh = np.asarray(shift, dtype=np.int64).reshape(1, -1, 1, 1)
    v = (acc * m + (np.int64(1) << (sh - 1))) >> sh
    if activation == "relu":
        v = np.maximum(v, 0)
    elif activation == "leaky":
        v = np.where(v < 0, (v * LEAKY_SLOPE_NUMERATOR) >> 8, v)
    elif activation != "none":
        raise ValueError(f"unknown activation {activation}")
    return np.clip(v, output_min, output_max).astype(np.int64)


def run_net(layers: list[IntLayer], x: np.ndarray, exact_int: bool = False) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, exact_int=exact_int)
    return x


# -- the integer entropy model ---------------------------------------------------------------------
@dataclass
class IntEntropyModel:
    """h_s, the L entropy-parameter nets and the CDF tables (everything that decides probabilities)."""
    C: int
    L: int
    hyper: int
    h_s: list[IntLayer]
    ep: list[list[IntLayer]]
    gaussian: "CDFTables"
    z: "CDFTables"
    # Per latent channel, what the coder adds to the scale index k before clamping (format version
    # 2): the coder codes with table clamp(k + coding_offset[c], 0, S-1), the sampler draws from
    # table k. None gives zeros (a version-1 file). psic_train/codingoffset.py explains the split.
    coding_offset: np.ndarray | None = None

    def __post_init__(self):
        self.coding_offset = (np.zeros(self.C, np.int64) if self.coding_offset is None
                              else np.asarray(self.coding_offset, np.int64))

    @property
    def level_channels(self) -> int:
        return self.C // self.L

    def coding_index(self, k: np.ndarray, first_channel: int = 0) -> np.ndarray:
        """The coder's table index for scale indexes `k` [B, c, h, w] of latent channels
        first_channel ..< first_channel + c: clamp(k + offset, 0, S-1)."""
        k = np.asarray(k, np.int64)
        off = self.coding_offset[first_channel:first_channel + k.shape[1]].reshape(1, -1, 1, 1)
        return np.clip(k + off, 0, self.scale_grid.count - 1)

    @property
    def scale_grid(self) -> ScaleGrid:
        """The grid of the Gaussian tables: one table per scale."""
        return ScaleGrid(len(self.gaussian.length))

    def hyper_features(self, z_hat: np.ndarray, exact_int: bool = False) -> np.ndarray:
        return run_net(self.h_s, np.asarray(z_hat, dtype=np.int64), exact_int)

    def level_params(self, i: int, prefix: np.ndarray, exact_int: bool = False):
        """(mu [B, C/L, h, w] in 1/16 units, scale index k in [0, S-1]) of level i.

        prefix: [H | Y^_0 | ... ] with at least hyper + i*C/L channels; only that prefix is read."""
        lc = self.level_channels
        out = run_net(self.ep[i], prefix[:, :self.hyper + i * lc], exact_int)
        mu = out[:, :lc]
        k = np.clip(out[:, lc:], 0, self.scale_grid.count - 1)
        return mu, k

    def encode(self, y: np.ndarray, z_hat: np.ndarray, exact_int: bool = False,
               rd_lambda: float | list[float] = 0.0) -> dict:
        """Integer encode of float y [B, C, h, w] given z_hat: per-level mu, scale index k (the
        sampler's), k_code (the coder's table, k plus the coding offsets), q and Y^ (all levels).
        rd_lambda (one weight, or one per level) > 0 picks a level's symbols by `rd_symbols` instead
        of rounding to the nearest; the later levels' parameters follow from the symbols chosen, as
        in the engine's encoder."""
        lambdas = level_lambdas(rd_lambda, self.L)
        y = np.clip(np.asarray(y, dtype=np.float32), -LATENT_CLAMP, LATENT_CLAMP)
        H = self.hyper_features(z_hat, exact_int)
        lc = self.level_channels
        buf = np.concatenate([H, np.zeros((H.shape[0], self.C) + H.shape[2:], np.int64)], axis=1)
        mus, ks, qs = [], [], []
        for i in range(self.L):
            mu, k = self.level_params(i, buf, exact_int)
            yi = y[:, i * lc:(i + 1) * lc]
            r = yi - mu.astype(np.float32) / np.float32(MEAN_SCALE)
            q = (rd_symbols(r, self.coding_index(k, i * lc), self.gaussian, lambdas[i]) if np.any(lambdas[i] > 0)
                 else round_half_away(r))
            buf[:, self.hyper + i * lc:self.hyper + (i + 1) * lc] = latent_from_symbol(q, mu)
            mus.append(mu), ks.append(k), qs.append(q)
        k = np.concatenate(ks, 1)
        return {"H": H, "mu": np.concatenate(mus, 1), "k": k, "k_code": self.coding_index(k),
                "q": np.concatenate(qs, 1), "y_hat": buf[:, self.hyper:]}

    def sample(self, H: np.ndarray, y_hat_transmitted: np.ndarray, level: int, seed: int | None,
               exact_int: bool = False) -> dict:
        """Decode at level `level`: levels < level come from y_hat_transmitted (its first
        level*C/L channels), levels level..L-1 are sampled in order (seed None: each at its mean,
        symbol 0, the decoder's --details mean). Returns Y^ for all C channels plus the sampled
        levels' mu, k, q."""
        lc = self.level_channels
        B, _, h, w = H.shape
        buf = np.concatenate([H, np.zeros((B, self.C, h, w), np.int64)], axis=1)
        buf[:, self.hyper:self.hyper + level * lc] = y_hat_transmitted[:, :level * lc]
        mus, ks, qs = [], [], []
        for i in range(level, self.L):
            mu, k = self.level_params(i, buf, exact_int)
            if seed is None:
                q = np.zeros_like(k)
            else:
                u = sampler_uniforms(seed, i, lc, h, w)[None].repeat(B, axis=0)
                q = self.gaussian.sample(k, u)
            buf[:, self.hyper + i * lc:self.hyper + (i + 1) * lc] = latent_from_symbol(q, mu)
            mus.append(mu), ks.append(k), qs.append(q)
        cat = (lambda a: np.concatenate(a, 1)) if mus else (lambda a: np.zeros((B, 0, h, w), np.int64))
        return {"y_hat": buf[:, self.hyper:], "mu": cat(mus), "k": cat(ks), "q": cat(qs)}


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (Swift's `.rounded()`), as int64."""
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def level_lambdas(rd_lambda: float | list[float], levels: int, factor: float = 1.0) -> list[float]:
    """The encoder's rate-distortion weight of each level: one per level as given, or from one
    weight w as w * factor^(levels-1-i) for level i (factor > 1 weighs fidelity more at the first
    levels, which condition every sampled one). Each must be finite and >= 0 (0: nearest rounding)."""
    if np.ndim(rd_lambda) == 0:
        out = [float(rd_lambda) * float(factor) ** (levels - 1 - i) for i in range(levels)]
    else:
        # a level's weight may also be an array broadcasting over its [B, C/L, h, w] (one per channel)
        out = [v if np.ndim(v) else float(v) for v in rd_lambda]
        if len(out) != levels or factor != 1.0:
            raise ValueError(f"give one weight per level ({levels}) and no factor, or one weight; got {rd_lambda!r}")
    if not all(np.all(np.isfinite(v)) and np.all(np.asarray(v) >= 0) for v in out):
        raise ValueError(f"rate-distortion weights must be finite and >= 0; got {out}")
    return out


def rd_symbols(r: np.ndarray, rows: np.ndarray, tables: "CDFTables", rd_lambda: float) -> np.ndarray:
    """The encoder's rate-distortion choice of symbols for residuals r = clamp(y) - mu/16 (float32)
    coded with tables `rows`: of the two integers around r, the nearest q0 = round(r) and the other
    one q1 = q0 + 1 if r > q0 else q0 - 1, the one with the lower cost

        -log2(f(q) / 2^16) + rd_lambda * (r - q)^2        (float64; a tie keeps q0),

    taken only where both are regular values of the table (an escaped value keeps q0). rd_lambda is
    in bits per squared latent step. One rule with the engine's `RateDistortionQuantizer`, whose
    choices the golden vectors compare. Greedy per symbol: what a choice does to the later levels'
    entropy parameters and to the decoded image beyond the latent's own error is not priced
    (session 51: weighting the latent error by each channel's measured effect on the image
    decoded at the full level did worse than one weight for all)."""
    r = np.asarray(r, np.float32)
    rows = np.asarray(rows, np.int64)
    q0 = round_half_away(r)
    q1 = q0 + np.where(r > q0, 1, -1)
    bits, v0 = tables.cost_table           # regular values are -log2(f/2^16); the rest is masked below
    lo = np.asarray(tables.offset, np.int64)[rows]
    hi = lo + np.asarray(tables.length, np.int64)[rows] - 2
    regular = (np.minimum(q0, q1) >= lo) & (np.maximum(q0, q1) <= hi)
    col = lambda q: np.clip(q - v0, 0, bits.shape[1] - 1)  # noqa: E731
    d0, d1 = r.astype(np.float64) - q0, r.astype(np.float64) - q1
    j0 = bits[rows, col(q0)] + rd_lambda * (d0 * d0)
    j1 = bits[rows, col(q1)] + rd_lambda * (d1 * d1)
    return np.where(regular & (j1 < j0), q1, q0)


def latent_from_symbol(q: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Y^ = clamp(16 q + mu, -32767, 32767)."""
    return np.clip(MEAN_SCALE * np.asarray(q, np.int64) + np.asarray(mu, np.int64), -LATENT_INT_MAX, LATENT_INT_MAX)


def quantize_z(z: np.ndarray) -> np.ndarray:
    """z_hat = clamp(round(z), +-Z_CLAMP) (the encoder's rule)."""
    return np.clip(round_half_away(np.asarray(z, np.float32)), -Z_CLAMP, Z_CLAMP)


# -- CDF tables ------------------------------------------------------------------------------------
@dataclass
class CDFTables:
    """rows tables, cdf [rows, maxlen+1] (zero-padded), length [rows] (symbols incl. escape),
    offset [rows] (value of symbol 0)."""
    cdf: np.ndarray
    length: np.ndarray
    offset: np.ndarray

    def validate(self):
        for r in range(self.cdf.shape[0]):
            n = int(self.length[r])
            c = self.cdf[r, :n + 1].astype(np.int64)
            if n < 2 or c[0] != 0 or c[-1] != CDF_TOTAL or np.any(np.diff(c) < 1):
                raise ValueError(f"CDF table {r} is invalid")
            if np.any(self.cdf[r, n + 1:] != 0):
                raise ValueError(f"CDF table {r} is not zero-padded")

    def freq(self, row: int) -> np.ndarray:
        n = int(self.length[row])
        return np.diff(self.cdf[row, :n + 1].astype(np.int64))

    @cached_property
    def cost_table(self) -> tuple[np.ndarray, int]:
        """(cost [rows, W] in bits, v0): cost[r, j] is what coding value v0 + j with table r costs,
        -log2(f/2^16), or for a value outside the table the escape symbol plus its bypass bits
        (escape_bypass_bits). The columns span every table's regular symbols and one value past
        each end, which every table escapes (`bits` prices values beyond those from them)."""
        offset = np.asarray(self.offset, np.int64)
        length = np.asarray(self.length, np.int64)
        v0 = int(offset.min()) - 1
        values = np.arange(v0, int((offset + length - 2).max()) + 2)
        bypass = escape_bypass_bits(values)
        cost = np.empty((len(length), len(values)))
        for r in range(len(length)):
            n = int(length[r])
            bits = -np.log2(self.freq(r) / CDF_TOTAL)
            idx = values - int(offset[r])
            escape = (idx < 0) | (idx >= n - 1)
            cost[r] = np.where(escape, bits[n - 1] + bypass, bits[np.clip(idx, 0, n - 2)])
        return cost, v0

    def bits(self, rows: np.ndarray, symbols: np.ndarray) -> tuple[float, int]:
        """Total cost in bits of coding `symbols` with tables `rows` (same shapes), as `cost_table`
        prices them. Returns (bits, escapes)."""
        rows = np.asarray(rows, np.int64).ravel()
        sym = np.asarray(symbols, np.int64).ravel()
        cost, v0 = self.cost_table
        col = np.clip(sym - v0, 0, cost.shape[1] - 1)
        total = float(cost[rows, col].sum())
        beyond = col != sym - v0                  # priced as the end column: swap in their own bypass bits
        if beyond.any():
            total += float((escape_bypass_bits(sym[beyond]) - escape_bypass_bits(col[beyond] + v0)).sum())
        idx = sym - np.asarray(self.offset, np.int64)[rows]
        escapes = int(((idx < 0) | (idx >= np.asarray(self.length, np.int64)[rows] - 1)).sum())
        return total, escapes

    def sample(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Inverse-CDF: the symbol s of table `rows` with cdf[s] <= u < cdf[s+1]; the escape symbol
        maps to the table's largest regular symbol (R_k for the Gaussian tables)."""
        rows = np.asarray(rows, np.int64)
        u = np.asarray(u, np.int64)
        out = np.empty(rows.shape, np.int64)
        for r in np.unique(rows):
            m = rows == r
            n = int(self.length[r])
            s = np.searchsorted(self.cdf[r, :n + 1].astype(np.int64), u[m], side="right") - 1
            s = np.minimum(s, n - 2)              # escape (index n-1) -> last regular symbol
            out[m] = s + int(self.offset[r])
        return out


def escape_bypass_bits(values: np.ndarray) -> np.ndarray:
    """Bits used to estimate an escaped value's bypass payload: Elias-gamma of |v|+1 plus a sign bit.
    (The exact bypass format is the bitstream's; this only serves rate reports.)"""
    a = np.abs(np.asarray(values, np.int64)) + 1
    return 2 * np.floor(np.log2(a)) + 2


# -- the sampler -----------------------------------------------------------------------------------
_M64 = (1 << 64) - 1


def splitmix64(x):
    """splitmix64 finaliser with wrapping UInt64 arithmetic; x: int or uint64 array."""
    if isinstance(x, (int, np.integer)):
        x = (int(x) + 0x9E3779B97F4A7C15) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        return x ^ (x >> 31)
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sampler_counter(level, channel, row, column):
    """(level << 56) | (channel << 40) | (row << 20) | column, channel within the level."""
    u = np.uint64
    return ((np.asarray(level, u) << u(56)) | (np.asarray(channel, u) << u(40))
            | (np.asarray(row, u) << u(20)) | np.asarray(column, u))


def sampler_uniforms(seed: int, level: int, channels: int, rows: int, cols: int) -> np.ndarray:
    """u = splitmix64(seed ^ splitmix64(counter)) >> 48 for every (channel, row, column) of a level:
    [channels, rows, cols] int64 in 0..65535."""
    c, r, x = np.meshgrid(np.arange(channels), np.arange(rows), np.arange(cols), indexing="ij")
    ctr = sampler_counter(level, c, r, x)
    v = splitmix64(np.uint64(seed & _M64) ^ splitmix64(ctr))
    return (v >> np.uint64(48)).astype(np.int64)
