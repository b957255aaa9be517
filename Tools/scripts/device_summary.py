"""Summaries for Tools/scripts/device-check.sh (numpy and Pillow, as on the GPU machine).

    python3 device_summary.py kernels KERNELS.json   per-layer table; exit 1 if an integer layer differs
    python3 device_summary.py decodes DIR            compares DIR/{gpu,cpu}-on-{gpu,cpu}.png; exit 1 past 2 levels
"""
import json
import sys
from pathlib import Path


def kernels(path):
    report = json.load(open(path))
    for k in report["kernels"]:
        a = k.get("agreement") or {}
        rate = k["gflop"] / max(k["kernelSeconds"], 1e-12)
        rel = a.get("maxAbsDifference", 0.0) / max(a.get("maxAbsReference", 1.0), 1e-30)
        agree = "-" if not a else ("exact" if a["differing"] == 0 else f"{a['differing']} differ, rel {rel:.1e}")
        print(f"{k['backend'][:40]:40} {k['layer']:8} {k['kernelSeconds'] * 1e3:9.3f} ms {rate:9.1f} GFLOP/s  {agree}")
    for t in report["transforms"]:
        print(f"{t['backend'][:40]:40} {t['transform']:16} {t['kernelSeconds'] * 1e3:9.3f} ms")
    for a in report["analysisConvs"]:
        print(f"{a['backend'][:40]:40} g_a 5x5/2 convs {a['kernelGFLOPS']:9.1f} GFLOP/s "
              f"({a['relativeToFirst'] * 100:.0f} % of the first backend)")
    bad = [k["layer"] for k in report["kernels"]
           if (k.get("agreement") or {}).get("integer") and k["agreement"]["differing"] > 0]
    if bad:
        sys.exit(f"integer layers differ from the CPU backend: {bad}")


def decodes(folder):
    import numpy as np
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
    from metrics import load_rgb, psnr  # Tools/eval's (numpy and Pillow only)
    worst = 0
    for stream in ("gpu", "cpu"):
        a, b = load_rgb(f"{folder}/{stream}-on-gpu.png"), load_rgb(f"{folder}/{stream}-on-cpu.png")
        d = np.abs(a.astype(np.int32) - b.astype(np.int32))
        print(f"{stream}-encoded stream decoded on the GPU vs on the CPU: max |diff| {d.max()}, PSNR {psnr(a, b):.1f} dB")
        worst = max(worst, int(d.max()))
    if worst > 2:
        sys.exit(f"decodes differ by up to {worst} levels: more than g_s's float rounding")


if __name__ == "__main__":
    {"kernels": kernels, "decodes": decodes}[sys.argv[1]](sys.argv[2])
