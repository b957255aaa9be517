"""Rate-quality plots (matplotlib, Agg) and the PSIC level x sample grid."""
from __future__ import annotations

import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

STYLE = {"psic": ("tab:red", "o"), "psic-mean": ("tab:orange", "o"), "jpeg": ("tab:gray", "s"), "webp": ("tab:green", "^"),
         "avif": ("tab:blue", "D"), "jxl": ("tab:purple", "v")}

LEGEND = {"psic": "PSIC (seed 0)", "psic-mean": "PSIC (mean details)"}


def _axes(ax, agg, metric, label):
    for codec, rows in agg.items():
        rows = [r for r in rows if metric in r]
        if not rows:
            continue
        c, mk = STYLE.get(codec, ("k", "x"))
        ax.plot([r["bpp"] for r in rows], [r[metric] for r in rows], marker=mk, color=c,
                label=LEGEND.get(codec, codec.upper()), ms=4, lw=1.2)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(label)
    ax.set_xlim(0, 2.1)
    ax.grid(alpha=0.3)


def rate_quality(agg, outdir: Path, metrics, labels):
    outdir.mkdir(parents=True, exist_ok=True)
    for m in metrics:
        if not any(m in r for rows in agg.values() for r in rows):
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=90)
        _axes(ax, agg, m, labels[m])
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(outdir / f"rd-{m}.png")
        plt.close(fig)


def headline(agg, path: Path, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8), dpi=80)
    for ax, m in zip(axs, ("psnr", "ms_ssim_db", "ssimulacra2")):
        _axes(ax, agg, m, labels[m])
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, pil_kwargs={"optimize": True})
    plt.close(fig)


def grid(binary: Path, src: Path, stream: Path, path: Path, work: Path, levels=(1, 2, 4, 8),
         samples=4, crop=128, docs_copy: Path | None = None):
    """Rows: levels; columns: original, sampled decodes s0..s{M-1}, then the mean-details decode,
    of one centre crop."""
    work.mkdir(parents=True, exist_ok=True)
    orig = Image.open(src).convert("RGB")
    W, H = orig.size
    box = (W // 2 - crop // 2 + 60, H // 2 - crop // 2, W // 2 + crop // 2 + 60, H // 2 + crop // 2)
    pad, top = 4, 16
    cols = samples + 2
    canvas = Image.new("RGB", (cols * (crop + pad) + 60, len(levels) * (crop + pad) + top), "white")
    d = ImageDraw.Draw(canvas)
    d.text((60, 2), "original", fill="black")
    for s in range(samples):
        d.text((60 + (s + 1) * (crop + pad), 2), f"seed {s}", fill="black")
    d.text((60 + (samples + 1) * (crop + pad), 2), "mean details", fill="black")
    for i, l in enumerate(levels):
        y = top + i * (crop + pad)
        d.text((2, y + crop // 2), f"level {l}", fill="black")
        canvas.paste(orig.crop(box), (60, y))
        out = work / f"{src.stem}_g{l}.png"
        n = samples if l < 8 else 1
        cmd = [str(binary), "decode", str(stream), "-o", str(out), "--force", "--levels", str(l), "--seed", "0",
               "--backend", "cpu"] + (["--samples", str(n)] if n > 1 else [])
        subprocess.run(cmd, check=True, capture_output=True)
        files = [work / f"{src.stem}_g{l}-s{s}.png" for s in range(n)] if n > 1 else [out]
        for s, f in enumerate(files):
            canvas.paste(Image.open(f).convert("RGB").crop(box), (60 + (s + 1) * (crop + pad), y))
        if n > 1:
            mean = work / f"{src.stem}_g{l}-mean.png"
            subprocess.run([str(binary), "decode", str(stream), "-o", str(mean), "--force", "--levels", str(l), "--details", "mean",
                            "--backend", "cpu"], check=True, capture_output=True)
            canvas.paste(Image.open(mean).convert("RGB").crop(box), (60 + (samples + 1) * (crop + pad), y))
        else:
            d.text((60 + 2 * (crop + pad), y + crop // 2), "all levels sent:\nevery seed decodes\nthe same image",
                   fill="black")
    canvas.save(path, optimize=True)
    if docs_copy:
        docs_copy.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(docs_copy, optimize=True)
