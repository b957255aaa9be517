"""Speed, side by side in one run on one machine.

- psic encode / decode (all levels, seed 0) per image, wall time of the process and the time psic
  reports itself (which excludes process start and model loading), on each backend asked for;
- the same architecture with the same weights in PyTorch (CompressAI GDN / EntropyBottleneck
  layers, rebuilt by Tools/train/psic_train/fromfile.py), 2 threads: g_a, h_a, h_s, the 8 entropy-
  parameter steps and g_s, timed as forward passes (no entropy coding; its z prior is fresh, so
  only time is meaningful). CUDA too when a GPU is present;
- the traditional codecs at one mid quality point each (same command lines as the rate sweep);
- batch throughput of `psic encode DIR` (images/s).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from codec_runners import CODECS  # noqa: E402

LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
MID = {"jpeg": 85, "webp": 75, "avif": 30, "jxl": 1.5}
_SELF = re.compile(r"([\d.]+) s \(")


def _timed(cmd, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    m = _SELF.search(r.stdout + r.stderr)
    return wall, float(m.group(1)) if m else None


def _psic_env(backend):
    """The environment of a psic run: lavapipe for Vulkan unless a driver is already chosen."""
    env = dict(os.environ)
    if backend == "vulkan" and "VK_DRIVER_FILES" not in env and Path(LAVAPIPE).exists():
        env["VK_DRIVER_FILES"] = LAVAPIPE
    return env


def psic_times(binary, images, backend, tmp: Path):
    env = _psic_env(backend)
    # One untimed run first: a cold start also pays for filling Mesa's on-disk shader cache (on
    # lavapipe a first-ever encode took 14 s against 2.7 s after it), which is the machine's
    # history, not the codec's cost per image. The CPU backend runs it too: it brings the binary and
    # the model file into the page cache, so both backends' first timed image starts from the same state.
    warm = tmp / f"warmup.{backend}.psic"
    subprocess.run([str(binary), "encode", str(images[0]), "-o", str(warm), "--force", "--backend", backend,
                    "--jobs", "1"], check=True, capture_output=True, env=env)
    subprocess.run([str(binary), "decode", str(warm), "-o", str(tmp / f"warmup.{backend}.png"), "--force",
                    "--backend", backend, "--jobs", "1"], check=True, capture_output=True, env=env)
    enc, dec = [], []
    for img in images:
        s = tmp / f"{img.stem}.{backend}.psic"
        enc.append(_timed([str(binary), "encode", str(img), "-o", str(s), "--force", "--backend", backend,
                           "--jobs", "1"], env))
        dec.append(_timed([str(binary), "decode", str(s), "-o", str(tmp / f"{img.stem}.{backend}.png"), "--force",
                           "--seed", "0", "--backend", backend, "--jobs", "1"], env))
    med = lambda xs, k: statistics.median(x[k] for x in xs) if all(x[k] is not None for x in xs) else None  # noqa: E731
    return {"encode_wall_s": med(enc, 0), "encode_self_s": med(enc, 1),
            "decode_wall_s": med(dec, 0), "decode_self_s": med(dec, 1), "n": len(images)}


def psic_warm(binary, image: Path, backend, repeats):
    """`psic bench codec`: encode and decode of one image in one process, graphs prepared, median
    of `repeats` runs, entropy coding included."""
    env = _psic_env(backend)
    r = subprocess.run([str(binary), "bench", "codec", str(image), "--backend", backend, "--repeats", str(repeats),
                        "--json"], check=True, capture_output=True, text=True, env=env)
    b = json.loads(r.stdout)[0]
    return {"encode_s": b["encodeSeconds"], "decode_s": b["decodeSeconds"], "bytes": b["bytes"],
            "device": b["backend"], "repeats": repeats, "image": image.stem}


def psic_batch(binary, imgdir: Path, tmp: Path, backend="cpu"):
    n = len(list(imgdir.glob("*.png")))
    out = tmp / f"batch-{backend}"
    out.mkdir()
    wall, selft = _timed([str(binary), "encode", str(imgdir), "-o", str(out), "--force", "--backend", backend])
    return {"images": n, "wall_s": wall, "images_per_s": n / wall, "self_s": selft,
            "self_images_per_s": n / selft if selft else None}


def torch_times(img: Path, device="cpu", threads=2, reps=3):
    import numpy as np
    import torch
    from PIL import Image
    sys.path.insert(0, str(REPO / "Tools" / "train"))
    from psic_train.fromfile import model_from_file
    torch.set_num_threads(threads)
    model, _ = model_from_file(REPO / "Models" / "psic-conv.safetensors")
    model = model.eval().to(device)
    x = torch.from_numpy(np.asarray(Image.open(img).convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None].to(device)
    L = model.cfg.L

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def once():
        t = {}
        with torch.no_grad():
            sync(); t0 = time.perf_counter()
            y = model.g_a(x); sync(); t["g_a"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            z = model.h_a(y); z_hat = torch.round(z); sync(); t["h_a"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            hyper = model.h_s(z_hat); sync(); t["h_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ys = y.chunk(L, dim=1)
            dec = []
            for i in range(L):
                mean, sigma, _ = model.level_params(i, hyper, dec)
                dec.append(torch.round(ys[i] - mean) + mean)
            sync(); t["entropy_params"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.g_s(torch.cat(dec, 1)).clamp(0, 1); sync(); t["g_s"] = time.perf_counter() - t0
        return t

    once()
    runs = [once() for _ in range(reps)]
    t = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    t["encode_s"] = t["g_a"] + t["h_a"] + t["h_s"] + t["entropy_params"]
    t["decode_s"] = t["h_s"] + t["entropy_params"] + t["g_s"]
    t.update(device=device, threads=threads, size=f"{x.shape[3]}x{x.shape[2]}", reps=reps)
    return t


def _pixels(path) -> int:
    from PIL import Image
    w, h = Image.open(path).size
    return w * h


def codec_times(images, tmp: Path):
    out = {}
    for name, q in MID.items():
        c = CODECS[name]
        if not c.available():
            continue
        rs = [c.run(img, tmp / name, q) for img in images]
        out[name] = {"quality": q, "encode_s": statistics.median(r["encode_s"] for r in rs),
                     "decode_s": statistics.median(r["decode_s"] for r in rs),
                     "bpp": statistics.mean(8 * r["bytes"] / _pixels(i) for r, i in zip(rs, images)),
                     "command": c.describe()}
    return out


def run_all(images, binary: Path, out: Path, vulkan=False):
    images = list(images)
    res = {"machine": machine(), "images": [i.stem for i in images]}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        print("speed: psic cpu", flush=True)
        res["psic_cpu"] = psic_times(binary, images, "cpu", tmp)
        if vulkan:
            print("speed: psic vulkan", flush=True)
            res["psic_vulkan"] = psic_times(binary, images[:1], "vulkan", tmp)
        print("speed: psic warm (bench codec)", flush=True)
        res["psic_warm_cpu"] = psic_warm(binary, images[0], "cpu", 9)
        if vulkan:
            res["psic_warm_vulkan"] = psic_warm(binary, images[0], "vulkan", 3)
        print("speed: pytorch", flush=True)
        res["torch_cpu"] = torch_times(images[0])
        try:
            import torch
            if torch.cuda.is_available():
                res["torch_cuda"] = torch_times(images[0], "cuda")
        except Exception as e:  # noqa: BLE001
            res["torch_cuda_error"] = str(e)
        print("speed: traditional codecs", flush=True)
        res["codecs"] = codec_times(images, tmp)
        print("speed: psic batch", flush=True)
        res["psic_batch_cpu"] = psic_batch(binary, images[0].parent, tmp)
    (out / "speed.json").write_text(json.dumps(res, indent=1))
    (out / "speed.md").write_text(speed_table(res))
    print(speed_table(res))
    return res


def machine() -> dict:
    m = {"cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                m["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    m["load_at_start"] = os.getloadavg()
    return m


def speed_table(r) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| codec / backend | encode s | decode s | notes |", "|---|---|---|---|"]
    for be in ("cpu", "vulkan"):
        p = r.get(f"psic_{be}")
        if p:
            lines.append(f"| psic {be} (process wall) | {f(p['encode_wall_s'])} | {f(p['decode_wall_s'])} | median of {p['n']} images, --jobs 1, all 8 levels |")
            lines.append(f"| psic {be} (psic's own timer) | {f(p['encode_self_s'])} | {f(p['decode_self_s'])} | excludes process start / model load |")
    for be in ("cpu", "vulkan"):
        w = r.get(f"psic_warm_{be}")
        if w:
            lines.append(f"| psic {be} (warm: `psic bench codec`) | {f(w['encode_s'])} | {f(w['decode_s'])} | "
                         f"{w['image']}, graphs prepared, median of {w['repeats']}, {w['device']}, {w['bytes']} bytes |")
    for dev in ("cpu", "cuda"):
        t = r.get(f"torch_{dev}")
        if t:
            lines.append(f"| PyTorch/CompressAI same model, {dev} | {f(t['encode_s'])} | {f(t['decode_s'])} | "
                         f"{t['threads']} threads, {t['size']}, transforms only (g_a {t['g_a']:.3f}, h_a {t['h_a']:.3f}, "
                         f"h_s {t['h_s']:.3f}, entropy params ×8 {t['entropy_params']:.3f}, g_s {t['g_s']:.3f}); no entropy coding |")
    for name, c in r.get("codecs", {}).items():
        lines.append(f"| {name} (`{c['command']}`, Q={c['quality']}, {c['bpp']:.2f} bpp) | {f(c['encode_s'])} | {f(c['decode_s'])} | process wall, median |")
    b = r.get("psic_batch_cpu")
    if b:
        lines += ["", f"Batch: `psic encode DIR --backend cpu` (default --jobs 2) on {b['images']} images: "
                  f"{b['wall_s']:.1f} s wall → **{b['images_per_s']:.2f} images/s**"
                  + (f" (psic's own timer: {b['self_images_per_s']:.2f} images/s)" if b.get("self_images_per_s") else "")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="../shared/data/kodak", help="folder of PNG images")
    ap.add_argument("--n", type=int, default=3, help="first N images to time")
    ap.add_argument("--out", default="out/eval", help="work folder for streams and decodes")
    ap.add_argument("--psic", default=".build/release/psic", help="the psic executable to time")
    ap.add_argument("--vulkan", action="store_true", help="also time psic --backend vulkan (lavapipe without a GPU: slow)")
    a = ap.parse_args()
    imgs = sorted(Path(a.images).glob("*.png"))[:a.n]
    if not imgs or a.n < 1:
        ap.error(f"--images {a.images} --n {a.n}: no PNG images to time")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    run_all(imgs, Path(a.psic).resolve(), Path(a.out), vulkan=a.vulkan)
