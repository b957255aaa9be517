"""Rebuild a trainable PSICModel from a shipped model file (Models/psic-*.safetensors).

A session that has no training checkpoint resumes from the committed model this way:
- g_a, g_s, h_a and the GDNs are stored as floats (fp16): loaded as they are (GDN parameters
  through compressai's reparametrisation of the effective beta/gamma).
- h_s and the entropy-parameter nets are stored as integer layers. Each is turned back into a
  float layer with the same function: out_int = r * (w_int . x_int + b_int), r = multiplier / 2^shift,
  and x_float = s_in * x_int, out_float = s_out * out_int + offset. The ends of the chain have fixed
  scales (z_hat: 1; decoded latents: 1/16; means: 1/16; log-scales: Delta with offset ln SCALE_MIN);
  the hidden scales are free because LeakyReLU is positively homogeneous, so each hidden s_out is
  chosen to give the layer the weight RMS of a freshly initialised one (Adam then sees the
  conditioning it would in a normal run).
- The entropy bottleneck of z is stored only as its CDF tables: a fresh one is fitted to them
  (cross-entropy of the tables' symbol masses under the bottleneck's density, `fit_z_prior`), so
  z costs what it cost in the shipped model from the first step instead of relearning for
  thousands of steps.
- The coder's scale-index offsets (format version 2, psic_train/codingoffset.py) are left out: the
  float model has one scale for rate and sampling alike, as in training, and export.py calibrates
  the offsets afresh. So the rebuilt model's rates (compare.py, export.py's "heldout_eval") are those
  of the file's networks without the offsets, 4-6 % above what its coder spends (session 50).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .intmodel import CDF_TOTAL, MEAN_SCALE, SCALE_MIN, CDFTables
from .model import ModelConfig, PSICModel, checkpoint_weights
from .modelfile import FLOAT_LAYERS, GDN_LAYERS, ModelFile


def _dequantize(layer, module: torch.nn.Module, s_in: np.ndarray, s_out: np.ndarray | None,
                offset: np.ndarray | None = None) -> np.ndarray:
    """Loads `layer` (an IntLayer) into `module` as floats; s_out None picks a hidden scale.
    Returns the output scale used."""
    r = layer.multiplier.astype(np.float64) / np.exp2(layer.shift.astype(np.float64))
    w = layer.weight.astype(np.float64)
    s_in = np.asarray(s_in, np.float64).reshape(-1)
    if layer.transposed:            # [in, out, k, k]
        unit = w * r.reshape(1, -1, 1, 1) / s_in.reshape(-1, 1, 1, 1)
        out_axis = 1
    else:                           # [out, in, k, k]
        unit = w * r.reshape(-1, 1, 1, 1) / s_in.reshape(1, -1, 1, 1)
        out_axis = 0
    if s_out is None:
        target = module.weight.detach().double().pow(2).mean().sqrt().item()
        rms = math.sqrt(float((unit ** 2).mean())) or 1.0
        s_out = np.full(layer.cout, target / rms)
    s_out = np.asarray(s_out, np.float64).reshape(-1)
    shape = [1, 1, 1, 1]
    shape[out_axis] = -1
    weight = unit * s_out.reshape(shape)
    bias = layer.bias.astype(np.float64) * r * s_out + (0 if offset is None else offset)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight).to(module.weight.dtype))
        module.bias.copy_(torch.from_numpy(bias).to(module.bias.dtype))
    return s_out


def fit_density(eb, values: torch.Tensor, masses: torch.Tensor, steps: int = 300, lr: float = 0.02) -> float:
    """Fits a compressai EntropyBottleneck's per-channel density to symbol masses: minimises
    sum_v masses[c, v] * -log2 P_eb(values[c, v]) ([C, W] each) by Adam. Every bottleneck parameter
    is per channel and Adam moves nothing whose gradient is zero, so a channel whose masses are all
    zero stays as it is. Returns the final cross-entropy in bits per symbol, averaged over the
    channels that have mass; its minimum is their own entropy."""
    C, W = values.shape
    fitted = masses.sum(dim=1) > 0
    v = values.float().reshape(C, 1, W)
    p = masses.float()
    params = [q for n, q in eb.named_parameters() if not n.startswith("quantiles")]
    opt = torch.optim.Adam(params, lr=lr)
    loss = torch.zeros(())
    for _ in range(steps):
        lik = eb._likelihood(v)
        lik = (lik[0] if isinstance(lik, tuple) else lik).reshape(C, W).clamp_min(1e-9)
        loss = -(p * torch.log2(lik)).sum(dim=1)[fitted].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.item())


def fit_z_prior(eb, tables: CDFTables, steps: int = 300, lr: float = 0.02) -> float:
    """Fits the bottleneck's density to per-channel integer tables (`fit_density` over the
    tables' regular symbols; the escape's mass is spread over no value)."""
    C = tables.cdf.shape[0]
    width = int(tables.length.max()) - 1
    values = np.zeros((C, width))
    masses = np.zeros((C, width))
    for c in range(C):
        n = int(tables.length[c]) - 1                        # regular symbols (escape excluded)
        values[c, :n] = tables.offset[c] + np.arange(n)
        masses[c, :n] = np.diff(tables.cdf[c, :n + 1].astype(np.float64)) / CDF_TOTAL
    return fit_density(eb, torch.from_numpy(values), torch.from_numpy(masses), steps, lr)


def model_from_file(path) -> tuple[PSICModel, dict]:
    """(model, metadata) with the shipped model's function; see the module comment."""
    f = ModelFile(path)
    a = f.meta["architecture"]
    cfg = ModelConfig(N=a["N"], C=a["C"], L=a["L"], hyper=a["hyper"], ep_width=a["ep_width"])
    # The z prior's starting point (the bottleneck's random biases) decides where fit_z_prior ends:
    # a fixed seed makes the rebuilt model, and so compare.py's and export.py's held-out figures of
    # a file, the same on every run, without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = PSICModel(cfg)
    t = f.tensors
    with torch.no_grad():
        for net, idx in FLOAT_LAYERS.items():
            mods = getattr(model, net)
            for i in idx:
                mods[i].weight.copy_(torch.from_numpy(t[f"{net}.{i}.weight"].astype(np.float32)))
                mods[i].bias.copy_(torch.from_numpy(t[f"{net}.{i}.bias"].astype(np.float32)))
        for net, idx in GDN_LAYERS.items():
            mods = getattr(model, net)
            for i in idx:
                gdn = mods[i]
                gdn.beta.copy_(gdn.beta_reparam.init(torch.from_numpy(t[f"{net}.{i}.beta"]).float()))
                gdn.gamma.copy_(gdn.gamma_reparam.init(torch.from_numpy(t[f"{net}.{i}.gamma"]).float()))
    ent = f.entropy
    s = np.ones(cfg.N)
    for layer, j in zip(ent.h_s, (0, 2, 4)):
        s = _dequantize(layer, model.h_s[j], s, None)
    s_hyper = s
    lc = cfg.level_channels
    mean_offset = np.zeros(2 * lc)
    mean_offset[lc:] = math.log(SCALE_MIN)
    last_scale = np.concatenate([np.full(lc, 1.0 / MEAN_SCALE), np.full(lc, ent.scale_grid.log_step)])
    for i, net in enumerate(ent.ep):
        s = np.concatenate([s_hyper, np.full(i * lc, 1.0 / MEAN_SCALE)])
        s = _dequantize(net[0], model.entropy_parameters[i][0], s, None)
        s = _dequantize(net[1], model.entropy_parameters[i][2], s, None)
        _dequantize(net[2], model.entropy_parameters[i][4], s, last_scale, mean_offset)
    fit_z_prior(model.entropy_bottleneck, ent.z)
    return model, f.meta


def _file_training(meta: dict) -> tuple[int | None, dict]:
    """(steps, recipe) that export.py recorded in a model file's metadata: the checkpoint's step
    (None where the file records none) and train.py's options."""
    training = meta.get("training", {})
    return training.get("steps"), training.get("recipe", {})


def starting_point(path) -> dict:
    """What `train.py --init PATH` starts from, in a train.py checkpoint's shape: a checkpoint
    (*.pt) as saved, optimiser and moving average included; a shipped model file (*.safetensors)
    as the checkpoint it would be, its weights rebuilt by `model_from_file` and its step and recipe
    (train.py's options, as export.py recorded them) from the metadata, with no optimiser or
    moving average to carry over."""
    if Path(path).suffix != ".safetensors":
        return torch.load(path, map_location="cpu", weights_only=False)
    model, meta = model_from_file(path)
    steps, recipe = _file_training(meta)
    return {"config": model.cfg.to_dict(), "model": model.state_dict(), "step": int(steps or 0), "args": recipe}


def load_model(path, ema: bool = True) -> tuple[PSICModel, int | None, dict, bool | None]:
    """(model, step, recipe, averaged) of a shipped model file (*.safetensors, rebuilt by
    `model_from_file`) or a train.py checkpoint (*.pt: its moving average of the weights when `ema`
    and it has one, else the raw weights). `step` is None where the source records none;
    `averaged` says which weights a checkpoint gave, None for a model file."""
    if Path(path).suffix == ".safetensors":
        model, meta = model_from_file(path)
        return model, *_file_training(meta), None
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = PSICModel(ModelConfig(**ckpt["config"]))
    state, averaged = checkpoint_weights(ckpt, ema=ema)
    model.load_state_dict(state)
    return model, ckpt.get("step"), ckpt.get("args", {}), averaged


def exported_checkpoint(checkpoint, model_file, ema: bool = True) -> tuple[PSICModel, int, ModelFile]:
    """(model in eval mode, step, the opened model file) for tools that set a model file beside the
    train.py checkpoint it was exported from (its moving average when `ema` and it has one). A
    checkpoint at another step than the file records is refused: the comparison would be of two
    models, not of an export."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    mf = ModelFile(model_file)
    step, file_step = int(ckpt.get("step", 0)), int(mf.meta.get("training", {}).get("steps", -1))
    if step != file_step:
        raise SystemExit(f"{model_file} was exported at step {file_step}, {checkpoint} is at step {step}: "
                         "pass the checkpoint it was exported from (or export this one: export.py --checkpoint)")
    model = PSICModel(ModelConfig(**ckpt["config"]))
    model.load_state_dict(checkpoint_weights(ckpt, ema=ema)[0])
    return model.eval(), step, mf
