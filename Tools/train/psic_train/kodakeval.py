"""A model file's curve on a folder of whole photos (Kodak) as the codec would code them: the file's
transforms, the integer entropy model's real symbol costs, sampled and mean details below the
full level. export.py stores it in its report; ship.py and figures.py read it from there."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from . import intmodel as im
from .data import list_images, load_rgb, pad_to_multiple, to_tensor
from .model import PSICModel
from .modelfile import ModelFile
from .rates import float_bits, int_bits, level_bits, z_bits_int

KODAK_SAMPLE_SEED = 0


def evaluate_kodak(mf: ModelFile, model: PSICModel, folder: Path,
                   seeds: tuple[int, ...] | list[int] = (KODAK_SAMPLE_SEED,), rd_lambda: list[float] | None = None, log=print) -> dict:
    """Per-image and mean per-level bpp / PSNR / MS-SSIM. Below level L the details are sampled with
    seeds[0] (KODAK_SAMPLE_SEED: "psnr", "ms_ssim") and at their mean ("*_mean_details"); with more
    seeds each row also lists the sampled figures of every seed ("psnr_seeds", "ms_ssim_seeds", in
    the order of `seeds`; at level L, where nothing is sampled, the one decode repeated). The codec's
    symbols are chosen as its encoder does, with the file's rate-distortion weight unless
    `rd_lambda` (one per level; 0: nearest rounding) is given."""
    rd = mf.rd_lambda if rd_lambda is None else rd_lambda
    from pytorch_msssim import ms_ssim
    assert seeds[0] == KODAK_SAMPLE_SEED
    ent, L = mf.entropy, mf.L
    per_image = []
    float_total = int_total = 0.0
    for png in list_images(folder):
        t0 = time.time()
        img = load_rgb(png)
        Hh, Ww = img.shape[:2]
        x = to_tensor(pad_to_multiple(img, 64))
        x_ref = to_tensor(img)
        # rate loss of the integer entropy model vs the float one, on the training model's latents
        with torch.no_grad():
            y_t = model.g_a(x)
            z_t = torch.from_numpy(im.quantize_z(model.h_a(y_t).numpy())).float()
        fz, fl = float_bits(model, y_t, z_t)
        iz, il, _, _ = int_bits(ent, y_t.numpy(), z_t.numpy())
        float_total += fz + fl.sum()
        int_total += iz + il.sum()
        # the shipped codec: model-file transforms, integer entropy model, real symbol costs
        y = mf.g_a(x)
        z_hat = im.quantize_z(mf.h_a(y).numpy())
        zb, zesc = z_bits_int(ent, z_hat)
        enc = ent.encode(y.numpy(), z_hat, rd_lambda=rd)
        lb = level_bits(ent, enc["k_code"], enc["q"])[0]
        def quality(y_hat: np.ndarray) -> tuple[float, float]:
            xh = mf.g_s(torch.from_numpy(y_hat).float() / im.MEAN_SCALE)[:, :, :Hh, :Ww].clamp(0, 1)
            xh = torch.round(xh * 255) / 255     # what an 8-bit PNG decode holds
            mse = float(((xh - x_ref) ** 2).mean())
            return 10 * math.log10(1 / max(mse, 1e-12)), float(ms_ssim(xh, x_ref, data_range=1.0))

        levels = []
        for l in range(1, L + 1):
            row = {"level": l, "bpp": (zb + sum(lb[:l])) / (Hh * Ww)}
            if l == L:
                row["psnr"], row["ms_ssim"] = quality(enc["y_hat"])
                row["psnr_mean_details"], row["ms_ssim_mean_details"] = row["psnr"], row["ms_ssim"]
                by_seed = [(row["psnr"], row["ms_ssim"])] * len(seeds)
            else:
                # sampled details decide shipping (what the codec shows by default); mean details
                # are read beside them because sampled PSNR also falls when the prior's scales for
                # the untransmitted levels grow, which can hide a better transmitted part (session 18)
                by_seed = [quality(ent.sample(enc["H"], enc["y_hat"], l, s)["y_hat"]) for s in seeds]
                row["psnr"], row["ms_ssim"] = by_seed[0]
                row["psnr_mean_details"], row["ms_ssim_mean_details"] = quality(
                    ent.sample(enc["H"], enc["y_hat"], l, None)["y_hat"])
            if len(seeds) > 1:
                row["psnr_seeds"], row["ms_ssim_seeds"] = [p for p, _ in by_seed], [m for _, m in by_seed]
            levels.append(row)
        per_image.append({"image": png.name, "levels": levels, "z_bpp": zb / (Hh * Ww)})
        log(f"  {png.name}: " + " ".join(f"L{r['level']} {r['bpp']:.3f}/{r['psnr']:.2f}" for r in levels)
            + f" ({time.time() - t0:.1f} s)")
    mean = [{"level": l + 1, **{k: float(np.mean([p["levels"][l][k] for p in per_image]))
                                for k in ("bpp", "psnr", "ms_ssim", "psnr_mean_details", "ms_ssim_mean_details")}}
            for l in range(L)]
    if len(seeds) > 1:
        for l, row in enumerate(mean):
            for k in ("psnr_seeds", "ms_ssim_seeds"):
                row[k] = [float(v) for v in np.mean([p["levels"][l][k] for p in per_image], axis=0)]
    report = {"folder": str(folder), "images": len(per_image), "sample_seed": KODAK_SAMPLE_SEED, "rd_lambda": rd,
              "rate_loss": int_total / float_total - 1.0, "mean": mean, "per_image": per_image}
    if len(seeds) > 1:
        report["sample_seeds"] = list(seeds)
    return report
