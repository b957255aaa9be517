"""Post-training quantisation of h_s and the entropy-parameter nets into integer layers.

Per the spec (docs/integer-entropy-model.md): per-output-channel integer weights (Int16 range as the
exporter asks for it, `int16_weights`; a layer missing from `weight_bits` gets the Int8 range), Int32
bias, a multiplier/shift per output channel, and activation output bounds from calibration
statistics with headroom.

Scales. Every integer tensor t stands for a real tensor t * s (s per channel of t):
- z_hat: s = 1; Y^ (decoded latents): s = 1/16; H: s_H; hidden activations: s from calibration.
- A layer with input scales s_in[j] folds them into its float weights, W'[o, j] = W[o, j] * s_in[j]
  (so ep layer 0, fed [H | Y^...] with mixed scales, quantises the weights of the mixed input),
  then quantises W' per output channel: w = round(W' / w_s[o]), acc real value = acc * w_s[o].
- Requantisation to output scale s_out[o]: multiplier * 2^-shift ~= w_s[o] / s_out[o].
- The last ep layer folds its outputs into the codec's units: mean channels s_out = 1/16; log-scale
  channels s_out = Delta with ln(SCALE_MIN) subtracted through the bias, so the requantised value is
  round((ln sigma - ln SCALE_MIN) / Delta), the scale index (clamped to [0, S-1] by the codec).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .intmodel import (ACC_LIMIT, LATENT_INT_MAX, MEAN_SCALE, SCALE_MIN, Z_CLAMP,
                       IntEntropyModel, IntLayer, ScaleGrid, quantize_z)
from .model import PSICModel, code_levels
from .tables import gaussian_tables, z_tables

# Output ranges tried for hidden activations, widest first: the widest whose next layer passes the
# accumulator bound is used.
HIDDEN_RANGES = (32767, 16383, 8191, 4095, 2047, 1023)
# Integer ranges of the hyper features H that the exporter tries (export.search_quantization).
H_RANGES = (32767, 8191, 2047, 511)
MULTIPLIER_BITS = 15          # multipliers lie in [2^14, 2^15]
ACC_MARGIN = 0.999            # Int16-range layers keep sum|w|*bound+|bias| below this * 2^31


@dataclass
class Calibration:
    """Max |activation| (after the activation) of each float layer output over the calibration set."""
    maxabs: dict = field(default_factory=dict)
    count: int = 0

    def update(self, name: str, t: torch.Tensor):
        v = float(t.detach().abs().max())
        self.maxabs[name] = max(self.maxabs.get(name, 0.0), v)


def _multiplier_shift(M: np.ndarray):
    """M ~= multiplier * 2^-shift with multiplier in [2^14, 2^15], shift in 1..62."""
    mult = np.zeros(M.shape, np.int64)
    shift = np.full(M.shape, 62, np.int64)
    for o, m in enumerate(M):
        if m <= 0 or not math.isfinite(m):
            raise ValueError("requantisation factor must be positive")
        e = math.floor(math.log2(m))
        s = (MULTIPLIER_BITS - 1) - e
        if s < 1:
            raise ValueError(f"requantisation factor {m} too large (output scale too fine)")
        if s > 62:
            mult[o], shift[o] = int(round(m * 2.0 ** 62)), 62
        else:
            mult[o], shift[o] = int(round(m * 2.0 ** s)), s
    return mult, shift


def quantize_layer(name: str, kind: str, W: np.ndarray, b: np.ndarray, stride: int, in_scale: np.ndarray,
                   out_scale: np.ndarray, input_bound: int, activation: str, out_range: tuple[int, int],
                   weight_bits: int = 8, out_offset: np.ndarray | None = None) -> IntLayer:
    """W: float weight in PyTorch layout; in_scale [cin], out_scale [cout]; out_offset [cout] is
    subtracted from the real output before requantisation (folded into the bias)."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    transposed = kind == "conv_transpose"
    cin, cout = (W.shape[0], W.shape[1]) if transposed else (W.shape[1], W.shape[0])
    k = W.shape[2]
    s_in = np.asarray(in_scale, np.float64).reshape(-1)
    assert s_in.shape == (cin,)
    Wf = W * (s_in.reshape(-1, 1, 1, 1) if transposed else s_in.reshape(1, -1, 1, 1))
    Wo = Wf.transpose(1, 0, 2, 3) if transposed else Wf           # [out, in, k, k]
    bb = b - (np.zeros(cout) if out_offset is None else np.asarray(out_offset, np.float64))
    absmax = np.abs(Wo).reshape(cout, -1).max(axis=1)
    abssum = np.abs(Wo).reshape(cout, -1).sum(axis=1)
    qmax = 127 if weight_bits == 8 else 32767
    w_s = absmax / qmax
    if weight_bits != 8:
        # Int16 range: as fine as the accumulator bound allows
        w_s = np.maximum(w_s, (abssum * input_bound + np.abs(bb)) / (ACC_MARGIN * ACC_LIMIT - input_bound * cin * k * k))
    dead = w_s <= 0
    w_s = np.where(dead, np.maximum(np.abs(bb), 1e-6) / (1 << 20), w_s)
    wq = np.rint(Wo / w_s.reshape(-1, 1, 1, 1)).astype(np.int64)
    bq = np.rint(bb / w_s).astype(np.int64)
    mult, shift = _multiplier_shift(w_s / np.asarray(out_scale, np.float64))
    layer = IntLayer(name=name, kind=kind, kernel=k, stride=stride, cin=cin, cout=cout,
                     weight=(wq.transpose(1, 0, 2, 3) if transposed else wq).astype(np.int16).copy(),
                     bias=bq.astype(np.int32), multiplier=mult.astype(np.int32), shift=shift.astype(np.int32),
                     input_bound=int(input_bound), activation=activation,
                     output_min=int(out_range[0]), output_max=int(out_range[1]),
                     extra={"w_scale": w_s, "out_scale": np.asarray(out_scale, np.float64), "weight_bits": weight_bits})
    if np.abs(wq).max() > 32767 or np.abs(bq).max() >= ACC_LIMIT:
        raise OverflowError(f"{name}: weights or bias outside their integer ranges")
    layer.validate()   # raises if sum|w| * input_bound + |bias| >= 2^31
    return layer


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().contiguous().cpu().numpy()


def _chain(names_mods, first_scale: np.ndarray, first_bound: int, maxabs: dict, headroom: float,
           last: dict, weight_bits: dict) -> list[IntLayer]:
    """Quantises a 3-layer net. names_mods: [(name, module, kind, activation)]; hidden output ranges
    are the widest in HIDDEN_RANGES whose next layer passes the accumulator bound. `last` gives the
    final layer's out_scale, out_offset and out_range."""
    layers = []
    s_in, bound = first_scale, first_bound
    for idx, (name, mod, kind, act) in enumerate(names_mods):
        W, b = _np(mod.weight), _np(mod.bias)
        stride = mod.stride[0]
        bits = weight_bits.get(name, 8)
        cout = W.shape[1] if kind == "conv_transpose" else W.shape[0]
        if idx == len(names_mods) - 1:
            layers.append(quantize_layer(name, kind, W, b, stride, s_in, last["out_scale"], bound, act,
                                         last["out_range"], bits, last.get("out_offset")))
            break
        nname, nmod, nkind, nact = names_mods[idx + 1]
        err = None
        for R in HIDDEN_RANGES:
            s_out = np.full(cout, max(maxabs[name], 1e-6) * headroom / R)
            try:
                layer = quantize_layer(name, kind, W, b, stride, s_in, s_out, bound, act, (-R, R), bits)
                # the next layer must accept inputs up to R
                quantize_layer(nname, nkind, _np(nmod.weight), _np(nmod.bias), nmod.stride[0], s_out,
                               np.ones(_np(nmod.bias).shape[0]), R, nact, (-1, 1), weight_bits.get(nname, 8))
            except OverflowError as e:
                err = e
                continue
            layer.extra["calibrated_maxabs"] = maxabs[name]
            layers.append(layer)
            s_in, bound = s_out, R
            break
        else:
            raise OverflowError(f"{name}: no output range keeps {nname} within Int32 ({err})")
    return layers


def quantize_entropy_model(model: PSICModel, calib: Calibration, headroom: float = 2.0,
                           weight_bits: dict | None = None, h_range: int = LATENT_INT_MAX,
                           tables: tuple | None = None, grid: ScaleGrid | None = None) -> IntEntropyModel:
    """Builds the integer entropy model (h_s, ep nets, tables) from the float model.

    tables: prebuilt (gaussian, z) tables (the exporter builds them once for its search); the scale
    grid is then theirs. grid: the scale grid when the tables are built here (default: ScaleGrid())."""
    if tables is not None:
        table_grid = ScaleGrid(len(tables[0].length))
        if grid is not None and grid != table_grid:
            raise ValueError(f"grid of {grid.count} scales given with {table_grid.count} Gaussian tables")
        grid = table_grid
    grid = grid or ScaleGrid()
    weight_bits = weight_bits or {}
    cfg = model.cfg
    lc = cfg.level_channels
    N = cfg.N
    # h_s: z_hat (scale 1, |z| <= Z_CLAMP) -> H (scale s_H, |H| <= h_range)
    s_H = max(calib.maxabs["h_s.4"], 1e-6) * headroom / h_range
    hs = model.h_s
    h_layers = _chain([("h_s.0", hs[0], "conv_transpose", "leaky"), ("h_s.2", hs[2], "conv_transpose", "leaky"),
                       ("h_s.4", hs[4], "conv", "none")], np.ones(N), Z_CLAMP, calib.maxabs, headroom,
                      {"out_scale": np.full(cfg.hyper, s_H), "out_range": (-h_range, h_range)}, weight_bits)
    h_layers[-1].extra["s_H"] = s_H
    ep_layers = []
    last = {"out_scale": np.concatenate([np.full(lc, 1.0 / MEAN_SCALE), np.full(lc, grid.log_step)]),
            "out_offset": np.concatenate([np.zeros(lc), np.full(lc, math.log(SCALE_MIN))]),
            "out_range": (-LATENT_INT_MAX, LATENT_INT_MAX)}
    for i, net in enumerate(model.entropy_parameters):
        s_in = np.concatenate([np.full(cfg.hyper, s_H), np.full(i * lc, 1.0 / MEAN_SCALE)])
        ep_layers.append(_chain([(f"ep.{i}.0", net[0], "conv", "leaky"), (f"ep.{i}.2", net[2], "conv", "leaky"),
                                 (f"ep.{i}.4", net[4], "conv", "none")], s_in, LATENT_INT_MAX, calib.maxabs,
                                headroom, last, weight_bits))
    g, zt = tables if tables is not None else (gaussian_tables(grid), z_tables(model.entropy_bottleneck))
    return IntEntropyModel(C=cfg.C, L=cfg.L, hyper=cfg.hyper, h_s=h_layers, ep=ep_layers, gaussian=g, z=zt)


def int16_weights(cfg) -> dict:
    """weight_bits giving every h_s and ep layer Int16-range weights (as fine as the accumulator
    bound allows; never coarser than the Int8 range where that would fit)."""
    return {**{f"h_s.{j}": 16 for j in (0, 2, 4)},
            **{f"ep.{i}.{j}": 16 for i in range(cfg.L) for j in (0, 2, 4)}}


def all_layers(im: IntEntropyModel) -> list[IntLayer]:
    return list(im.h_s) + [l for net in im.ep for l in net]


# -- calibration / measurement helpers -------------------------------------------------------------
@torch.no_grad()
def analyse(model: PSICModel, x: torch.Tensor, batch: int = 8):
    """y = g_a(x), z_hat = clamp(round(h_a(y)), +-Z_CLAMP) for a stack of images [B, 3, H, W]."""
    ys, zs = [], []
    for s in range(0, x.shape[0], batch):
        y = model.g_a(x[s:s + batch])
        z = model.h_a(y)
        ys.append(y)
        zs.append(torch.from_numpy(quantize_z(z.numpy())).float())
    return torch.cat(ys), torch.cat(zs)


def calibrated_outputs(model: PSICModel) -> dict[str, torch.nn.Module]:
    """The float modules whose outputs (after the activation) set the integer model's hidden
    output scales, by the name of the layer that produces them (`h_s.4` is H itself)."""
    hs = model.h_s
    out = {"h_s.0": hs[1], "h_s.2": hs[3], "h_s.4": hs[4]}
    for i, net in enumerate(model.entropy_parameters):
        out.update({f"ep.{i}.0": net[1], f"ep.{i}.2": net[3]})
    return out


@torch.no_grad()
def calibrate(model: PSICModel, y: torch.Tensor, z_hat: torch.Tensor, batch: int = 16) -> Calibration:
    """Max |activation| of each calibrated layer over (y, z_hat), with the levels coded as
    evaluate_levels codes them (`code_levels`, decoded = round(y - mu) + mu). Forward hooks record
    the maxima, so the calibration runs the model's own level loop rather than a copy of it."""
    calib = Calibration()
    hooks = [m.register_forward_hook(lambda _m, _in, t, name=name: calib.update(name, t))
             for name, m in calibrated_outputs(model).items()]
    try:
        for s in range(0, y.shape[0], batch):
            yy = y[s:s + batch]
            code_levels(model, model.h_s(z_hat[s:s + batch]), yy.chunk(model.cfg.L, dim=1))
            calib.count += yy.shape[0]
    finally:
        for h in hooks:
            h.remove()
    return calib
