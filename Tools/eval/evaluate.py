#!/usr/bin/env python3
"""PSIC vs JPEG / WebP / AVIF / JPEG XL (and CompressAI for speed): rate-quality and speed.

    python Tools/eval/evaluate.py --images ../shared/data/kodak --out out/eval [--limit N]
        [--codecs psic,jpeg,webp,avif,jxl] [--workers 2] [--skip-speed] [--skip-metrics]

Writes under --out: cache/ (one JSON per (codec, image, quality); reruns resume), per_image.csv,
summary.json, bdrate.md, curves.md, plots/*.png, grid.png, speed.md / speed.json.
Run from the repository root (the psic binary and its default model are found from there).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import struct
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bdrate  # noqa: E402
import metrics  # noqa: E402
import reference  # noqa: E402
import results_doc  # noqa: E402
from codec_runners import CODECS, PSIC  # noqa: E402

METRICS = ("psnr", "ms_ssim", "ssimulacra2", "butteraugli", "lpips")
# BD-rates and plots take MS-SSIM in dB, -10 log10(1 - MS-SSIM), averaged per image: on the
# linear scale the curves crowd near 1 and the cubic fit of a BD-rate is poorly conditioned
# (cubic and pchip differed by up to 14 points on linear values, by under 1 on dB).
RD_METRICS = ("psnr", "ms_ssim_db", "ssimulacra2", "butteraugli", "lpips")
LABEL = {"psnr": "PSNR (dB, RGB)", "ms_ssim": "MS-SSIM", "ms_ssim_db": "MS-SSIM (dB)", "ssimulacra2": "SSIMULACRA2",
         "butteraugli": "Butteraugli (max-norm, lower is better)", "lpips": "LPIPS (lower is better)"}


def _single_thread():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


def _pixels(path) -> int:
    from PIL import Image
    w, h = Image.open(path).size
    return w * h


def task_codec(args):
    name, q, img, out = args
    cache = reference.cache_path(out, name, Path(img).stem, q)
    if cache.exists():
        return json.loads(cache.read_text())
    _single_thread()
    codec = CODECS[name]
    r = codec.run(Path(img), Path(out) / "work" / name, q)
    m = metrics.all_metrics(img, r["decoded"])
    Path(r["decoded"]).unlink()
    rec = {"codec": name, "quality": q, "image": Path(img).stem, "bytes": r["bytes"],
           "bpp": 8.0 * r["bytes"] / _pixels(img), "encode_s": r["encode_s"],
           "decode_s": r["decode_s"], **m}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rec))
    return rec


def psic_model_path() -> Path:
    """The model the psic runs use: $PSIC_MODEL, else the repository's shipped model (psic's
    default when run from the repository root)."""
    return Path(os.environ.get("PSIC_MODEL") or HERE.parents[1] / "Models" / "psic-conv.safetensors")


def psic_model_fingerprint() -> str:
    """The fingerprint of `psic_model_path()`. PSIC's cache entries are kept per fingerprint, so a
    new model is never measured from an old model's cache."""
    path = psic_model_path()
    try:
        return results_doc.model_metadata(path)["fingerprint"]
    except (OSError, KeyError, ValueError, struct.error) as e:
        sys.exit(f"evaluate.py: cannot read the model fingerprint of {path}: {e}")


def psic_binary_id(path: Path) -> str:
    """The first 12 hex digits of the SHA-256 of the psic executable. PSIC's cache entries are kept
    per model and per executable: the streams depend on the encoder as well as on the model (session
    34 changed the substream rule and every level's size), so a rebuilt psic is measured afresh."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError as e:
        sys.exit(f"evaluate.py: cannot read the psic executable {path}: {e.strerror}")


def psic_cache_dir(out: Path, model: str, binary: str) -> Path:
    return Path(out) / "cache" / "psic" / model / binary


def task_psic(args):
    binary, samples, img, out, model, binary_id = args
    # The sample count is in the name: an image measured with other samples is measured again.
    cache = psic_cache_dir(out, model, binary_id) / f"{Path(img).stem}-m{samples}.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        # Entries cached before the mean-details decodes existed are measured again.
        if any(r["codec"] == "psic-mean" for r in cached):
            return cached
    _single_thread()
    psic = PSIC(Path(binary), backend="cpu", samples=samples)
    r = psic.run(Path(img), Path(out) / "work" / "psic")
    ref = metrics.load_rgb(img)
    npx = ref.shape[0] * ref.shape[1]
    recs = []
    for lv in r["levels"]:
        m = metrics.all_metrics(img, lv["decoded"][0], ref=ref)
        decs = [metrics.load_rgb(p) for p in lv["decoded"]]
        rec = {"codec": "psic", "model": model, "binary": binary_id, "quality": lv["level"], "image": Path(img).stem,
               "bytes": lv["bytes"], "bpp": 8.0 * lv["bytes"] / npx,
               "encode_s": r["encode_s"], "decode_s": lv["decode_s"], **m}
        if len(decs) > 1:
            rec["exp_psnr"] = float(np.mean([m["psnr"]] + [metrics.psnr(ref, d) for d in decs[1:]]))
            rec["exp_ms_ssim"] = float(np.mean([m["ms_ssim"]] + [metrics.ms_ssim(ref, d) for d in decs[1:]]))
            rec["spread_psnr"] = metrics.sample_spread(decs)
            rec["samples"] = len(decs)
        else:   # all levels transmitted: nothing is sampled, every seed decodes the same image
            rec["exp_psnr"], rec["exp_ms_ssim"] = m["psnr"], m["ms_ssim"]
            rec["spread_psnr"] = float("inf")
        if samples <= 1:   # not sampled: no sample statistics for this image
            rec["exp_psnr"] = rec["exp_ms_ssim"] = rec["spread_psnr"] = None
        recs.append(rec)
        if "mean_decoded" in lv:
            same = lv["mean_decoded"] == lv["decoded"][0]
            mm = m if same else metrics.all_metrics(img, lv["mean_decoded"], ref=ref)
            recs.append({"codec": "psic-mean", "model": model, "binary": binary_id, "quality": lv["level"],
                         "image": Path(img).stem,
                         "bytes": lv["bytes"], "bpp": 8.0 * lv["bytes"] / npx, "encode_s": r["encode_s"], **mm})
            if not same:
                Path(lv["mean_decoded"]).unlink()
        for p in lv["decoded"]:
            Path(p).unlink()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(recs))
    return recs


def aggregate(records):
    """codec -> list of per-quality means (only qualities every image has)."""
    by = {}
    for r in records:
        by.setdefault(r["codec"], {}).setdefault(r["quality"], []).append(r)
    images = {r["image"] for r in records}
    out = {}
    for codec, qs in by.items():
        rows = []
        for q, rs in qs.items():
            if {r["image"] for r in rs} != images:
                continue
            row = {"quality": q, "n": len(rs)}
            for k in ("bpp", "bytes", "encode_s", "decode_s", *METRICS):
                vals = [r.get(k) for r in rs]
                if all(v is not None for v in vals):
                    row[k] = float(np.mean(vals))
            if "ms_ssim" in row:
                row["ms_ssim_db"] = float(np.mean([metrics.ms_ssim_db(r["ms_ssim"]) for r in rs]))
            # Sample statistics exist only for the images decoded with M > 1 samples; the seed-0
            # PSNR / MS-SSIM over the same images come along so the two can be compared.
            sub = [r for r in rs if r.get("exp_psnr") is not None]
            if sub:
                row["n_sampled"] = len(sub)
                row["samples"] = max(r.get("samples", 0) for r in sub)
                for k in ("exp_psnr", "exp_ms_ssim", "spread_psnr"):
                    row[k] = float(np.mean([r[k] for r in sub]))
                row["psnr_sampled_imgs"] = float(np.mean([r["psnr"] for r in sub]))
                row["ms_ssim_sampled_imgs"] = float(np.mean([r["ms_ssim"] for r in sub]))
            rows.append(row)
        rows.sort(key=lambda r: r["bpp"])
        out[codec] = rows
    order = ["psic", "psic-mean", "jpeg", "webp", "avif", "jxl"]
    return {c: out[c] for c in sorted(out, key=lambda c: order.index(c) if c in order else 99)}


TESTS = {"psic": "PSIC (level 1-8, seed-0 decodes)",
         "psic-mean": "PSIC with mean details (level 1-8, `psic decode --details mean`)"}


def bd_tables(agg, test="psic") -> str:
    lines = []
    anchors = [c for c in ("jpeg", "webp", "avif", "jxl") if c in agg]
    if test not in agg or not anchors:
        return ""
    for method in ("cubic", "pchip"):
        lines += [f"BD-rate of {TESTS[test]} against each codec, {method} "
                  f"interpolation, in % (negative = PSIC needs fewer bits at equal quality; "
                  f"`n/o` = quality ranges do not overlap).", "",
                  "| metric | " + " | ".join(anchors) + " |",
                  "|---|" + "---|" * len(anchors)]
        for m in RD_METRICS:
            t = agg[test]
            if any(m not in r for r in t):
                continue
            cells = []
            for a in anchors:
                ar = agg[a]
                if any(m not in r for r in ar):
                    cells.append("—")
                    continue
                v = bdrate.curve_bd_rate(ar, t, m, method)
                ov = bdrate.overlap([r[m] for r in ar], [r[m] for r in t])
                cells.append("n/o" if v != v else f"{v:+.1f} ({ov[0]:.3g}–{ov[1]:.3g})")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("In brackets: the overlapping quality interval the average is taken over.")
    return "\n".join(lines) + "\n"


def curves_table(agg) -> str:
    lines = []
    for codec, rows in agg.items():
        extra = codec == "psic"
        has_lpips = bool(rows) and all("lpips" in r for r in rows)
        hdr = ["q/level", "bpp", "PSNR", "MS-SSIM", "MS-SSIM (dB)", "SSIMULACRA2", "Butteraugli"] + (["LPIPS"] if has_lpips else [])
        ns = max((r.get("n_sampled", 0) for r in rows), default=0) if extra else 0
        if extra and ns:
            samples = max((r.get("samples", 0) for r in rows), default=0)
            hdr += [f"PSNR s0 ({ns} img)", f"E[PSNR] (M={samples or '?'})", f"MS-SSIM s0 ({ns} img)", "E[MS-SSIM]",
                    "spread: PSNR between samples"]
        lines += [f"**{codec}** (mean over {rows[0]['n'] if rows else 0} images)", "",
                  "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for r in rows:
            cells = [str(r["quality"]), f"{r['bpp']:.3f}", f"{r.get('psnr', float('nan')):.2f}",
                     f"{r.get('ms_ssim', float('nan')):.4f}", f"{r.get('ms_ssim_db', float('nan')):.2f}",
                     f"{r['ssimulacra2']:.1f}" if "ssimulacra2" in r else "—",
                     f"{r['butteraugli']:.2f}" if "butteraugli" in r else "—"]
            if has_lpips:
                cells.append(f"{r['lpips']:.4f}")
            if extra and ns:
                sp = r.get("spread_psnr", float("nan"))
                cells += [f"{r.get('psnr_sampled_imgs', float('nan')):.2f}",
                          f"{r.get('exp_psnr', float('nan')):.2f}",
                          f"{r.get('ms_ssim_sampled_imgs', float('nan')):.4f}",
                          f"{r.get('exp_ms_ssim', float('nan')):.4f}",
                          "∞ (nothing sampled)" if sp == float("inf") else f"{sp:.2f} dB"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def level_gains(records, codec="psic") -> str:
    """The smallest PSNR gain from one level to the next over every image, as a sentence:
    `psic encode --min-psnr` bisects over the levels and assumes the PSNR grows with them
    (Sources/PSICCodec/QualityTarget.swift); each sweep re-checks it."""
    by = {}
    for r in records:
        if r["codec"] == codec and r.get("psnr") is not None:
            by.setdefault(r["image"], {})[int(r["quality"])] = r["psnr"]
    worst = None
    for image, levels in sorted(by.items()):
        ls = sorted(levels)
        for lo, hi in zip(ls, ls[1:]):
            gain = levels[hi] - levels[lo]
            if worst is None or gain < worst[0]:
                worst = (gain, image, lo, hi)
    if worst is None:
        return ""
    gain, image, lo, hi = worst
    verdict = "PSNR grows with the level on every image" if gain > 0 else \
        "PSNR does NOT grow with the level on every image: `--min-psnr` may keep a level more than needed"
    return (f"Smallest PSNR gain from one {codec} level to the next: {gain:+.2f} dB ({image}, level {lo} → {hi}, "
            f"{len(by)} images): {verdict}.\n")


def measured_on(out: Path, model: str, binary: str) -> str:
    """When this model's PSIC entries were measured with this executable: the newest of their cache
    files (a run from the cache, --skip-metrics, keeps the date of the measurement, not of the tables)."""
    files = list(psic_cache_dir(out, model, binary).glob("*.json"))
    t = max((f.stat().st_mtime for f in files), default=time.time())
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def seed_from_reference(option, images_dir, out, images, tools):
    """Seeds the cache from the reference file (`--reference`; by default the committed one for
    this image folder, when there is one). The reference holds no LPIPS: with LPIPS on, nothing
    is seeded."""
    if not tools or option == "none" or metrics.lpips_enabled():
        return
    path = Path(option) if option else HERE / "reference" / f"{Path(images_dir).resolve().name}.json"
    if not path.exists():
        if option:
            sys.exit(f"evaluate.py: no reference file {path}")
        return
    for c, what in reference.seed_cache(path, out, images, tools).items():
        print(f"{c}: {what} ({path})", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="../shared/data/kodak", help="folder of PNG images to evaluate on")
    ap.add_argument("--out", default="out/eval", help="work folder: streams, decodes, cached metrics, tables and plots")
    ap.add_argument("--limit", type=int, default=0, help="first N images only")
    ap.add_argument("--codecs", default="psic,jpeg,webp,avif,jxl", help="comma-separated codecs to run")
    ap.add_argument("--workers", type=int, default=2, help="encode/decode/metric processes run at once")
    ap.add_argument("--samples", type=int, default=4, help="PSIC sampled decodes per level < L")
    ap.add_argument("--sample-images", type=int, default=0,
                    help="sampled decodes (spread, expected distortion) on the first K images only "
                         "(0 = all); the others get seed-0 decodes only")
    ap.add_argument("--psic", default=".build/release/psic", help="the psic executable to measure")
    ap.add_argument("--grid-image", default="kodim23", help="image (name without .png) of the per-level grid figure")
    ap.add_argument("--skip-metrics", action="store_true", help="only tables/plots from the cache")
    ap.add_argument("--skip-speed", action="store_true", help="leave out the side-by-side speed run (speed.py)")
    ap.add_argument("--skip-grid", action="store_true", help="leave out the per-level grid figure")
    ap.add_argument("--speed-images", type=int, default=3, help="first N images the speed run times")
    ap.add_argument("--speed-vulkan", action="store_true",
                    help="also time psic --backend vulkan (lavapipe on a CPU-only machine: slow)")
    ap.add_argument("--lpips-weights", nargs="+", default=None,
                    help="local LPIPS weight files (backbone + linear heads, see "
                         "Tools/train/psic_train/perceptual.py); use a fresh --out, cached results "
                         "without LPIPS are not recomputed")
    ap.add_argument("--lpips-net", default="alex", choices=["alex", "vgg"], help="LPIPS backbone of --lpips-weights")
    ap.add_argument("--docs", default="",
                    help="copy the headline plots to this folder (e.g. docs) and rewrite the measured blocks "
                         "of its results.md and of README.md beside it (Tools/eval/results_doc.py); "
                         "needs the whole image set and every codec")
    ap.add_argument("--reference", default=None,
                    help="committed results of the other codecs to reuse where the images and tool versions "
                         "match (default Tools/eval/reference/<images folder name>.json when it exists; "
                         "'none' measures everything)")
    ap.add_argument("--write-reference", default=None, metavar="FILE",
                    help="write this run's results of the other codecs, with the tool versions, to FILE")
    a = ap.parse_args(argv)

    if a.docs and (a.limit or set(a.codecs.split(",")) != {"psic", "jpeg", "webp", "avif", "jxl"}):
        ap.error("--docs rewrites the published figures: run it on the whole image set (no --limit) "
                 "with every codec (the default --codecs)")
    if a.docs:
        try:
            results_doc.check_documents(Path(a.docs) / "results.md", Path(a.docs).resolve().parent / "README.md",
                                        speed=not a.skip_speed)
        except results_doc.ResultsDocError as e:
            ap.error(f"--docs: {e}")
    images = sorted(Path(a.images).glob("*.png"))
    if not images:
        ap.error(f"--images {a.images}: no PNG images there")
    if a.limit:
        images = images[:a.limit]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics.configure_lpips(a.lpips_weights, a.lpips_net)
    codecs = [c for c in a.codecs.split(",") if c]
    for c in codecs:
        if c != "psic" and not CODECS[c].available():
            sys.exit(f"{c}: tools {CODECS[c].tools} missing (apt-get install {' '.join(CODECS[c].packages)})")
    print(f"{len(images)} images, codecs {codecs}, metrics {metrics.available()}", flush=True)

    others = {c: (CODECS[c].packages, CODECS[c].tools, CODECS[c].command_lines()) for c in codecs if c != "psic"}
    tools = reference.toolchain(others) if others else {}
    seed_from_reference(a.reference, a.images, out, images, tools)

    model = psic_model_fingerprint() if "psic" in codecs else ""
    binary_id = psic_binary_id(Path(a.psic)) if "psic" in codecs else ""
    if model:
        print(f"psic model {model}, executable {binary_id}", flush=True)
    tasks = []      # image by image, so an interrupted run leaves whole images in the cache
    for k, i in enumerate(images):
        if "psic" in codecs:
            m = a.samples if (a.sample_images <= 0 or k < a.sample_images) else 1
            tasks.append((task_psic, (str(Path(a.psic).resolve()), m, str(i), str(out), model, binary_id)))
        for c in codecs:
            if c != "psic":
                tasks += [(task_codec, (c, q, str(i), str(out))) for q in CODECS[c].qualities]
    records = []
    t0 = time.time()
    if not a.skip_metrics:
        with Pool(a.workers) as pool:
            jobs = [pool.apply_async(f, (x,)) for f, x in tasks]
            for k, j in enumerate(jobs):
                r = j.get()
                records += r if isinstance(r, list) else [r]
                if (k + 1) % 10 == 0 or k + 1 == len(jobs):
                    print(f"  {k + 1}/{len(jobs)} tasks, {time.time() - t0:.0f} s", flush=True)
    else:
        for f in (out / "cache").rglob("*.json"):
            r = json.loads(f.read_text())
            records += r if isinstance(r, list) else [r]
        names = {i.stem for i in images}
        # PSIC entries of other models or executables (and of the cache layouts before per-model and
        # per-executable folders) are skipped.
        wanted = set(codecs) | ({"psic-mean"} if "psic" in codecs else set())
        records = [r for r in records if r["image"] in names and r["codec"] in wanted
                   and (not r["codec"].startswith("psic") or (r.get("model"), r.get("binary")) == (model, binary_id))]
        if "psic" in codecs and not any(r["codec"] == "psic" for r in records):
            sys.exit(f"evaluate.py: no cached PSIC results for model {model} and this psic executable "
                     f"({binary_id}) in {psic_cache_dir(out, model, binary_id)}; run without --skip-metrics to "
                     "measure them")

    if a.write_reference:
        n = reference.write_reference(Path(a.write_reference), records, images, tools)
        print(f"wrote {n} results of {', '.join(others)} to {a.write_reference}", flush=True)

    keys = ["codec", "quality", "image", "bytes", "bpp", *METRICS, "exp_psnr", "exp_ms_ssim",
            "spread_psnr", "encode_s", "decode_s"]
    with open(out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    agg = aggregate(records)
    (out / "summary.json").write_text(json.dumps({"images": [i.stem for i in images],
                                                  "metrics": metrics.available(),
                                                  "commands": {c: CODECS[c].describe() for c in codecs if c != "psic"},
                                                  "curves": agg}, indent=1))
    bd_md = "\n".join(t for t in (bd_tables(agg, c) for c in TESTS) if t)
    curves_md = curves_table(agg) + "\n" + level_gains(records)
    (out / "bdrate.md").write_text(bd_md)
    (out / "curves.md").write_text(curves_md)
    print(bd_md)
    if a.docs:
        docs = Path(a.docs).resolve()
        info = results_doc.run_info(psic_model_path(), len(images), a.images, measured_on(out, model, binary_id),
                                    HERE.parents[1])
        results_doc.update_results(docs / "results.md", info, agg, curves_md, bd_md)
        results_doc.update_readme(docs.parent / "README.md", info, agg)
        print(f"rewrote the measured blocks of {docs / 'results.md'} and {docs.parent / 'README.md'}", flush=True)

    import plots
    plots.rate_quality(agg, out / "plots", RD_METRICS, LABEL)
    if a.docs:
        plots.headline(agg, Path(a.docs) / "eval-rd.png", LABEL)
    if "psic" in codecs and not a.skip_grid:
        src = next((i for i in images if i.stem == a.grid_image), images[0])
        plots.grid(Path(a.psic).resolve(), src, out / "work" / "psic" / f"{src.stem}.psic",
                   out / "grid.png", out / "work" / "grid", docs_copy=(Path(a.docs) / "eval-grid.png") if a.docs else None)

    if not a.skip_speed:
        import speed
        res = speed.run_all(images[:a.speed_images], Path(a.psic).resolve(), out, vulkan=a.speed_vulkan)
        if a.docs:
            docs = Path(a.docs).resolve()
            info = results_doc.run_info(psic_model_path(), len(images), a.images,
                                        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), HERE.parents[1])
            results_doc.update_speed(docs / "results.md", docs.parent / "README.md", info, res, speed.speed_table(res))
            print(f"rewrote the speed blocks of {docs / 'results.md'} and {docs.parent / 'README.md'}", flush=True)


if __name__ == "__main__":
    main()
