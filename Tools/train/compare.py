"""Compare models on the held-out training photos before exporting one.

    python Tools/train/compare.py Models/psic-conv.safetensors Tools/train/runs/s3/last.pt

Each model is a shipped model file (*.safetensors, rebuilt as floats by psic_train.fromfile) or a
training checkpoint (*.pt; its moving average of the weights when it has one, unless --raw).
Prints bpp / PSNR per level on the same crops as train.py's periodic evaluation (the last
--holdout photos of --data, or with --every-photo all of them; top-left crops of at most 256x256;
--crop 0: whole photos, slower but closer to a Kodak evaluation), and each model's difference to
the first one: mean PSNR and rate across levels, and the PSNR and MS-SSIM BD-rates
(Tools/eval/bdrate.py), the rate change at equal quality.

--details mean decodes the levels past each cut as their mean (the decoder's `--details mean`)
instead of sampling them; --details both prints both and, per model, the mean's PSNR gain per level.
--json PATH also writes the curves, e.g. as the reference of `figures.py heldout --ref PATH`.
--ssimulacra2 also scores every decode (rounded to 8 bits, as the codec writes it) with
SSIMULACRA2, the perceptual metric that neither the objective nor ship.py's gates see, and prints
its BD-rate: the screen for a candidate that trades PSNR for perceived quality (the time it adds
is printed at the end: about 3 minutes per model on Kodak at one thread in session 48; needs
Tools/eval/requirements.txt).

The held-out photos of ../shared/data/train are its last 8 names, Urban100 buildings: their
curve tracks the run, but has twice put a candidate ahead in MS-SSIM that Kodak put behind. Before
spending an export on a candidate, screen it on Kodak as export.py's report measures it (float
weights rather than the integer entropy model, seed 0; minutes rather than an export's seven):

    python Tools/train/compare.py --data ../shared/data/kodak --every-photo --crop 0 \
        Models/psic-conv.safetensors Tools/train/runs/sNN/eval-STEP.pt

(session 46: the step-207500 candidate of session 45 screened at -0.28 % PSNR / +0.36 % MS-SSIM
BD-rate, its export at -0.27 / +0.39 % for seed 0).

A model file is rebuilt as floats without its coder's scale-index offsets (psic_train/fromfile.py),
so its rates here are its networks', as a checkpoint's are; the file's coder spends 4-6 % fewer
bits (session 50), which export.py's report measures.

The first model sets the basis: a checkpoint screened against the shipped *file* (fp16 weights, the
integer entropy model rebuilt as floats) starts 0.18 % PSNR and 0.35 % MS-SSIM ahead from the
export's rounding alone (session 49: the shipped step's checkpoint against its own file). Where the
checkpoint the file was exported from is at hand, screen against it instead (session 49: `s48`'s
step 207000 read -0.12 / -0.54 % against the file, +0.07 / -0.19 % against the shipped step's
checkpoint; session 48's ship had screened at -0.11 / -0.54 % against its file and exported at
+0.05 / -0.24 %).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import evaluation_crops, list_images  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.model import PSICModel, mean_curve  # noqa: E402
from figures import bd  # noqa: E402  (the BD-rate of two level curves that figures.py heldout prints)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
import metrics  # noqa: E402  (Tools/eval/metrics.py: the SSIMULACRA2 that Tools/eval reports)

REPO = Path(__file__).resolve().parents[2]


def load(path: Path, raw: bool) -> tuple[PSICModel, str]:
    model, step, _, averaged = load_model(path, ema=not raw)
    weights = "" if averaged is None else f", {'EMA' if averaged else 'raw'}"
    return model, f"{path.name} (step {'?' if step is None else step}{weights})"


def versus(ref: list[dict], curve: list[dict]) -> str:
    """The mean PSNR and rate change of `curve` against `ref` level by level, and the BD-rates
    (pchip) at equal PSNR, at equal MS-SSIM and, where both curves have it, at equal SSIMULACRA2."""
    dq = sum(r["psnr"] - r0["psnr"] for r, r0 in zip(curve, ref)) / len(curve)
    rb = sum(r["bpp"] / r0["bpp"] - 1 for r, r0 in zip(curve, ref)) / len(curve)
    s2 = ""
    if all("ssimulacra2" in r for r in ref + curve):
        s2 = f", SSIMULACRA2 BD-rate {bd(ref, curve, 'ssimulacra2'):+.2f} %"
    return (f"mean PSNR {dq:+.3f} dB, mean rate {rb * 100:+.1f} %, PSNR BD-rate {bd(ref, curve):+.2f} %, "
            f"MS-SSIM BD-rate {bd(ref, curve, 'ms_ssim'):+.2f} %{s2} (negative: fewer bits at equal quality)")


class Ssimulacra2Scorer:
    """evaluate_levels' `extra`: the SSIMULACRA2 of a decode against its photo, both rounded to 8
    bits and written as PNG files (the metric's package reads files) into a scratch folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._photo: torch.Tensor | None = None   # the photo last written: its 8 decodes share it
        self.scored, self.seconds = 0, 0.0          # decodes scored and the time that took

    @staticmethod
    def _png(t: torch.Tensor, path: Path) -> Path:
        pixels = (t[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
        return path

    def __call__(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict:
        t0 = time.perf_counter()
        photo = self.folder / "photo.png"
        if x is not self._photo:
            self._png(x, photo)
            self._photo = x
        score = metrics.ssimulacra2(photo, self._png(x_hat, self.folder / "decode.png"))
        self.scored += 1
        self.seconds += time.perf_counter() - t0
        return {"ssimulacra2": score}

    def summary(self) -> str:
        """How many decodes were scored and what it cost, for the last line of a screen."""
        each = self.seconds / self.scored if self.scored else 0.0
        return f"SSIMULACRA2: {self.scored} decodes scored in {self.seconds:.0f} s ({each:.2f} s each)"


def compare_models(args, crops: list[torch.Tensor], extra) -> list[dict]:
    """Prints each model's curves and its difference to the first; returns what --json writes."""
    modes = {"sampled": [False], "mean": [True], "both": [False, True]}[args.details]
    first: dict[bool, list[dict]] = {}
    written = []
    for path in args.models:
        model, name = load(path, args.raw)
        by_mode = {}
        for mean_details in modes:
            curve = mean_curve(model, crops, mean_details, extra=extra)
            by_mode[mean_details] = curve
            label = name + (" [mean details]" if mean_details else "")
            print(label + ": " + " ".join(f"L{r['level']} {r['bpp']:.3f}/{r['psnr']:.2f}" for r in curve))
            if extra:
                print("  SSIMULACRA2: " + " ".join(f"L{r['level']} {r['ssimulacra2']:.2f}" for r in curve))
            if mean_details not in first:
                first[mean_details] = curve
                continue
            print("  vs first: " + versus(first[mean_details], curve))
        if len(by_mode) == 2:
            # Same rates (the transmitted levels are the same); only the untransmitted ones differ.
            gains = [m["psnr"] - s["psnr"] for m, s in zip(by_mode[True], by_mode[False])]
            print("  mean vs sampled details, PSNR: " + " ".join(f"L{i + 1} {g:+.2f}" for i, g in enumerate(gains)) + " dB")
            if extra:
                gains = [m["ssimulacra2"] - s["ssimulacra2"] for m, s in zip(by_mode[True], by_mode[False])]
                print("  mean vs sampled details, SSIMULACRA2: " + " ".join(f"L{i + 1} {g:+.2f}" for i, g in enumerate(gains)))
        written.append({"name": name, "path": str(path), **{
            "mean" if m else "sampled": curve for m, curve in by_mode.items()}})
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, nargs="+", help="model files (*.safetensors) or checkpoints (*.pt)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="folder of photos (default: the training photos, whose last --holdout train.py holds out)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--holdout", type=int, default=8,
                       help="the last N photos of --data (sorted): train.py's held-out photos for the same N")
    which.add_argument("--every-photo", action="store_true",
                       help="every photo of --data, for a folder training never reads (e.g. Kodak)")
    p.add_argument("--raw", action="store_true", help="checkpoints: the raw weights, not the moving average")
    p.add_argument("--crop", type=int, default=256,
                   help="top-left crop side in pixels (0: whole photos); 256 is train.py's evaluation")
    p.add_argument("--details", choices=["sampled", "mean", "both"], default="sampled",
                   help="how levels past the cut are filled: sampled (seed 0, train.py's evaluation), "
                        "their mean, or both side by side")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    p.add_argument("--json", type=Path, help="also write every model's per-level curves to this JSON file")
    p.add_argument("--ssimulacra2", action="store_true",
                   help="also score every decode with SSIMULACRA2 and print its BD-rate (slower; needs the "
                        "ssimulacra2 package of Tools/eval/requirements.txt)")
    args = p.parse_args(argv)
    if args.crop != 0 and args.crop < 64:
        raise SystemExit("compare.py: --crop must be 0 (whole photos) or at least 64")
    torch.set_num_threads(args.threads)
    require_files("compare.py", *args.models)
    if not args.every_photo and args.holdout < 1:
        # train.py's --holdout 0 holds nothing out, so it names no photos here either.
        raise SystemExit("compare.py: --holdout must count at least one photo; "
                         "give --every-photo to compare on every photo of --data (a Kodak screen)")
    if not args.data.is_dir():
        raise SystemExit(f"compare.py: --data {args.data} is not a folder of photos")
    photos = list_images(args.data)
    crops = evaluation_crops(photos if args.every_photo else photos[-args.holdout:], args.crop)
    if not crops:
        raise SystemExit(f"compare.py: no photos of at least 64x64 among those chosen from {args.data}")
    if args.ssimulacra2 and not metrics.ssimulacra2_available():
        raise SystemExit("compare.py: --ssimulacra2 needs the ssimulacra2 package: "
                         "pip install -r Tools/eval/requirements.txt")
    with tempfile.TemporaryDirectory(prefix="psic-compare-") as scratch:
        extra = Ssimulacra2Scorer(Path(scratch)) if args.ssimulacra2 else None
        written = compare_models(args, crops, extra)
    if extra is not None:
        print(extra.summary())
    if args.json:
        holdout = None if args.every_photo else args.holdout  # None: every photo of data
        args.json.write_text(json.dumps({"data": str(args.data), "holdout": holdout, "crop": args.crop,
                                         "raw": args.raw, "models": written}, indent=1) + "\n")

if __name__ == "__main__":
    main()
