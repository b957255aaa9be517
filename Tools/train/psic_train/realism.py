"""A realism measure that needs no downloaded network: how far the local structure of a set of
decodes lies, as a distribution, from that of the photos they decode.

Every metric this machine had (PSNR, MS-SSIM, SSIMULACRA2) compares a decode with its own photo,
and each rewards details sampled narrower than trained, toward their mean (session 50). What the
synonymous decode is for, details that look real, is a property of the decodes as a set: their
local statistics should be those of photos. FID measures that in the features of a pretrained
Inception network, which cannot be downloaded here. This measure follows the sliced Wasserstein
distance of Karras et al. (ICLR 2018, "Progressive growing of GANs", section 5): patches of a
Laplacian pyramid, one set per band, compared as distributions by their one-dimensional
projections (POT's `sliced_wasserstein_distance`).

Two choices differ from that paper, for a codec:
- Both patch sets of a band are normalised by the *photos'* per-channel mean and deviation (the
  paper normalises each set by its own), so a decode that lost a band's energy, the blur of a
  mean-details decode, is not rescaled back to look like the photos.
- The photos' set is cut at one set of positions and every decode's at a second (both drawn once,
  seeded), the same for every decode, so two models' distances differ by their decodes, not by
  where patches fell. A decode that is the photo scores the floor (the photos at the second
  positions against the first), and so does one whose details are real but not the photo's: the
  measure does not reward fidelity. (Cut at the photos' own positions, a faithful decode would
  score near 0 and a realistic one near the floor, a fidelity measure again.)

The floor is not 0: two finite samples of one distribution lie apart. A decode is as real as this
measure can tell when it scores the floor; differences of a few per cent of it are noise (compare
two seeds). The measure sees the statistics of 7x7 neighbourhoods at four
scales, not objects or semantics, and it was not validated against viewers; it ranks decodes of the
same photos, and is no substitute for FID or a viewing test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The binomial 5-tap low-pass filter of Burt and Adelson's Laplacian pyramid.
_TAPS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur of N x C x H x W, reflecting at the borders."""
    c = x.shape[1]
    k = _TAPS.to(x.dtype)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def _down(x: torch.Tensor) -> torch.Tensor:
    return binomial_blur(x)[:, :, ::2, ::2]


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero insertion to `size`, then the blur with the taps doubled in each direction (x 4)."""
    out = x.new_zeros(x.shape[0], x.shape[1], *size)
    out[:, :, ::2, ::2] = x
    return 4.0 * binomial_blur(out)


def laplacian_pyramid(x: torch.Tensor, bands: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The `bands` band-pass images of N x C x H x W, finest first (each half the previous side),
    and the low-pass remainder: x is the remainder upsampled back through the bands plus each
    band (`collapse`)."""
    out = []
    for _ in range(bands):
        low = _down(x)
        out.append(x - _up(low, x.shape[-2:]))
        x = low
    return out, x


def collapse(bands: list[torch.Tensor], low: torch.Tensor) -> torch.Tensor:
    """The image a Laplacian pyramid was taken of."""
    for band in reversed(bands):
        low = band + _up(low, band.shape[-2:])
    return low


@dataclass(frozen=True)
class RealismConfig:
    bands: int = 4            # Laplacian bands, finest first (the paper went from 16x16 to full size)
    patch: int = 7            # patch side, as in the paper
    per_image: int = 256      # patches per photo and band
    projections: int = 512    # random directions of the sliced distance
    seed: int = 0             # the positions' and the directions' seed


def _positions(rng: np.random.Generator, shape: tuple[int, int], patch: int, count: int):
    h, w = shape
    if h < patch or w < patch:
        raise ValueError(f"a {h}x{w} band is smaller than a {patch}x{patch} patch: use fewer bands")
    return rng.integers(0, h - patch + 1, count), rng.integers(0, w - patch + 1, count)


def _cut(band: torch.Tensor, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """The patches of a 1 x C x h x w band at the given top-left corners, one row of C*patch*patch
    values each."""
    windows = band[0].unfold(1, patch, 1).unfold(2, patch, 1)   # C x h' x w' x patch x patch
    picked = windows[:, torch.as_tensor(rows), torch.as_tensor(cols)]   # C x n x patch x patch
    return picked.permute(1, 0, 2, 3).reshape(len(rows), -1).numpy().astype(np.float64)


class RealismMeter:
    """The photos' patch sets, and the distance of a set of decodes of the same photos to them.

    `add(key, index, image)` cuts the patches of a decode of photo `index` (in the order the meter
    was given the photos) under `key` (e.g. a model and a level); `distances(key)` is one sliced
    distance per band (x 1000, as the paper printed them) once every photo has a decode there."""

    def __init__(self, photos: list[torch.Tensor], config: RealismConfig = RealismConfig()):
        import ot   # POT (Tools/eval/requirements.txt), imported here so the rest of psic_train needs no POT
        self._ot = ot
        self.config = config
        rng = np.random.default_rng(config.seed)
        self._corners = []
        ref: list[list[np.ndarray]] = [[] for _ in range(config.bands)]
        floor: list[list[np.ndarray]] = [[] for _ in range(config.bands)]
        for photo in photos:
            bands, _ = laplacian_pyramid(photo, config.bands)
            ref_corners = [_positions(rng, b.shape[-2:], config.patch, config.per_image) for b in bands]
            corners = [_positions(rng, b.shape[-2:], config.patch, config.per_image) for b in bands]
            self._corners.append(corners)   # where every decode is cut
            for k, band in enumerate(bands):
                ref[k].append(_cut(band, *ref_corners[k], config.patch))
                floor[k].append(_cut(band, *corners[k], config.patch))
        self._shapes = [tuple(p.shape[-2:]) for p in photos]
        stacked = [np.concatenate(r) for r in ref]
        self._mean = [s.reshape(len(s), photos[0].shape[1], -1).mean(axis=(0, 2)) for s in stacked]
        self._std = [s.reshape(len(s), photos[0].shape[1], -1).std(axis=(0, 2)) + 1e-12 for s in stacked]
        self._ref = [self._normalise(k, s) for k, s in enumerate(stacked)]
        self._floor = [self._normalise(k, np.concatenate(f)) for k, f in enumerate(floor)]
        self._sets: dict[object, dict[int, list[np.ndarray]]] = {}

    def _normalise(self, band: int, patches: np.ndarray) -> np.ndarray:
        n = len(patches)
        c = len(self._mean[band])
        per = patches.reshape(n, c, -1)
        return ((per - self._mean[band][None, :, None]) / self._std[band][None, :, None]).reshape(n, -1)

    def add(self, key, index: int, image: torch.Tensor) -> None:
        """Cuts the patches of `image`, a decode (1 x C x H x W, in [0, 1]) of photo `index`."""
        if tuple(image.shape[-2:]) != self._shapes[index]:
            raise ValueError(f"a decode of {tuple(image.shape[-2:])} for photo {index} of {self._shapes[index]}")
        bands, _ = laplacian_pyramid(image.detach().float().cpu(), self.config.bands)
        self._sets.setdefault(key, {})[index] = [_cut(b, *self._corners[index][k], self.config.patch)
                                                 for k, b in enumerate(bands)]

    def _distance(self, band: int, patches: np.ndarray) -> float:
        return 1000 * float(self._ot.sliced_wasserstein_distance(
            self._ref[band], patches, n_projections=self.config.projections, seed=self.config.seed))

    def floor(self) -> list[float]:
        """The photos cut where the decodes are, per band: what a decode that is the photo scores."""
        return [self._distance(k, f) for k, f in enumerate(self._floor)]

    def distances(self, key) -> list[float]:
        """The distance of the decodes under `key` to the photos, per band, finest first."""
        got = self._sets.get(key, {})
        if len(got) != len(self._corners):
            raise ValueError(f"{key!r} has decodes of {len(got)} of the {len(self._corners)} photos")
        return [self._distance(k, self._normalise(k, np.concatenate([got[i][k] for i in range(len(got))])))
                for k in range(self.config.bands)]
