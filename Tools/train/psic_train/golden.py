"""Golden vectors: for a few small images, every intermediate of the model file's encode and decode
(y, z, the integer entropy parameters, the symbols, the decoded latents and image, a sampled
completion, the rate-distortion quantiser's choice), written by export.py so that the Swift tests
prove the engine computes the same model as this reference (Tests/Golden/README.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import intmodel as im
from .data import load_rgb, pad_to_multiple, to_tensor
from .modelfile import ModelFile

GOLDEN_SAMPLE_LEVEL = 2
GOLDEN_SAMPLE_SEED = 7
# The rate-distortion weight the golden vectors check the encoder's rule at (bits per squared
# latent step, intmodel.rd_symbols) when the model file names none. What a file names is --rd-lambda's
# (none by default): session 51 measured the rule with Tools/train/rd_probe.py and the exporter
# (RESULTS.md): one weight for every level trades SSIMULACRA2 for PSNR, and 40/1.3's gain with
# sampled details is gone with mean details, so the shipped file names none.
GOLDEN_RD_LAMBDA = 40.0


def golden_rd_symbols(ent: im.IntEntropyModel, y: np.ndarray, enc: dict, lambdas: list[float]) -> np.ndarray:
    """The rate-distortion choice for every latent of y given the nearest-rounding encode's means and
    tables, level by level with that level's weight (0: nearest)."""
    r = np.clip(y, -im.LATENT_CLAMP, im.LATENT_CLAMP) - enc["mu"].astype(np.float32) / np.float32(im.MEAN_SCALE)
    lc = ent.level_channels
    out = im.round_half_away(r)
    for i, lam in enumerate(lambdas):
        if lam > 0:
            sl = slice(i * lc, (i + 1) * lc)
            out[:, sl] = im.rd_symbols(r[:, sl], enc["k_code"][:, sl], ent.gaussian, lam)
    return out


def make_golden(mf: ModelFile, png: Path, out: Path) -> dict:
    """Writes the golden vectors of `png` to `out` (safetensors, the metadata in its "golden" key)
    and returns that metadata."""
    from safetensors.numpy import save_file
    img = load_rgb(png)
    padded = pad_to_multiple(img, 64)
    x = to_tensor(padded)
    y = mf.g_a(x)
    z = mf.h_a(y)
    z_hat = im.quantize_z(z.numpy())
    ent = mf.entropy
    enc = ent.encode(y.numpy(), z_hat, exact_int=True)
    # a file without weights still checks the rule
    rd_lambda = mf.rd_lambda if any(v > 0 for v in mf.rd_lambda) else im.level_lambdas(GOLDEN_RD_LAMBDA, ent.L)
    x_hat = mf.g_s(torch.from_numpy(enc["y_hat"]).float() / im.MEAN_SCALE)
    smp = ent.sample(enc["H"], enc["y_hat"], GOLDEN_SAMPLE_LEVEL, GOLDEN_SAMPLE_SEED, exact_int=True)
    i32 = lambda a: np.ascontiguousarray(a[0], dtype=np.int32)  # noqa: E731
    f32 = lambda a: np.ascontiguousarray(a[0].numpy() if torch.is_tensor(a) else a[0], dtype=np.float32)  # noqa: E731
    lc = ent.level_channels
    t = {"image": np.ascontiguousarray(img, dtype=np.uint8), "input": f32(x), "y": f32(y), "z": f32(z),
         "z_hat": i32(z_hat), "H": i32(enc["H"]), "mu": i32(enc["mu"]), "scale_index": i32(enc["k"]),
         "coding_index": i32(enc["k_code"]),
         "q": i32(enc["q"]), "y_hat": i32(enc["y_hat"]), "x_hat": f32(x_hat),
         "sampled_y_hat": i32(smp["y_hat"]), "sampled_mu": i32(smp["mu"]),
         "sampled_scale_index": i32(smp["k"]), "sampled_q": i32(smp["q"]),
         # the rate-distortion quantiser's choice for every latent given the nearest-rounding
         # chain's means and tables (each choice is local to its latent, so one pass suffices)
         "rd_q": i32(golden_rd_symbols(ent, y.numpy(), enc, rd_lambda))}
    meta = {"model_fingerprint": mf.meta["fingerprint"], "image": png.name, "height": img.shape[0],
            "width": img.shape[1], "padded_height": padded.shape[0], "padded_width": padded.shape[1],
            "sample_level": GOLDEN_SAMPLE_LEVEL, "sample_seed": GOLDEN_SAMPLE_SEED,
            "sampled_channels_from": GOLDEN_SAMPLE_LEVEL * lc, "rd_lambda": rd_lambda}
    save_file(t, str(out), metadata={"golden": json.dumps(meta, sort_keys=True)})
    out.chmod(0o644)
    return meta


def write_golden(mf: ModelFile, folder: Path, log=print) -> list[str]:
    """The golden vectors of every *.png in `folder`, beside it; returns the images' names."""
    pngs = sorted(folder.glob("*.png"))
    for png in pngs:
        g = make_golden(mf, png, folder / f"{png.stem}.safetensors")
        log(f"golden {png.name}: {g['width']}x{g['height']} (padded {g['padded_width']}x{g['padded_height']})")
    return [p.name for p in pngs]
