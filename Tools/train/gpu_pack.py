#!/usr/bin/env python3
"""Packs what a lent GPU machine needs to train PSIC into .gpu/ (ignored by git), for the device
tool's `run` with carry [".gpu"] and the command `bash Tools/train/gpu-train.sh MINUTES`.

    python Tools/train/gpu_pack.py                 # .gpu/whl and .gpu/train, about 45 MB

That machine has PyTorch, NumPy and safetensors but neither CompressAI nor pytorch-msssim, no
network, and takes at most 64 MiB of working tree and carried files in all (the tree is ~13 MB).
The training photos are 137 MB as PNG, so the training part is re-encoded as JPEG (4:4:4, quality
--quality; 93 measured 42 dB PSNR on every tenth photo in session 50, far above anything the codec
reconstructs), keeping each photo's name stem so that the sorted order, and with it train.py's
held-out split, stays the same; the held-out photos are copied unchanged, so their evaluations
read as here. The wheels are CompressAI's and pytorch-msssim's versions of requirements.txt, for
that machine's Python 3.12.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train.data import list_images  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Packages the GPU machine lacks (its image lists the rest of requirements.txt's needs).
MISSING = ("compressai", "pytorch-msssim")
# Python and platform of that machine's interpreter (/work/.library/device/KINDS.md: Python 3.12,
# glibc recent enough for CompressAI's manylinux_2_34 wheel, the only Linux wheel it publishes).
WHEEL_TARGET = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_34_x86_64",
                "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]


def pinned(requirements: Path, names=MISSING) -> list[str]:
    """`name==version` of each of `names` as requirements.txt pins it."""
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements.read_text(), re.M))
    missing = [n for n in names if n not in pins]
    if missing:
        raise SystemExit(f"gpu_pack.py: {requirements} pins no version of {', '.join(missing)}")
    return [f"{n}=={pins[n]}" for n in names]


def pack_photos(photos: list[Path], holdout: int, out: Path, quality: int) -> tuple[int, int]:
    """Writes the training photos to `out` as JPEG and copies the last `holdout` unchanged;
    returns (photos written, bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    train, held = (photos[:-holdout], photos[-holdout:]) if holdout else (photos, [])
    for p in train:
        with Image.open(p) as im:
            im.convert("RGB").save(out / f"{p.stem}.jpg", quality=quality, subsampling=0)
    for p in held:
        shutil.copyfile(p, out / p.name)
    return len(train) + len(held), sum(f.stat().st_size for f in out.iterdir())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="training photos (default: ../shared/data/train)")
    p.add_argument("--holdout", type=int, default=8, help="last N photos (sorted), copied unchanged: train.py's held-out set")
    p.add_argument("--quality", type=int, default=93, help="JPEG quality of the training photos (4:4:4)")
    p.add_argument("--out", type=Path, default=REPO / ".gpu", help="folder to fill (default: .gpu in the repository)")
    p.add_argument("--budget-mb", type=float, default=48.0,
                   help="refuse a pack larger than this many MB (64 MiB travel in all, the tree included)")
    p.add_argument("--python", default=sys.executable, help="Python whose pip downloads the wheels")
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 100:
        p.error("--quality must lie in 1...100")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    photos = list_images(args.data, option="--data")
    if args.out.exists():
        shutil.rmtree(args.out)
    whl = args.out / "whl"
    subprocess.run([args.python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", *WHEEL_TARGET,
                    "-d", str(whl), *pinned(Path(__file__).resolve().parent / "requirements.txt")], check=True)
    count, photo_bytes = pack_photos(photos, args.holdout, args.out / "train", args.quality)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {count} photos ({photo_bytes / 1e6:.1f} MB, JPEG quality {args.quality} but the last "
          f"{args.holdout}), wheels {', '.join(f.name for f in sorted(whl.iterdir()))}; {total / 1e6:.1f} MB in all")
    if total > args.budget_mb * 1e6:
        raise SystemExit(f"gpu_pack.py: {total / 1e6:.1f} MB is over --budget-mb {args.budget_mb:g}: "
                         f"lower --quality")
    exclude = REPO / ".git" / "info" / "exclude"
    entry = f"/{args.out.resolve().relative_to(REPO)}/" if args.out.resolve().is_relative_to(REPO) else None
    if entry and exclude.parent.is_dir() and entry not in (exclude.read_text() if exclude.exists() else "").split():
        with exclude.open("a") as f:
            f.write(entry + "\n")


if __name__ == "__main__":
    main()
