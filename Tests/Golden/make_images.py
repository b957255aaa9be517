#!/usr/bin/env python3
"""Makes the two synthetic golden test images (committed; re-running rewrites them identically
with the same NumPy/Pillow): gradients, hard edges, a texture, a ring pattern and noise.

    python Tests/Golden/make_images.py      # writes image_64x64.png and image_128x96.png here
"""
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def make(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / (width - 1), yy / (height - 1)
    img = np.stack([200 * u + 30, 180 * v + 40, 220 * (1 - u) * v + 20], axis=-1)   # gradients
    # a hard-edged rectangle and a diagonal edge
    rect = (xx > width * 0.55) & (xx < width * 0.85) & (yy > height * 0.15) & (yy < height * 0.45)
    img[rect] = [240, 230, 40]
    img[(xx + 2 * yy) < width * 0.6] *= 0.35
    # checkerboard texture in the lower left, rings in the lower right
    tex = (yy > height * 0.6) & (xx < width * 0.4)
    img[tex] = np.where((((xx // 3) + (yy // 3)) % 2 == 0)[tex][:, None], [30, 30, 30], [220, 220, 220])
    r = np.hypot(xx - width * 0.75, yy - height * 0.75)
    ring = (yy > height * 0.55) & (xx > width * 0.55)
    img[ring] = (128 + 100 * np.sin(r[ring] * 1.3))[:, None] * np.array([1.0, 0.8, 0.6])
    img += rng.normal(0, 6, img.shape)                                                 # noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    for (w, h, seed) in ((64, 64, 1), (128, 96, 2)):
        Image.fromarray(make(w, h, seed), "RGB").save(HERE / f"image_{w}x{h}.png")


if __name__ == "__main__":
    main()
