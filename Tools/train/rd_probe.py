#!/usr/bin/env python3
"""What the encoder's rate-distortion symbol choice (intmodel.rd_symbols; `psic encode --rd-lambda`)
does to a model file's level curve: each weight's curve against nearest rounding, as export.py's
Kodak evaluation measures one (the file's transforms and integer entropy model, real table costs,
levels past each cut sampled with seed 0), with BD-rates in PSNR, MS-SSIM and, with
--ssimulacra2, SSIMULACRA2.

    python Tools/train/rd_probe.py Models/psic-conv.safetensors --data ../shared/data/kodak --every 3 \\
        --ssimulacra2 40 64

A weight is LAMBDA (bits per squared latent step, every level alike), LAMBDA/F (level i of L
weighted LAMBDA * F^(L-1-i): F > 1 favours fidelity at the first levels, which condition the
sampled ones) or LAMBDA@c (each channel's latent error weighted by its measured effect on the
image decoded at the full level, normalised to mean 1: --channel-photos training photos, 256x256
centre crops, finite differences through g_s).

Session 51 (the step-206500 model, every third Kodak photo): 40 gave PSNR BD-rate -1.2 %, MS-SSIM
+0.1 %, SSIMULACRA2 +1.4 %; 40/1.3 -0.5 / -0.1 / +0.0 %, and on the other 16 photos (--offset 1
and 2) -0.4 / -0.2 / -0.2 % and -0.5 / -0.2 / +0.2 %; but with --details mean 40/1.3 gave +0.0 %
PSNR and +0.7 % MS-SSIM, so no weight ships (RESULTS.md). Per-channel weights did far worse
(32@c +9.2 %, 64@c +5.3 % PSNR BD-rate).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures import bd  # noqa: E402
from psic_train import intmodel as im  # noqa: E402
from psic_train.data import list_images, load_rgb, pad_to_multiple, to_tensor  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.modelfile import ModelFile  # noqa: E402
from psic_train.rates import level_bits, z_bits_int  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def weight(text: str) -> tuple[str, float, float, bool]:
    """LAMBDA, LAMBDA/F or LAMBDA@c -> (text, lambda, level factor, per-channel)."""
    per_channel = text.endswith("@c")
    body = text[:-2] if per_channel else text
    lam, _, factor = body.partition("/")
    try:
        value, f = float(lam), float(factor) if factor else 1.0
    except ValueError:
        value, f = float("nan"), 1.0
    if not (math.isfinite(value) and value > 0 and math.isfinite(f) and f > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give LAMBDA, LAMBDA/F or LAMBDA@c with positive numbers, e.g. 40")
    return text, value, f, per_channel


def encode(mf: ModelFile, y: np.ndarray, z_hat: np.ndarray, lambdas: list[float] | None,
           channel_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(H, Y^, bits per level) of the exporter's encode with level i's symbols picked with weight
    lambdas[i] (times each channel's weight), or rounded to the nearest (lambdas None)."""
    ent, lc = mf.entropy, mf.entropy.level_channels
    weights = 0.0 if lambdas is None else lambdas if channel_weight is None else [
        lam * channel_weight[i * lc:(i + 1) * lc].reshape(1, -1, 1, 1) for i, lam in enumerate(lambdas)]
    enc = ent.encode(y, z_hat, rd_lambda=weights)
    return enc["H"], enc["y_hat"], list(level_bits(ent, enc["k_code"], enc["q"])[0])


def channel_weights(mf: ModelFile, photos: list[Path], delta: float = 0.25) -> np.ndarray:
    """Per latent channel, image squared error (0..1 units) per unit of squared latent error at the
    full-level decode, averaged over 256x256 centre crops of `photos`, normalised to mean 1."""
    g = torch.Generator().manual_seed(0)
    acc = np.zeros(mf.C)
    for p in photos:
        img = load_rgb(p)
        top, left = max(0, (img.shape[0] - 256) // 2), max(0, (img.shape[1] - 256) // 2)
        x = to_tensor(pad_to_multiple(img[top:top + 256, left:left + 256], 64))
        with torch.no_grad():
            y = mf.g_a(x)
            _, y_hat, _ = encode(mf, y.numpy(), im.quantize_z(mf.h_a(y).numpy()), None, None)
            yf = torch.from_numpy(y_hat).float() / im.MEAN_SCALE
            base = mf.g_s(yf)
            for c in range(mf.C):
                e = torch.randn(yf[:, c].shape, generator=g) * delta
                moved = yf.clone()
                moved[:, c] += e
                acc[c] += float(((mf.g_s(moved) - base) ** 2).sum()) / float((e ** 2).sum())
    return acc / acc.mean()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="model file (*.safetensors)")
    p.add_argument("weights", type=weight, nargs="+", metavar="WEIGHT", help="LAMBDA, LAMBDA/F or LAMBDA@c (see above)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "kodak", help="folder of photos")
    p.add_argument("--every", type=int, default=1, help="every n-th photo of --data (sorted), from the first")
    p.add_argument("--offset", type=int, default=0, help="with --every: start at this photo (0-based) instead")
    p.add_argument("--details", choices=["sampled", "mean"], default="sampled",
                   help="levels past each cut sampled with seed 0, or at their mean (the decoder's --details)")
    p.add_argument("--ssimulacra2", action="store_true", help="score the decodes with SSIMULACRA2 too (compare.py's scorer)")
    p.add_argument("--channel-photos", type=int, default=8,
                   help="training photos (every 60th of ../shared/data/train, held-out ones excluded) for LAMBDA@c")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    args = p.parse_args(argv)
    require_files(args.model)
    if args.every < 1 or not 0 <= args.offset < args.every:
        p.error("--every must be at least 1 and --offset in 0 ..< --every")
    torch.set_num_threads(args.threads)
    from pytorch_msssim import ms_ssim
    mf = ModelFile(args.model)
    photos = list_images(args.data)[args.offset::args.every]
    if not photos:
        p.error(f"no photos in {args.data}")
    configs: list[tuple[str, list[float] | None, bool]] = [("nearest", None, False)]
    for text, lam, f, per_channel in args.weights:
        configs.append((text, [lam * f ** (mf.L - 1 - i) for i in range(mf.L)], per_channel))
    cw = None
    if any(pc for _, _, pc in configs):
        train = list_images(REPO.parent / "shared" / "data" / "train")[:-8][::60][:args.channel_photos]
        cw = channel_weights(mf, train)
        print("channel weights by level (mean): " + " ".join(f"{w:.2f}" for w in cw.reshape(mf.L, -1).mean(1)))
    scorer = None
    if args.ssimulacra2:
        from compare import Ssimulacra2Scorer
        scorer = Ssimulacra2Scorer(Path(tempfile.mkdtemp()))
    metrics = ("psnr", "ms_ssim") + (("ssimulacra2",) if scorer else ())
    rows = {name: [] for name, _, _ in configs}
    for photo in photos:
        t0 = time.time()
        img = load_rgb(photo)
        h, w = img.shape[:2]
        x, ref = to_tensor(pad_to_multiple(img, 64)), to_tensor(img)
        with torch.no_grad():
            y = mf.g_a(x)
            z_hat = im.quantize_z(mf.h_a(y).numpy())
        zb, _ = z_bits_int(mf.entropy, z_hat)

        def quality(y_hat: np.ndarray) -> dict:
            with torch.no_grad():
                xh = mf.g_s(torch.from_numpy(y_hat).float() / im.MEAN_SCALE)[:, :, :h, :w].clamp(0, 1)
            xh = torch.round(xh * 255) / 255
            out = {"psnr": 10 * math.log10(1 / max(float(((xh - ref) ** 2).mean()), 1e-12)),
                   "ms_ssim": float(ms_ssim(xh, ref, data_range=1.0))}
            return {**out, **scorer(ref, xh)} if scorer else out

        for name, lambdas, per_channel in configs:
            H, y_hat, bits = encode(mf, y.numpy(), z_hat, lambdas, cw if per_channel else None)
            curve = []
            for l in range(1, mf.L + 1):
                dec = y_hat if l == mf.L else mf.entropy.sample(H, y_hat, l, 0 if args.details == "sampled" else None)["y_hat"]
                curve.append({"bpp": (zb + sum(bits[:l])) / (h * w), **quality(dec)})
            rows[name].append(curve)
        print(f"{photo.name} ({time.time() - t0:.0f} s)", flush=True)
    mean = {name: [{k: float(np.mean([c[l][k] for c in curves])) for k in ("bpp",) + metrics} for l in range(mf.L)]
            for name, curves in rows.items()}
    print(f"{len(photos)} photos of {args.data}, {args.details} details; bpp/PSNR per level; "
          f"BD-rates against nearest rounding")
    for name, curve in mean.items():
        line = f"{name:>10}: " + " ".join(f"{r['bpp']:.3f}/{r['psnr']:.2f}" for r in curve)
        if name != "nearest":
            line += "  " + "  ".join(f"{m} {bd(mean['nearest'], curve, m):+.2f} %" for m in metrics)
        print(line)


if __name__ == "__main__":
    main()
