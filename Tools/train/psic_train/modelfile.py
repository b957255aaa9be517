"""The PSIC model file (docs/integer-entropy-model.md, "The model file"): writing, reading, and the
float transforms (g_a, h_a, g_s) evaluated from its tensors."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

from . import intmodel as im
from .intmodel import CDFTables, IntEntropyModel, IntLayer
from .model import LEAKY_SLOPE, PSICModel

FORMAT = "psic-model"
# Version 2 added `gaussian_coding_offset` (psic_train/codingoffset.py); version 1 files read as
# offsets of zero.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
FLOAT_LAYERS = {"g_a": (0, 2, 4, 6), "g_s": (0, 2, 4, 6), "h_a": (0, 2, 4)}
GDN_LAYERS = {"g_a": (1, 3, 5), "g_s": (1, 3, 5)}


def effective_gdn(gdn) -> tuple[np.ndarray, np.ndarray]:
    """compressai GDN stores beta/gamma through NonNegativeParametrizer (lower bound, square, minus
    pedestal); the effective values are what its forward uses: beta [C], gamma [C, C] with
    norm_i = beta_i + sum_j gamma[i, j] x_j^2."""
    with torch.no_grad():
        beta = gdn.beta_reparam(gdn.beta).double().numpy().astype(np.float32)
        gamma = gdn.gamma_reparam(gdn.gamma).double().numpy().astype(np.float32)
    return beta, gamma


def float_tensors(model: PSICModel, fp16: bool) -> dict[str, np.ndarray]:
    dt = np.float16 if fp16 else np.float32
    t = {}
    for net, idx in FLOAT_LAYERS.items():
        mods = getattr(model, net)
        for i in idx:
            t[f"{net}.{i}.weight"] = mods[i].weight.detach().contiguous().numpy().astype(dt)
            t[f"{net}.{i}.bias"] = mods[i].bias.detach().contiguous().numpy().astype(dt)
    for net, idx in GDN_LAYERS.items():
        mods = getattr(model, net)
        for i in idx:
            t[f"{net}.{i}.beta"], t[f"{net}.{i}.gamma"] = effective_gdn(mods[i])
    return t


def int_tensors(ent: IntEntropyModel) -> dict[str, np.ndarray]:
    t = {}
    layers = [(f"h_s.{j}", l) for j, l in zip((0, 2, 4), ent.h_s)]
    layers += [(f"ep.{i}.{j}", l) for i, net in enumerate(ent.ep) for j, l in zip((0, 2, 4), net)]
    for name, l in layers:
        assert l.name == name, (l.name, name)
        t[f"{name}.weight"] = np.ascontiguousarray(l.weight, dtype=np.int16)
        t[f"{name}.bias"] = np.asarray(l.bias, np.int32)
        t[f"{name}.multiplier"] = np.asarray(l.multiplier, np.int32)
        t[f"{name}.shift"] = np.asarray(l.shift, np.int32)
    for prefix, tab in (("z", ent.z), ("gaussian", ent.gaussian)):
        t[f"{prefix}_cdf"] = np.asarray(tab.cdf, np.int32)
        t[f"{prefix}_cdf_length"] = np.asarray(tab.length, np.int32)
        t[f"{prefix}_offset"] = np.asarray(tab.offset, np.int32)
    t["gaussian_coding_offset"] = np.asarray(ent.coding_offset, np.int32)
    return t


def fingerprint(tensors: dict[str, np.ndarray]) -> str:
    """First 16 hex digits of SHA-256 over every tensor's little-endian bytes in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()[:16]


def write_model(path: Path, model: PSICModel, ent: IntEntropyModel, fp16: bool, training: dict,
                rd_lambda: float | list[float] = 0.0) -> dict:
    """Writes the model file; a rate-distortion weight (one, or one per level) above 0 goes into its
    `encoder` block as the encoder's default, one per level (intmodel.rd_symbols; metadata only: the
    fingerprint, which covers the tensors, and every decode are the same without it)."""
    lambdas = im.level_lambdas(rd_lambda, ent.L)
    cfg = model.cfg
    tensors = {**float_tensors(model, fp16), **int_tensors(ent)}
    int_layers = {}
    for j, l in zip((0, 2, 4), ent.h_s):
        int_layers[f"h_s.{j}"] = l.metadata()
    for i, net in enumerate(ent.ep):
        for j, l in zip((0, 2, 4), net):
            int_layers[f"ep.{i}.{j}"] = l.metadata()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "architecture": {"family": "conv", "N": cfg.N, "C": cfg.C, "L": cfg.L, "hyper": cfg.hyper,
                         "ep_width": cfg.ep_width},
        "constants": {"mean_fraction_bits": im.MEAN_FRACTION_BITS, "scale_count": ent.scale_grid.count,
                      "scale_min": im.SCALE_MIN, "scale_max": im.SCALE_MAX, "cdf_precision": im.CDF_PRECISION,
                      "latent_clamp": im.LATENT_CLAMP, "z_clamp": im.Z_CLAMP,
                      "leaky_slope_numerator": im.LEAKY_SLOPE_NUMERATOR},
        "sampling": im.SAMPLING,
        "int_layers": int_layers,
        "training": training,
        "fingerprint": fingerprint(tensors),
    }
    if any(v > 0 for v in lambdas):
        meta["encoder"] = {"rate_distortion_lambda": lambdas}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"psic": json.dumps(meta, sort_keys=True)})
    tmp.chmod(0o644)
    tmp.replace(path)
    return meta


# -- reading ---------------------------------------------------------------------------------------
class Transforms:
    """g_a, h_a, g_s evaluated in float32 from model-file tensors (F16 ones widened, as the engine does)."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()
                  if k.split(".")[0] in ("g_a", "g_s", "h_a")}

    # -- float transforms (float32 compute from the stored weights) -------------------------------
    def _conv(self, name, x, stride=2, transposed=False):
        w, b = self.t[f"{name}.weight"], self.t[f"{name}.bias"]
        k = w.shape[2]
        if transposed:
            return F.conv_transpose2d(x, w, b, stride=stride, padding=k // 2, output_padding=stride - 1)
        return F.conv2d(x, w, b, stride=stride, padding=k // 2)

    def _gdn(self, name, x, inverse):
        beta, gamma = self.t[f"{name}.beta"], self.t[f"{name}.gamma"]
        C = beta.shape[0]
        norm = F.conv2d(x * x, gamma.reshape(C, C, 1, 1), beta)
        return x * (torch.sqrt(norm) if inverse else torch.rsqrt(norm))

    @torch.no_grad()
    def g_a(self, x: torch.Tensor) -> torch.Tensor:
        for i in (0, 2, 4):
            x = self._gdn(f"g_a.{i + 1}", self._conv(f"g_a.{i}", x), inverse=False)
        return self._conv("g_a.6", x)

    @torch.no_grad()
    def h_a(self, y: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self._conv("h_a.0", y, stride=1), LEAKY_SLOPE)
        x = F.leaky_relu(self._conv("h_a.2", x), LEAKY_SLOPE)
        return self._conv("h_a.4", x)

    @torch.no_grad()
    def g_s(self, y: torch.Tensor) -> torch.Tensor:
        for i in (0, 2, 4):
            y = self._gdn(f"g_s.{i + 1}", self._conv(f"g_s.{i}", y, transposed=True), inverse=True)
        return self._conv("g_s.6", y, transposed=True)


class ModelFile(Transforms):
    """A loaded model file: metadata, tensors, the integer entropy model and float transforms."""

    def __init__(self, path: Path):
        from safetensors import safe_open
        with safe_open(str(path), framework="numpy") as f:
            self.meta = json.loads(f.metadata()["psic"])
        self.tensors = load_file(str(path))
        if self.meta["fingerprint"] != fingerprint(self.tensors):
            raise ValueError(f"{path}: fingerprint does not match the tensors")
        version = self.meta.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"{path}: model format version {version}; this tool reads {READABLE_VERSIONS}")
        a = self.meta["architecture"]
        self.N, self.C, self.L, self.hyper = a["N"], a["C"], a["L"], a["hyper"]
        self.entropy = IntEntropyModel(
            C=self.C, L=self.L, hyper=self.hyper,
            h_s=[self._int_layer(f"h_s.{j}") for j in (0, 2, 4)],
            ep=[[self._int_layer(f"ep.{i}.{j}") for j in (0, 2, 4)] for i in range(self.L)],
            gaussian=self._tables("gaussian"), z=self._tables("z"),
            coding_offset=self._coding_offset(path) if version >= 2 else None)
        if self.entropy.scale_grid.count != self.meta["constants"]["scale_count"]:
            raise ValueError(f"{path}: scale_count {self.meta['constants']['scale_count']} does not match its "
                             f"{self.entropy.scale_grid.count} Gaussian tables")
        # the encoder's rate-distortion weight per level (0: nearest rounding, as files before session 51)
        given = self.meta.get("encoder", {}).get("rate_distortion_lambda", [0.0] * self.L)
        try:
            if not isinstance(given, list) or not all(isinstance(v, (int, float)) for v in given):
                raise ValueError("not a list of numbers")
            self.rd_lambda = im.level_lambdas(given, self.L)
        except ValueError as e:
            raise ValueError(f"{path}: encoder.rate_distortion_lambda {given!r} is not {self.L} numbers >= 0 ({e})") from None
        super().__init__(self.tensors)

    def _int_layer(self, name: str) -> IntLayer:
        d = self.meta["int_layers"][name]
        t = self.tensors
        layer = IntLayer(name=name, kind=d["kind"], kernel=d["kernel"], stride=d["stride"], cin=d["in"],
                         cout=d["out"], weight=t[f"{name}.weight"], bias=t[f"{name}.bias"],
                         multiplier=t[f"{name}.multiplier"], shift=t[f"{name}.shift"],
                         input_bound=d["input_bound"], activation=d["activation"],
                         output_min=d["output_min"], output_max=d["output_max"])
        layer.validate()
        return layer

    def _coding_offset(self, path) -> np.ndarray:
        o = self.tensors.get("gaussian_coding_offset")
        S = len(self.tensors["gaussian_cdf_length"])
        if o is None or o.shape != (self.C,):
            raise ValueError(f"{path}: format version 2 needs gaussian_coding_offset of shape [{self.C}]")
        o = o.astype(np.int64)                   # abs of Int32.min would wrap in int32
        if np.abs(o).max(initial=0) >= S:
            raise ValueError(f"{path}: a coding offset reaches past the {S} Gaussian tables")
        return o

    def _tables(self, prefix: str) -> CDFTables:
        t = CDFTables(cdf=self.tensors[f"{prefix}_cdf"], length=self.tensors[f"{prefix}_cdf_length"],
                      offset=self.tensors[f"{prefix}_offset"])
        t.validate()
        return t
