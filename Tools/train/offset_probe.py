#!/usr/bin/env python3
"""What the coder's tables could still save, measured on a model file: its coding offsets
(psic_train/codingoffset.py) against finer or better-fitted ones, and its table shapes against the
symbols' own histograms.

    python Tools/train/offset_probe.py Models/psic-conv.safetensors --test ../shared/data/kodak --test-every 2

Offsets are fitted on random crops of the training photos (--fit-crops of --fit-crop², never the
held-out ones) and priced on whole --test photos, every --test-every-th (padded as the codec pads):
  none          no offsets (format version 1's coder)
  file          the model file's offsets (export.py's, fitted on its calibration crops)
  channel       one offset per channel, fitted on the fit crops (the file's grain)
  channel/B     one per channel and per B-th of the scale-index range (--buckets B), same fit
                (a range the fit crops never reach keeps its channel's offset)
  oracle        one per channel, fitted on the test photos themselves (no file can ship this)
Each row gives the test photos' level bits against `none`, in all and per level. Then the shape
bound: the fit crops' symbols, coded with the file's offsets, against the ideal table of each
(level, coder table) cell fitted to those symbols (tableshape.table_shape_bound): what no table
shape could beat on that data; and tables refitted that way on the fit crops, priced on the test
photos (tableshape.refitted_table_bits): what a format with fitted shapes might really save; and
z's tables refitted the same way (tableshape.refitted_z_bits).
Levels only: z's bits do not depend on the offsets.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train import codingoffset, tableshape  # noqa: E402
from psic_train.data import list_images, load_rgb, pad_to_multiple, random_crops, to_tensor  # noqa: E402
from psic_train.fromfile import model_from_file  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.modelfile import ModelFile  # noqa: E402
from psic_train.quantize import analyse  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number of at least 1")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a model file (*.safetensors) of format version 2")
    p.add_argument("--fit", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="photos the offsets are fitted on (default: ../shared/data/train, all but its last --holdout)")
    p.add_argument("--holdout", type=int, default=8, help="last N photos of --fit left out, as train.py does")
    p.add_argument("--fit-crops", type=positive, default=48, help="random crops of --fit")
    p.add_argument("--fit-crop", type=positive, default=512, help="their side in pixels")
    p.add_argument("--seed", type=int, default=1, help="crop seed (export.py calibrates on seed 0's 256² crops)")
    p.add_argument("--test", type=Path, default=REPO.parent / "shared" / "data" / "kodak",
                   help="photos the offsets are priced on, whole (default: ../shared/data/kodak)")
    p.add_argument("--test-every", type=positive, default=2, help="price every N-th photo of --test")
    p.add_argument("--buckets", type=positive, default=8, help="scale-index buckets of the finer grain")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def encode_all(mf: ModelFile, model, images) -> list[dict]:
    """The file's integer encodes (nearest symbols) of each image [B, 3, H, W] in `images`, each
    with its integer z ("z_hat")."""
    out = []
    with torch.no_grad():
        for x in images:
            y, z = analyse(model, x)
            out.append({**mf.entropy.encode(y.numpy(), z.numpy()), "z_hat": z.numpy()})
    return out


def probe(ent, fit: list[dict], test: list[dict], buckets: int) -> dict:
    """The rows of the offsets table (level bits of `test` per variant) and the shape bound on `fit`."""
    search = codingoffset.SEARCH
    lc = ent.level_channels
    test_costs = codingoffset.offset_costs(ent, test, search, buckets)   # [C, B, offsets]
    fit_costs = codingoffset.offset_costs(ent, fit, search, buckets)
    per_channel = test_costs.sum(axis=1)

    def channel_bits(offsets: np.ndarray) -> np.ndarray:
        return codingoffset.priced(per_channel, offsets, search)

    fitted = codingoffset.best_offsets(fit_costs.sum(axis=1), search)
    # a bucket the fit crops never reach keeps its channel's offset
    fitted_fine = np.where(fit_costs.any(axis=-1), codingoffset.best_offsets(fit_costs, search), fitted[:, None])
    variants = {
        "none": channel_bits(np.zeros(ent.C, np.int64)),
        "file": channel_bits(ent.coding_offset),
        "channel": channel_bits(fitted),
        f"channel/{buckets}": codingoffset.priced(test_costs, fitted_fine, search).sum(axis=1),
        "oracle": channel_bits(codingoffset.best_offsets(per_channel, search)),
    }
    none = variants["none"]
    rows = {name: {"bits": float(bits.sum()), "saving": float(1 - bits.sum() / none.sum()),
                   "level_saving": [float(1 - bits[i * lc:(i + 1) * lc].sum() / none[i * lc:(i + 1) * lc].sum())
                                    for i in range(ent.L)]}
            for name, bits in variants.items()}
    table, ideal = tableshape.table_shape_bound(ent, fit)
    test_table, refit = tableshape.refitted_table_bits(ent, fit, test)

    def saving(a, b):
        return {"saving": float(1 - b.sum() / a.sum()), "level_saving": [float(v) for v in 1 - b / a]}
    z_table, z_refit = tableshape.refitted_z_bits(ent, (e["z_hat"] for e in fit), (e["z_hat"] for e in test))
    return {"offsets": rows, "shape_bound": saving(table, ideal), "refitted_shapes": saving(test_table, refit),
            "refitted_z": {"saving": 1 - z_refit / z_table}}


def main(argv=None) -> None:
    args = parse_args(argv)
    require_files("offset_probe.py", args.model)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    mf = ModelFile(args.model)
    if mf.meta.get("format_version", 1) < 2:
        raise SystemExit(f"{args.model} is a format version 1 file: it has no coding offsets to probe")
    model = model_from_file(args.model)[0].eval()
    fit_files = list_images(args.fit, option="--fit")
    fit_files = fit_files[:-args.holdout] if args.holdout else fit_files
    crops = random_crops(fit_files, args.fit_crops, args.fit_crop, np.random.default_rng(args.seed))
    fit_x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    fit = encode_all(mf, model, (fit_x[s:s + 8] for s in range(0, fit_x.shape[0], 8)))
    test_files = list_images(args.test, option="--test")[::args.test_every]
    test = encode_all(mf, model, (to_tensor(pad_to_multiple(load_rgb(f), 64)) for f in test_files))
    ent = mf.entropy
    result = probe(ent, fit, test, args.buckets)
    print(f"{args.model.name} ({mf.meta['fingerprint']}): offsets fitted on {args.fit_crops} crops of "
          f"{args.fit_crop}² from {len(fit_files)} photos of {args.fit} (seed {args.seed}), priced on "
          f"{len(test_files)} photos of {args.test} ({time.time() - t0:.0f} s)")
    print(f"{'offsets':<12} {'saving':>8}  per level (L1 … L{ent.L}), % of the level bits without offsets")
    for name, row in result["offsets"].items():
        print(f"{name:<12} {100 * row['saving']:7.2f}%  " + " ".join(f"{100 * v:.2f}" for v in row["level_saving"]))
    b = result["shape_bound"]
    print(f"shape bound on the fit crops (their own histogram per level and coder table, file's offsets): "
          f"{100 * b['saving']:.2f}% fewer level bits; per level " + " ".join(f"{100 * v:.2f}" for v in b["level_saving"]))
    r = result["refitted_shapes"]
    print(f"tables refitted on the fit crops (histogram per level and coder table, {tableshape.PRIOR_WEIGHT:g} "
          f"pseudo-counts of the Gaussian), priced on the test photos: {100 * r['saving']:.2f}% fewer level bits; "
          f"per level " + " ".join(f"{100 * v:.2f}" for v in r["level_saving"]))
    print(f"z's tables refitted on the fit crops the same way, priced on the test photos: "
          f"{100 * result['refitted_z']['saving']:.2f}% fewer z bits")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "fingerprint": mf.meta["fingerprint"],
                                         "fit": {"folder": str(args.fit), "crops": args.fit_crops, "crop": args.fit_crop,
                                                 "seed": args.seed},
                                         "test": [f.name for f in test_files], "buckets": args.buckets, **result},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
