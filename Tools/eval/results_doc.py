"""The measured parts of docs/results.md and README.md, rewritten from one Tools/eval run.

Hand-edited figures went stale each time a new model shipped (the docs named one step while the
repository shipped another), so every number a sweep produces lives between markers

    <!-- eval:NAME -->
    ...
    <!-- /eval:NAME -->

and `evaluate.py --docs DIR` rewrites those blocks; the prose around them carries no figures of
its own. When the model's fingerprint changes, the previous headline is kept as the first line of
the `history` block, so earlier models' figures stay readable without anyone copying them.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import bdrate

ANCHORS = (("jpeg", "JPEG"), ("webp", "WebP"), ("avif", "AVIF"), ("jxl", "JPEG XL"))
DATA = re.compile(r"<!-- eval-data (\{.*?\}) -->")


class ResultsDocError(Exception):
    """A document lacks a block this run writes, or holds it twice: the prose was edited away
    from the markers, and silently skipping the block would leave stale figures behind."""


@dataclass
class RunInfo:
    """What a sweep measured with: shown beside its figures."""
    fingerprint: str
    step: int | None
    weights: str
    architecture: str
    commit: str
    date: str
    images: int
    folder: str

    @property
    def training(self) -> str:
        step = f"training step {self.step}" if self.step is not None else "training step unknown"
        return f"{step}, {self.weights} weights"


def model_metadata(path: Path) -> dict:
    """The `psic` metadata block of a model file (safetensors header)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(size))["__metadata__"]["psic"])


def run_info(model_path: Path, images: int, folder: str, date: str, repo: Path) -> RunInfo:
    meta = model_metadata(model_path)
    arch = meta.get("architecture", {})
    training = meta.get("training", {})
    weights = {"ema": "EMA"}.get(training.get("weights", ""), training.get("weights") or "raw")
    return RunInfo(fingerprint=meta["fingerprint"], step=training.get("steps"), weights=weights,
                   architecture=f"{arch.get('family', '?')}, N={arch.get('N')}, C={arch.get('C')}, "
                                f"L={arch.get('L')} levels",
                   commit=source_commit(repo), date=date, images=images, folder=folder)


SOURCES = ("Sources", "Shaders", "Tools/ShaderPlugin", "Package.swift", "Package.resolved")


def source_commit(repo: Path) -> str:
    """The last commit that changed what the release binary is built from (so a later commit of
    docs or tools does not make the same binary look new), marked when those files have
    uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout.strip()
    commit = git("log", "-1", "--format=%h", "--", *SOURCES)
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", *SOURCES)
    return f"{commit} with uncommitted changes to Sources/" if dirty else commit


def _wrap(text: str, indent: str = "") -> str:
    """Wraps a generated paragraph like the hand-written prose around it (100 columns).

    A figure list such as "−1 / +67 / +145 / +40 %" is kept on one line, and a number with its unit
    ("0.37 s"): broken apart they read as lines of their own ("/ +40 %", "s and") in the source,
    where these blocks are read as often as rendered. Such lines may run past 100 columns.
    """
    glue = "\u00a0"
    joined = re.sub(r"(?<=\S) / (?=\S)", f"{glue}/{glue}", text)
    joined = re.sub(r"(?<=\d) (%|×|s|ms|dB|bpp)(?=\W|$)", lambda m: f"{glue}{m.group(1)}", joined)
    filled = textwrap.fill(joined, 100, subsequent_indent=indent, break_long_words=False,
                           break_on_hyphens=False)
    return filled.replace(glue, " ")


def _span(text: str, name: str) -> tuple[str, str, str]:
    """(before, inside, after) the one `name` block of a document."""
    begin, end = f"<!-- eval:{name} -->", f"<!-- /eval:{name} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ResultsDocError(f"expected one '{begin}' … '{end}' block")
    head, rest = text.split(begin)
    body, tail = rest.split(end)
    return head + begin, body, end + tail


def replace_block(text: str, name: str, body: str) -> str:
    head, _, tail = _span(text, name)
    return f"{head}\n{body.rstrip()}\n{tail}"


def block(text: str, name: str) -> str:
    return _span(text, name)[1].strip()


def _bd(agg, test, anchor, metric) -> float:
    return bdrate.curve_bd_rate(agg.get(anchor), agg.get(test), metric, "cubic")


def _pct(v: float) -> str:
    if v != v:
        return "n/o"
    s = f"{v:+.0f}"
    return ("−" + s[1:]) if s.startswith("-") else ("±0" if s in ("+0", "-0") else s)


def headline_figures(agg) -> dict:
    """Cubic BD-rates (%) of PSIC against each anchor: {curve: {metric: [per anchor]}}."""
    return {test: {m: [_bd(agg, test, a, m) for a, _ in ANCHORS] for m in ("psnr", "ms_ssim_db")}
            for test in ("psic", "psic-mean") if test in agg}


def headline(info: RunInfo, agg) -> str:
    f = headline_figures(agg)
    names = " / ".join(n for _, n in ANCHORS)

    def part(test):
        return (f"PSNR {' / '.join(_pct(v) for v in f[test]['psnr'])} %, MS-SSIM (dB) "
                f"{' / '.join(_pct(v) for v in f[test]['ms_ssim_db'])} %")
    text = f"Cubic BD-rates, sampled details (seed 0) against {names}: {part('psic')}"
    if "psic-mean" in f:
        text += f"; mean details: {part('psic-mean')}"
    data = {"fingerprint": info.fingerprint, "step": info.step, "date": info.date, "text": text}
    return (_wrap(f"{text} (tables below; near-zero entries are within the method's sensitivity, see caveats).")
            + f"\n<!-- eval-data {json.dumps(data, ensure_ascii=False)} -->")


def headline_data(headline_block: str) -> dict | None:
    """The figures a headline block was written from (its `eval-data` comment)."""
    m = DATA.search(headline_block)
    return json.loads(m.group(1)) if m else None


def history_line(d: dict) -> str:
    step = f"step {d['step']}" if d.get("step") is not None else "unknown step"
    return f"- Model `{d['fingerprint']}` ({step}, measured {d['date']}): {d['text']}."


def model_paragraph(info: RunInfo) -> str:
    return _wrap(f"Measured with `Tools/eval` on the {info.images} images of `{info.folder}`, model "
                 f"`Models/psic-conv.safetensors` (fingerprint `{info.fingerprint}`, {info.training}; "
                 f"{info.architecture}), with the release `psic` binary built from the sources of commit `{info.commit}`, "
                 f"on {info.date}.")


def samples_summary(agg) -> str:
    """How typical seed 0 is, how far apart the samples are, and what mean details buy."""
    rows = [r for r in agg.get("psic", []) if r.get("n_sampled") and r.get("spread_psnr", math.inf) != math.inf]
    lines = []
    if rows:
        dp = max(abs(r["exp_psnr"] - r["psnr_sampled_imgs"]) for r in rows)
        dm = max(abs(r["exp_ms_ssim"] - r["ms_ssim_sampled_imgs"]) for r in rows)
        lo, hi = rows[0], rows[-1]
        n, m = rows[0]["n_sampled"], rows[0]["samples"]
        lines += [f"Measured over the first {n} Kodak images with M = {m} samples (table **psic**, last five columns):",
                  f"- **Expected distortion against the seed-0 distortion**: within {dp:.2f} dB PSNR and "
                  f"{dm:.4f} MS-SSIM at every sampled level (levels {lo['quality']}–{hi['quality']}), so the seed-0 "
                  "curves behind the BD-rates are a typical draw, not a lucky or unlucky one.",
                  f"- **Spread** (mean PSNR between two samples of one stream): {lo['spread_psnr']:.1f} dB at level "
                  f"{lo['quality']} to {hi['spread_psnr']:.1f} dB at level {hi['quality']}, against "
                  f"{lo['psnr_sampled_imgs']:.1f} → {hi['psnr_sampled_imgs']:.1f} dB to the original: "
                  + ("at every level the samples are closer to each other than to the original, i.e. the "
                     "transmitted levels pin down most of the image and the sampled levels add detail of lower "
                     "energy than the coding error."
                     if all(r["spread_psnr"] > r["psnr_sampled_imgs"] for r in rows) else
                     "at some level the samples are farther apart than from the original.")]
    mean = {r["quality"]: r for r in agg.get("psic-mean", [])}
    gains = [(r["quality"], mean[r["quality"]]["psnr"] - r["psnr"]) for r in agg.get("psic", [])
             if r["quality"] in mean and r.get("psnr") is not None and "psnr" in mean[r["quality"]]]
    if gains:
        lines.append("- **Mean details** (`psic decode --details mean`) against seed 0, PSNR over all images: "
                     + ", ".join(f"level {q} {g:+.2f} dB" for q, g in gains) + ".")
    return "\n".join(_wrap(line, "  " if line.startswith("- ") else "") for line in lines)


def levels_table(agg) -> str:
    """README's compact per-level table."""
    p, mean = agg.get("psic", []), {r["quality"]: r for r in agg.get("psic-mean", [])}
    if not p:
        return ""

    def num(v, f):
        return ("−" + format(-v, f)) if v < 0 else format(v, f)
    rows = [("PSIC level", [str(r["quality"]) for r in p]),
            ("bpp", [f"{r['bpp']:.3f}" for r in p]),
            ("PSNR (dB)", [f"{r['psnr']:.2f}" for r in p]),
            ("MS-SSIM", [f"{r['ms_ssim']:.3f}" for r in p])]
    if all("ssimulacra2" in r for r in p):
        rows.append(("SSIMULACRA2", [num(r["ssimulacra2"], ".1f") for r in p]))
    if all(r["quality"] in mean for r in p):
        rows.append(("PSNR, mean details (dB)", [f"{mean[r['quality']]['psnr']:.2f}" for r in p]))
    out = ["| " + " | ".join([rows[0][0], *rows[0][1]]) + " |", "|---" * (len(p) + 1) + "|"]
    out += ["| " + " | ".join([k, *v]) + " |" for k, v in rows[1:]]
    return "\n".join(out)


def bd_summary_table(agg) -> str:
    """README's compact BD-rate table (cubic)."""
    metrics = [("psic", "psnr", "PSNR"), ("psic", "ms_ssim_db", "MS-SSIM (dB)"),
               ("psic", "ssimulacra2", "SSIMULACRA2"), ("psic-mean", "psnr", "PSNR, mean details"),
               ("psic-mean", "ms_ssim_db", "MS-SSIM (dB), mean details")]
    out = ["| metric | " + " | ".join(n for _, n in ANCHORS) + " |", "|---" * (len(ANCHORS) + 1) + "|"]
    for test, m, label in metrics:
        if test in agg:
            out.append(f"| {label} | " + " | ".join(f"{_pct(_bd(agg, test, a, m))} %" if a in agg else "—"
                                                   for a, _ in ANCHORS) + " |")
    return "\n".join(out)


RESULTS_BLOCKS = ("model", "headline", "history", "curves", "bdrate", "samples")
README_BLOCKS = ("readme-model", "readme-levels", "readme-bdrate")


def check_documents(results: Path, readme: Path, speed: bool = False) -> None:
    """Fails before a sweep, not after it, when a document cannot take its figures."""
    for path, names in ((results, RESULTS_BLOCKS + (("speed",) if speed else ())),
                        (readme, README_BLOCKS + (("readme-speed",) if speed else ()))):
        try:
            text = path.read_text()
        except OSError as e:
            raise ResultsDocError(f"{path}: {e.strerror}") from e
        for name in names:
            try:
                _span(text, name)
            except ResultsDocError as e:
                raise ResultsDocError(f"{path}: {e}") from None


def update_results(path: Path, info: RunInfo, agg, curves_md: str, bdrate_md: str) -> None:
    """docs/results.md: run paragraph, headline (the old one moves to the history), tables, samples."""
    text = path.read_text()
    old = headline_data(block(text, "headline"))
    new = headline(info, agg)
    if old and old["fingerprint"] != info.fingerprint:
        line = history_line(old)
        history = block(text, "history")
        text = replace_block(text, "history", f"{line}\n{history}" if history else line)
    for name, body in (("model", model_paragraph(info)), ("headline", new), ("curves", curves_md),
                       ("bdrate", bdrate_md), ("samples", samples_summary(agg))):
        text = replace_block(text, name, body)
    path.write_text(text)


def update_readme(path: Path, info: RunInfo, agg) -> None:
    text = path.read_text()
    text = replace_block(text, "readme-model", _wrap(
                         f"{info.images} images of `{info.folder}`, model `{info.fingerprint}` ({info.training}), "
                         f"measured on {info.date} with "
                         f"`Tools/eval/run.sh` on a {os.cpu_count()}-CPU machine; full tables, metric sources, caveats and the "
                         "exact commands in [docs/results.md](docs/results.md)."))
    text = replace_block(text, "readme-levels", levels_table(agg))
    text = replace_block(text, "readme-bdrate", bd_summary_table(agg))
    path.write_text(text)


def _ratio(a, b) -> str:
    """How many times slower a is than b, or faster when under 1, as words."""
    if not a or not b:
        return "—"
    return f"{a / b:.1f}× slower" if a >= b else f"{b / a:.1f}× faster"


def speed_block(info: RunInfo, res: dict, table: str) -> str:
    """The speed section's measured part: when and on what, the table, and the ratios it implies."""
    m = res.get("machine", {})
    load = m.get("load_at_start")
    lines = [_wrap(f"Measured on {info.date} with the release `psic` binary built from the sources of commit `{info.commit}` "
                   f"(model {info.training}), on {m.get('cpus', '?')} CPUs ({m.get('cpu', 'unknown CPU')}), "
                   + (f"load average {load[0]:.2f} at the start" if load else "load unknown")
                   + f"; images {', '.join(res.get('images', []))}."), "", table.rstrip(), "", "Ratios from this run:"]
    cpu, vk, pt = res.get("psic_cpu"), res.get("psic_vulkan"), res.get("torch_cpu")
    if cpu and pt:
        lines.append(_wrap(f"- **psic CPU vs PyTorch/CompressAI, same model**: a one-image psic process (own timer, "
                           f"graphs prepared for a new size, entropy coding included) encodes "
                           f"{_ratio(cpu['encode_self_s'], pt['encode_s'])} and decodes "
                           f"{_ratio(cpu['decode_self_s'], pt['decode_s'])} than PyTorch's warm transforms alone "
                           f"({pt['threads']} threads).", "  "))
    wc, wv = res.get("psic_warm_cpu"), res.get("psic_warm_vulkan")
    if wc and pt:
        lines.append(_wrap(f"- **Warm psic CPU vs PyTorch/CompressAI** (graphs prepared, entropy coding included, "
                           f"against transforms only): encode {_ratio(wc['encode_s'], pt['encode_s'])}, decode "
                           f"{_ratio(wc['decode_s'], pt['decode_s'])}.", "  "))
    if wc and wv:
        lines.append(_wrap(f"- **Warm psic Vulkan vs psic CPU** ({wv['device']}): encode "
                           f"{_ratio(wv['encode_s'], wc['encode_s'])}, decode {_ratio(wv['decode_s'], wc['decode_s'])}"
                           + ("; both wrote the same stream" if wv["bytes"] == wc["bytes"] else
                              f"; the streams differ in size ({wv['bytes']} vs {wc['bytes']} bytes)") + ".", "  "))
    if cpu and vk:
        lines.append(_wrap(f"- **psic Vulkan vs psic CPU** (own timer, one-image processes): encode "
                           f"{_ratio(vk['encode_self_s'], cpu['encode_self_s'])}, decode "
                           f"{_ratio(vk['decode_self_s'], cpu['decode_self_s'])}.", "  "))
    codecs = res.get("codecs", {})
    if cpu and codecs:
        lines.append(_wrap("- **psic CPU vs traditional codecs** (process wall): encode "
                           f"{cpu['encode_wall_s']:.3f} s against "
                           + ", ".join(f"{n} {c['encode_s']:.3f} s" for n, c in codecs.items())
                           + f"; decode {cpu['decode_wall_s']:.3f} s against "
                           + ", ".join(f"{n} {c['decode_s']:.3f} s" for n, c in codecs.items()) + ".", "  "))
    b = res.get("psic_batch_cpu")
    if b:
        lines.append(f"- **Batch**: {b['images_per_s']:.2f} images/s with `psic encode DIR` (default --jobs).")
    return "\n".join(lines)


def readme_speed(info: RunInfo, res: dict) -> str:
    cpu, pt, b = res.get("psic_cpu"), res.get("torch_cpu"), res.get("psic_batch_cpu")
    if not cpu:
        return ""
    text = (f"Speed per image ({', '.join(res.get('images', []))}) on this machine's "
            f"{res.get('machine', {}).get('cpus', '?')} CPUs (Tools/eval speed run of {info.date}, "
            f"docs/results.md): a one-image `psic` process encodes in {cpu['encode_self_s']:.2f} s and decodes in "
            f"{cpu['decode_self_s']:.2f} s (psic's own timer, entropy coding included)")
    w = res.get("psic_warm_cpu")
    if w:
        text += (f"; warm (`psic bench codec`, graphs prepared) {w['encode_s']:.2f} s and {w['decode_s']:.2f} s")
    if pt:
        text += (f", where the same model's transforms alone take {pt['encode_s']:.2f} s / {pt['decode_s']:.2f} s "
                 f"in PyTorch/CompressAI ({pt['threads']} threads)")
    text += "."
    if b:
        text += f" Batch encoding (`psic encode DIR`): {b['images_per_s']:.1f} images/s."
    return _wrap(text)


def update_speed(results: Path, readme: Path, info: RunInfo, res: dict, table: str) -> None:
    results.write_text(replace_block(results.read_text(), "speed", speed_block(info, res, table)))
    readme.write_text(replace_block(readme.read_text(), "readme-speed", readme_speed(info, res)))
