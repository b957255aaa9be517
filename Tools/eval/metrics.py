"""Image quality metrics. Images are HxWx3 uint8 RGB arrays (or PNG paths for the tool-based ones).

- PSNR: RGB, 8-bit peak 255, MSE over all pixels and channels.
- MS-SSIM: pytorch_msssim (5 scales, Gaussian window 11/1.5, data_range 255) on RGB.
- SSIMULACRA2: the `ssimulacra2` PyPI package (a NumPy/SciPy re-implementation; Debian 12's
  libjxl-tools 0.7 ships no ssimulacra2 binary). Higher is better (100 = identical).
- Butteraugli: Debian's `butteraugli` tool (Google's butteraugli, max-norm distance). Lower is better.
- LPIPS: only with local weight files (`evaluate.py --lpips-weights FILE...`; the network is
  Tools/train/psic_train/perceptual.py's, built from torchvision's architecture with the given
  weights, nothing downloaded). None ship here, so by default it is skipped. DISTS: not implemented
  (it too needs pretrained weights).
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image


def load_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    m = mse(a, b)
    return float("inf") if m == 0 else 10.0 * math.log10(peak * peak / m)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM), as learned-compression papers plot it
    (a perfect match is capped at 100 dB)."""
    return 100.0 if value >= 1.0 else min(100.0, -10.0 * math.log10(1.0 - value))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from pytorch_msssim import ms_ssim as _ms
    ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].double()
    return float(_ms(ta, tb, data_range=255.0, size_average=True))


def _ssimulacra2_module():
    """The `ssimulacra2` package, or None where it is not installed: the one place that probes it."""
    try:
        import ssimulacra2
    except ImportError:
        return None
    return ssimulacra2


def ssimulacra2_available() -> bool:
    """Whether `ssimulacra2` can score (its package is installed)."""
    return _ssimulacra2_module() is not None


def ssimulacra2(ref_path, dist_path) -> float | None:
    """SSIMULACRA2 of two image files, or None where the package is missing."""
    s2 = _ssimulacra2_module()
    return None if s2 is None else float(s2.compute_ssimulacra2(str(ref_path), str(dist_path)))


_FLOAT = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def butteraugli(ref_path, dist_path) -> float | None:
    if not shutil.which("butteraugli"):
        return None
    r = subprocess.run(["butteraugli", str(ref_path), str(dist_path)], capture_output=True,
                       text=True, check=True)
    m = _FLOAT.search(r.stdout)
    return float(m.group(0)) if m else None


def available() -> dict[str, str]:
    """Metric name -> provider ('' where missing)."""
    out = {"psnr": "numpy", "ms_ssim": "pytorch_msssim"}
    s2 = _ssimulacra2_module()
    out["ssimulacra2"] = f"ssimulacra2 {s2.__version__} (PyPI)" if s2 else ""
    out["butteraugli"] = shutil.which("butteraugli") and "butteraugli (Debian)" or ""
    out["lpips"] = f"LPIPS-{_LPIPS['net']} from local weights" if lpips_enabled() else ""
    out["dists"] = ""
    return out


def all_metrics(ref_path, dist_path, ref: np.ndarray | None = None, full: bool = True) -> dict:
    """PSNR and MS-SSIM always; SSIMULACRA2 and Butteraugli when `full`."""
    ref = load_rgb(ref_path) if ref is None else ref
    dist = load_rgb(dist_path)
    out = {"psnr": psnr(ref, dist), "ms_ssim": ms_ssim(ref, dist)}
    if full:
        out["ssimulacra2"] = ssimulacra2(ref_path, dist_path)
        out["butteraugli"] = butteraugli(ref_path, dist_path)
        if lpips_enabled():
            out["lpips"] = lpips(ref, dist)
    return out


def sample_spread(images: list[np.ndarray]) -> float:
    """Mean pairwise PSNR between sampled decodes (higher = members more alike)."""
    vals = [psnr(images[i], images[j]) for i in range(len(images)) for j in range(i + 1, len(images))]
    return float(np.mean(vals)) if vals else float("nan")


# --- LPIPS (optional, local weights only) ------------------------------------------------------
_LPIPS = {"paths": None, "net": "alex", "model": None}
REPO = Path(__file__).resolve().parents[2]


def configure_lpips(paths, net: str = "alex"):
    """Enables LPIPS with local weight files (call before forking workers)."""
    _LPIPS.update(paths=[str(p) for p in paths] if paths else None, net=net, model=None)


def lpips_enabled() -> bool:
    return bool(_LPIPS["paths"])


def lpips(a: np.ndarray, b: np.ndarray) -> float | None:
    if not _LPIPS["paths"]:
        return None
    import sys
    import torch
    if _LPIPS["model"] is None:
        sys.path.insert(0, str(REPO / "Tools" / "train"))
        from psic_train.perceptual import LPIPS
        _LPIPS["model"] = LPIPS(_LPIPS["net"]).load_weights(_LPIPS["paths"])
    t = lambda x: torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    with torch.no_grad():
        return float(_LPIPS["model"](t(b), t(a)))
