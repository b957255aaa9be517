#!/usr/bin/env python3
"""How real the decodes of models look as a set, level by level, by a measure that needs no
downloaded network (psic_train/realism.py: the sliced Wasserstein distance between Laplacian-pyramid
patches of the decodes and of the photos, x 1000; lower is closer to the photos).

    python Tools/train/realism_probe.py Models/psic-conv.safetensors Tools/train/runs/sNN/eval-STEP.pt \\
        --data ../shared/data/kodak --details both

Every model decodes every photo of --data (whole photos, cut to multiples of 64) at every level,
with the levels past the cut sampled (seed --seed) or at their mean (--details), the sampler's
scale times each --sample-scale; the decodes are rounded to 8 bits, as the codec writes them. Beside
each level's distance per band it prints the rate and PSNR (compare.py's evaluation: the float
model, rounded symbols). Two references come first: the floor (what the photos themselves score:
no decode can do better than about this) and the photos blurred once by the pyramid's 5-tap filter
(a decode that lost its finest detail).

--decoded DIR scores decodes made elsewhere, e.g. by the codec itself (`psic decode`): DIR holds one
PNG per photo of --data under the photo's name (NAME.png), cropped like the photo to multiples of
64; each DIR is one row. Tools/train/realism-codec.sh makes such folders for every level and
--detail-spread, with the decoder's sampled details or (DETAILS=calibrated) its calibrated ones;
--ssimulacra2 also prints each such row's mean SSIMULACRA2 against the photos.

Each model file is rebuilt as floats; a checkpoint gives its moving average (--raw: its raw weights).
This is what the adversarial stage, the coded-rate run and the sampler's spread were waiting for
(RESULTS.md, sessions 49-52): a measure that rewards details that look real rather than details
that match.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import evaluation_crops, list_images, load_rgb  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.model import ScaleFactors, level_decodes  # noqa: E402
from psic_train.objective import psnr as psnr_of  # noqa: E402
from psic_train.realism import RealismConfig, RealismMeter, binomial_blur  # noqa: E402
from compare import Ssimulacra2Scorer, metrics  # noqa: E402  (Tools/eval/metrics.py's SSIMULACRA2, as compare.py scores it)

REPO = Path(__file__).resolve().parents[2]
DETAILS = {"sampled": (False,), "mean": (True,), "both": (False, True)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, nargs="*", help="model files (*.safetensors) or train.py checkpoints (*.pt)")
    p.add_argument("--decoded", type=Path, nargs="+", default=[], metavar="DIR",
                   help="folders of decodes made elsewhere, one PNG per photo of --data under its name")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "kodak",
                   help="photos to decode (default: ../shared/data/kodak)")
    p.add_argument("--details", choices=list(DETAILS), default="sampled",
                   help="levels past each cut sampled, at their mean, or both (default: %(default)s)")
    p.add_argument("--sample-scale", type=float, nargs="+", default=[1.0], metavar="F",
                   help="multiply the sampler's scale by each F (scale_probe.py's sample mode; default 1)")
    p.add_argument("--seed", type=int, default=0, help="the detail draws' seed (default: %(default)s)")
    p.add_argument("--bands", type=int, default=RealismConfig.bands, help="Laplacian bands (default: %(default)s)")
    p.add_argument("--patches", type=int, default=RealismConfig.per_image,
                   help="patches per photo and band (default: %(default)s)")
    p.add_argument("--projections", type=int, default=RealismConfig.projections,
                   help="random directions of the sliced distance (default: %(default)s)")
    p.add_argument("--raw", action="store_true", help="a checkpoint's raw weights instead of its moving average")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every figure to PATH")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads (default: %(default)s)")
    p.add_argument("--ssimulacra2", action="store_true",
                   help="also score each --decoded folder's decodes with SSIMULACRA2 against the photos (their mean; "
                        "needs the ssimulacra2 package of Tools/eval/requirements.txt)")
    args = p.parse_args(argv)
    if not args.models and not args.decoded:
        p.error("give a model or --decoded folders")
    if any(not f > 0 for f in args.sample_scale):
        p.error("--sample-scale factors must be positive")
    if args.ssimulacra2 and not args.decoded:
        p.error("--ssimulacra2 scores --decoded folders; give some")
    if args.ssimulacra2 and not metrics.ssimulacra2_available():
        p.error("--ssimulacra2 needs the ssimulacra2 package: pip install -r Tools/eval/requirements.txt")
    for name in ("bands", "patches", "projections"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be 1 or more")
    return args


def to_8_bits(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255) / 255


def row(label: str, distances: list[float], extra: str = "") -> str:
    return f"  {label:<9}" + "".join(f"{d:9.1f}" for d in distances) + (f"   {extra}" if extra else "")


def main(argv=None) -> None:
    args = parse_args(argv)
    require_files("realism_probe.py", *args.models)
    torch.set_num_threads(args.threads)
    files = list_images(args.data)
    photos = evaluation_crops(files, 0)
    if len(photos) != len(files):
        raise SystemExit(f"realism_probe.py: {len(files) - len(photos)} photos of {args.data} are under 64x64")
    config = RealismConfig(bands=args.bands, per_image=args.patches, projections=args.projections)
    started = time.time()
    meter = RealismMeter(photos, config)
    header = "  " + " " * 9 + "".join(f"{'band ' + str(k):>9}" for k in range(config.bands))
    print(f"{len(photos)} photos of {args.data}; {config.per_image} patches of {config.patch}x{config.patch} per photo "
          f"and band, {config.projections} projections; sliced distance x 1000 per band, finest first")
    print(header)
    report = {"floor": meter.floor()}
    print(row("floor", report["floor"]))
    for i, photo in enumerate(photos):
        meter.add("blur", i, to_8_bits(binomial_blur(photo)))
    report["blur"] = meter.distances("blur")
    print(row("blurred", report["blur"]))
    report["decoded"] = []
    scratch = tempfile.TemporaryDirectory(prefix="psic-realism-")
    scorer = Ssimulacra2Scorer(Path(scratch.name)) if args.ssimulacra2 else None
    for folder in args.decoded:
        psnr, s2 = 0.0, 0.0
        for i, (photo, name) in enumerate(zip(photos, files)):
            path = folder / f"{name.stem}.png"
            if not path.is_file():
                raise SystemExit(f"realism_probe.py: {path} does not exist (--decoded needs a decode of every photo of --data)")
            h, w = photo.shape[-2:]
            image = load_rgb(path)
            if image.shape[0] < h or image.shape[1] < w:
                raise SystemExit(f"realism_probe.py: {path} is {image.shape[1]}x{image.shape[0]}, smaller than its photo")
            decode = torch.from_numpy(image[:h, :w].copy()).permute(2, 0, 1).float().div(255)[None]
            meter.add(str(folder), i, decode)
            psnr += psnr_of(torch.mean((decode - photo) ** 2).item()) / len(photos)
            if scorer:
                s2 += scorer(photo, decode)["ssimulacra2"] / len(photos)
        d = meter.distances(str(folder))
        entry = {"folder": str(folder), "psnr": psnr, "distances": d}
        if scorer:
            entry["ssimulacra2"] = s2
        report["decoded"].append(entry)
        print(row(folder.name, d, f"{psnr:.2f} dB, " + (f"SSIMULACRA2 {s2:.2f}, " if scorer else "") + str(folder)))
    scratch.cleanup()
    report["models"] = []
    for path in args.models:
        model, step, _, averaged = load_model(path, ema=not args.raw)
        model.eval()
        for mean in DETAILS[args.details]:
            for factor in args.sample_scale if not mean else [1.0]:
                what = "mean details" if mean else f"sampled details (seed {args.seed}, scale x {factor:g})"
                print(f"{path.name} (step {'?' if step is None else step}"
                      f"{'' if averaged is None else ', EMA' if averaged else ', raw'}), {what}")
                bits, sq, pixels = {}, {}, {}
                with torch.no_grad():
                    for i, photo in enumerate(photos):
                        for level, b, x_hat in level_decodes(model, photo, args.seed, mean, ScaleFactors(sample=factor)):
                            x_hat = to_8_bits(x_hat)
                            meter.add((str(path), mean, factor, level), i, x_hat)
                            n = photo.shape[-1] * photo.shape[-2]
                            bits[level] = bits.get(level, 0.0) + b / n / len(photos)
                            sq[level] = sq.get(level, 0.0) + psnr_of(torch.mean((x_hat - photo) ** 2).item()) / len(photos)
                levels = []
                for level in sorted(bits):
                    d = meter.distances((str(path), mean, factor, level))
                    levels.append({"level": level, "bpp": bits[level], "psnr": sq[level], "distances": d})
                    print(row(f"L{level}", d, f"{bits[level]:.3f} bpp, {sq[level]:.2f} dB"))
                report["models"].append({"model": str(path), "step": step, "mean_details": mean,
                                         "sample_scale": factor, "seed": args.seed, "levels": levels})
    print(f"{time.time() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
