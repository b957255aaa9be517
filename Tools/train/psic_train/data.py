"""Training images: a folder of PNG/JPEG photos held in memory, served as random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

EXTENSIONS = {".png", ".jpg", ".jpeg", ".ppm", ".bmp"}


def list_images(folder: Path, option: str = "--data") -> list[Path]:
    """The photos of `folder`, sorted by name; a missing or photo-less folder stops the tool with a
    message naming the `option` it came from."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS) if folder.is_dir() else []
    if not files:
        raise SystemExit(f"{folder} holds no photos: pass {option} with a folder of PNG/JPEG photos")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# Side of the held-out evaluation crops (train.py, compare.py, export.py's report).
EVAL_CROP = 256


def evaluation_crops(files: list[Path], size: int = EVAL_CROP) -> list[torch.Tensor]:
    """The held-out evaluation set of train.py and compare.py: each photo's top-left crop of at most
    size x size (the whole photo when size is 0), cut to multiples of 64 (the transforms' total
    stride), as 1x3xHxW floats in [0, 1]; photos under 64x64 are skipped."""
    def side(n: int) -> int:
        return n // 64 * 64 if size == 0 else min(size, n // 64 * 64)
    return [torch.from_numpy(im[:side(im.shape[0]), :side(im.shape[1])].copy())
            .permute(2, 0, 1).float().div(255)[None] for im in map(load_rgb, files)
            if im.shape[0] >= 64 and im.shape[1] >= 64]


class CropSampler:
    """Random crops with random horizontal/vertical flips, from images held as uint8 in RAM."""

    def __init__(self, files: list[Path], crop: int, seed: int = 0):
        images = [load_rgb(p) for p in files]
        self.images = [im for im in images if im.shape[0] >= crop and im.shape[1] >= crop]
        # Images smaller than the crop are left out; callers report it (at --crop 384 only 67 of
        # ../shared/data/train's 492 photos are large enough, a different training set).
        self.skipped = len(images) - len(self.images)
        if not self.images:
            raise SystemExit(f"no image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for b in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(im.shape[0] - self.crop + 1)
            x = self.rng.integers(im.shape[1] - self.crop + 1)
            c = im[y:y + self.crop, x:x + self.crop]
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            if self.rng.random() < 0.5:
                c = c[::-1]
            out[b] = c
        t = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)
        return t.contiguous(memory_format=torch.channels_last)


def pad_to_multiple(img: np.ndarray, m: int = 64) -> np.ndarray:
    """HxWx3 image padded to multiples of m by repeating the last row and column."""
    H, W = img.shape[:2]
    return np.pad(img, ((0, (-H) % m), (0, (-W) % m), (0, 0)), mode="edge")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0)[None]


def random_crops(files: list[Path], n: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """n crops, cycling through a shuffled list of the files (each photo loaded once)."""
    order = rng.permutation(len(files))
    picks = [files[order[i % len(files)]] for i in range(n)]
    out, cache = [], {}
    for p in picks:
        if p not in cache:
            cache = {p: load_rgb(p)}  # keep one image in memory at a time (picks are grouped by cycle)
        img = cache[p]
        if img.shape[0] < crop or img.shape[1] < crop:
            img = pad_to_multiple(img, crop)
        y = rng.integers(img.shape[0] - crop + 1)
        x = rng.integers(img.shape[1] - crop + 1)
        out.append(img[y:y + crop, x:x + crop])
    return np.stack(out)
