#!/usr/bin/env python3
"""Export a PSIC training checkpoint to the engine's model file (docs/integer-entropy-model.md).

    python Tools/train/export.py --checkpoint Tools/train/runs/main/last.pt --out /tmp/exp/psic-conv.safetensors \\
        [--fp16] [--golden /tmp/exp/golden] [--kodak ../shared/data/kodak]

(into a scratch folder: `Tools/train/ship.py /tmp/exp/psic-conv.safetensors --golden /tmp/exp/golden`
then installs the model, its report and golden vectors in the repository once they pass its checks)

Steps: calibrate and quantise h_s and the entropy-parameter nets to integer layers (calibration
crops from the training photos, never Kodak; of the integer ranges tried for the hyper features H,
the one with the lowest rate loss on those crops), build the CDF tables, check the integer model's
rate loss against the float model (< 1%, on the calibration crops and on crops of the held-out
training photos), calibrate the coder's scale-index offsets (psic_train/codingoffset.py: per latent
channel, the table offset that codes the calibration crops in the fewest bits; the sampler keeps
the network's index), optionally store the float transforms in fp16 (only if the full-level decode
PSNR moves by < 0.05 dB), write the model file, re-read it, and optionally regenerate the golden
vectors (Tests/Golden) and evaluate per-level bpp / PSNR / MS-SSIM on Kodak with the integer
entropy model's real symbol costs, below level L both with sampled details (seed 0; "psnr",
"ms_ssim"; --kodak-seeds adds other seeds' draws beside it) and with mean details
("psnr_mean_details", ...). A JSON report goes to --report
(default: <out>.report.json); `figures.py exports OLD NEW` compares two of them. The report also
holds the written file's curve on train.py's held-out evaluation crops ("heldout_eval", the file
rebuilt as floats as compare.py does), so `figures.py heldout --ref <report> <log.jsonl>` reads
a run's evaluations against the shipped file without running a model.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from psic_train import codingoffset as coding_offsets  # noqa: E402
from psic_train import intmodel as im  # noqa: E402
from psic_train.data import EVAL_CROP, evaluation_crops, list_images, random_crops  # noqa: E402
from psic_train.fromfile import model_from_file  # noqa: E402
from psic_train.inputs import require_files  # noqa: E402
from psic_train.intmodel import DEFAULT_SCALE_COUNT, ScaleGrid  # noqa: E402
from psic_train.model import ModelConfig, PSICModel, checkpoint_weights, mean_curve  # noqa: E402
from psic_train.golden import write_golden  # noqa: E402
from psic_train.kodakeval import KODAK_SAMPLE_SEED, evaluate_kodak  # noqa: E402
from psic_train.modelfile import ModelFile, Transforms, float_tensors, write_model  # noqa: E402
from psic_train.quantize import H_RANGES, all_layers, analyse, calibrate, int16_weights, quantize_entropy_model  # noqa: E402
from psic_train.recipe import recipe_defaults  # noqa: E402
from psic_train.rates import float_bits, int_bits  # noqa: E402
from psic_train.tables import gaussian_tables, z_tables  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RATE_LOSS_LIMIT = 0.01
FP16_PSNR_LIMIT = 0.05


def _scale_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer scale count, e.g. {DEFAULT_SCALE_COUNT}; got {text!r}") from None
    if not 2 <= count <= 1024:
        raise argparse.ArgumentTypeError(f"scale count {count} is outside 2...1024 (the default is {DEFAULT_SCALE_COUNT})")
    return count


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if seeds[0] != KODAK_SAMPLE_SEED or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds starting with {KODAK_SAMPLE_SEED}, "
                                         f"e.g. {KODAK_SAMPLE_SEED},1,2; got {text!r}")
    return seeds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (*.pt) to export")
    src.add_argument("--evaluate", type=Path, metavar="MODEL",
                     help="no export: evaluate this model file (*.safetensors) on the held-out crops and, "
                          "with --kodak, on those images, and write --report (e.g. for a model exported "
                          "before the report held these tables)")
    p.add_argument("--out", type=Path, help="model file to write (.safetensors); required with --checkpoint")
    p.add_argument("--weights", choices=["ema", "raw"], default="ema",
                   help="the checkpoint's moving average of the weights (when it has one) or its raw weights")
    p.add_argument("--fp16", action="store_true", help="store g_a/g_s/h_a in F16 if that costs < 0.05 dB")
    p.add_argument("--golden", type=Path, help="folder of golden test images (*.png): regenerate their vectors "
                                               "(with --evaluate: the file's, in place, e.g. Tests/Golden)")
    p.add_argument("--kodak", type=Path, help="folder of evaluation images: per-level bpp/PSNR/MS-SSIM")
    p.add_argument("--kodak-seeds", type=_seed_list, default=[KODAK_SAMPLE_SEED], metavar="S,S,...",
                   help="with --kodak: also decode the sampled levels with these seeds (the first must be "
                        f"{KODAK_SAMPLE_SEED}, the seed the main table and shipping use), so `figures.py exports` "
                        "can tell whether a BD-rate between two models holds for other draws of the details")
    p.add_argument("--rd-lambda", type=_rd_lambda, default=None, metavar="W[/F]",
                   help="the encoder's rate-distortion weight, bits per squared latent step (intmodel.rd_symbols), "
                        "W at the top level and W*F^(L-1-i) at level i (F default 1): "
                        "with --checkpoint written into the model file as its encoder's default, with --evaluate "
                        "used instead of the file's; the Kodak evaluation encodes with it (default: none written, "
                        "the file's own read; 0: nearest rounding)")
    p.add_argument("--report", type=Path, help="JSON report (default: <out without suffix>.report.json)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train",
                   help="training photos: calibration crops from all but the last --holdout; the rate check also on crops of those last")
    p.add_argument("--holdout", type=int, default=8, help="last N training photos (sorted) are held out, as train.py does")
    p.add_argument("--calib-crops", type=int, default=256, help="random crops that calibrate the integer layers' ranges")
    p.add_argument("--heldout-crops", type=int, default=4, help="crops per held-out photo")
    p.add_argument("--crop", type=int, default=256, help="side in pixels of the calibration and held-out crops")
    p.add_argument("--headroom", type=float, default=2.0,
                   help="activation bound = calibrated max * headroom; tried smaller (x0.75, down to 1.1) "
                        "when the best rate loss over H's ranges stays >= 1%%")
    p.add_argument("--scale-count", type=_scale_count, default=DEFAULT_SCALE_COUNT, metavar="S",
                   help=f"Gaussian scale tables (the file's scale_count; default {DEFAULT_SCALE_COUNT}). Halving the "
                        "grid's step quarters its rate cost: 64 -> 128 gained 0.15 %% sampled PSNR BD-rate for "
                        "0.8 MiB, 128 -> 256 0.04 %% for 1.6 MiB (RESULTS.md, session 37). Files up to session 36 "
                        "have 64")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration and held-out crops")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument("--force", action="store_true", help="write the model even if the rate loss exceeds 1%%")
    args = p.parse_args(argv)
    if args.checkpoint and not args.out:
        p.error("--checkpoint needs --out (the model file to write)")
    if args.evaluate and not args.report:
        p.error("--evaluate needs --report (where the tables go)")
    return args


def log(msg: str):
    print(msg, flush=True)


def headroom_schedule(start: float, floor: float = 1.1, factor: float = 0.75) -> list[float]:
    """Headrooms to try in turn: `start`, then smaller by `factor` while at least `floor`
    (2.0 -> 2.0, 1.5, 1.125)."""
    out = [start]
    while out[-1] * factor >= floor:
        out.append(out[-1] * factor)
    return out


@dataclass(frozen=True)
class Crops:
    """Latents (y, integer z) of a set of crops with their float-model rates (float_bits), taken
    once: every integer candidate of the search and the offsets' calibration are measured against
    the same float bits."""
    y: torch.Tensor
    z: torch.Tensor
    float_rates: tuple

    @classmethod
    def analysed(cls, model, y: torch.Tensor, z: torch.Tensor) -> "Crops":
        return cls(y, z, float_bits(model, y, z) if y.shape[0] else (0.0, np.zeros(model.cfg.L)))

    @property
    def count(self) -> int:
        return int(self.y.shape[0])


def rate_summary(ent, crops: Crops, encodes: list[dict] | None = None) -> tuple[dict, list[dict]]:
    """Float vs integer rates of `crops`, and int_bits' encodes of them; given `encodes` (of the
    same crops by a model that differs only in its coding offsets) they are repriced, not redone."""
    fz, fl = crops.float_rates
    iz, il, esc, encodes = int_bits(ent, crops.y.numpy(), crops.z.numpy(), encodes=encodes)
    y = crops.y
    npix = y.shape[0] * (y.shape[2] * 16) * (y.shape[3] * 16)
    f_tot, i_tot = fz + fl.sum(), iz + il.sum()
    return {"images": int(y.shape[0]), "pixels": int(npix), "float_bpp": f_tot / npix, "int_bpp": i_tot / npix,
            "rate_loss": i_tot / f_tot - 1.0, "z_rate_loss": iz / fz - 1.0,
            "level_rate_loss": [float(v) for v in il / np.maximum(fl, 1e-9) - 1.0],
            "float_level_bpp": [float(v) for v in fl / npix], "int_level_bpp": [float(v) for v in il / npix],
            "escapes": int(esc)}, encodes


@dataclass
class QuantizationChoice:
    """What search_quantization chose: the integer model, its rate summaries ("calibration", and
    "heldout" when there are held-out crops), the settings it was built with, every candidate
    tried (a list of {headroom, h_range, rate_loss}) and its encodes of each crop set (same keys)."""
    ent: im.IntEntropyModel
    rates: dict
    headroom: float
    h_range: int
    search: list
    encodes: dict


def search_quantization(model, calib, tables, calibration: Crops, heldout: Crops, headroom_start: float,
                        log=print, t_start: float | None = None) -> QuantizationChoice:
    """The integer entropy model with the lowest rate loss on the calibration crops, over H's integer
    range (quantize.H_RANGES) and, while even the best misses RATE_LOSS_LIMIT, smaller headrooms.

    Every layer gets Int16-range weights, as fine as its accumulator bound allows. H's range matters
    because ep layer 0 of level i > 0 reads [H | Y^] under one input bound: the Y^ columns fill the
    accumulator budget, so with H at +-32767 (a tiny s_H) the H columns' weights rounded to a handful
    of integer levels (2-4 bits at levels 2-8; session 33 measured +0.85 % rate loss on a 105k-step
    checkpoint with the old Int8-range layers, -0.17 % with Int16-range weights and H at +-2047)."""
    t_start = time.time() if t_start is None else t_start
    weight_bits = int16_weights(model.cfg)
    search, best = [], None
    for headroom in headroom_schedule(headroom_start):
        for h_range in H_RANGES:
            ent = quantize_entropy_model(model, calib, headroom, weight_bits, h_range=h_range, tables=tables)
            r, encodes = rate_summary(ent, calibration)
            search.append({"headroom": headroom, "h_range": h_range, "rate_loss": r["rate_loss"]})
            log(f"headroom {headroom:g}, H range +-{h_range}: calibration rate loss {100 * r['rate_loss']:+.3f}% "
                f"({r['float_bpp']:.4f} -> {r['int_bpp']:.4f} bpp) ({time.time() - t_start:.0f} s)")
            if best is None or r["rate_loss"] < best[1]["rate_loss"]:
                best = (ent, r, headroom, h_range, encodes)
        if best[1]["rate_loss"] < RATE_LOSS_LIMIT:
            break
    ent, r, headroom, h_range, encodes = best
    choice = QuantizationChoice(ent, {"calibration": r}, headroom, h_range, search, {"calibration": encodes})
    if heldout.count:
        choice.rates["heldout"], choice.encodes["heldout"] = rate_summary(ent, heldout)
    log(f"chosen: headroom {headroom:g}, H range +-{h_range}; rate loss " + ", ".join(
        f"{k} {100 * v['rate_loss']:+.3f}%" for k, v in choice.rates.items()))
    return choice


def calibrate_coding_offsets(ent: im.IntEntropyModel, crops: dict[str, Crops], encodes: dict[str, list[dict]]) -> dict:
    """Sets `ent`'s coding offsets (psic_train/codingoffset.py) to those that code the calibration
    crops' symbols in the fewest bits; returns codingoffset.calibrate's summary with the rates
    they give (rate_summary, against the float model) on every crop set of `crops`. `encodes` are
    `ent`'s encodes of those sets before the offsets: k and q do not depend on them, so the sets
    are repriced, not encoded again."""
    ent.coding_offset, summary = coding_offsets.calibrate(ent, encodes["calibration"])
    summary["rates"] = {name: rate_summary(ent, c, encodes=encodes[name])[0]
                        for name, c in crops.items() if c.count}
    return summary


def full_decode_psnr(tr: Transforms, ent: im.IntEntropyModel, x: torch.Tensor) -> float:
    """Mean PSNR of full-level decodes (integer entropy model, float transforms tr)."""
    ps = []
    for s in range(0, x.shape[0], 8):
        xb = x[s:s + 8]
        y = tr.g_a(xb)
        z_hat = im.quantize_z(tr.h_a(y).numpy())
        enc = ent.encode(y.numpy(), z_hat)
        xh = tr.g_s(torch.from_numpy(enc["y_hat"]).float() / im.MEAN_SCALE).clamp(0, 1)
        mse = ((xh - xb) ** 2).mean(dim=(1, 2, 3))
        ps += [10 * math.log10(1 / max(float(m), 1e-12)) for m in mse]
    return float(np.mean(ps))


def _rd_lambda(text: str) -> tuple[float, float]:
    """W or W/F -> (W, F)."""
    w, _, f = text.partition("/")
    try:
        v, factor = float(w), float(f) if f else 1.0
    except ValueError:
        v, factor = float("nan"), 1.0
    if not (math.isfinite(v) and v >= 0 and math.isfinite(factor) and factor > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give W or W/F, W >= 0 (0 rounds to the nearest symbol) "
                                         f"and F > 0, e.g. 40/1.3")
    return v, factor


def _level_lambdas(given: tuple[float, float] | None, levels: int) -> list[float] | None:
    return None if given is None else im.level_lambdas(given[0], levels, given[1])


def heldout_eval(model: PSICModel, data: Path, holdout: int) -> dict | None:
    """A model file's curve on train.py's held-out evaluation crops (the last `holdout` photos'
    top-left 256x256, levels past each cut sampled with seed 0); `model` is the file rebuilt as
    floats (psic_train.fromfile, as compare.py does), so this is the reference a run's log.jsonl
    evaluations are read against. None when nothing is held out."""
    crops = evaluation_crops(list_images(data)[-holdout:]) if holdout else []
    if not crops:
        return None
    return {"data": str(data), "holdout": holdout, "crop": EVAL_CROP, "crops": len(crops),
            "sampled": mean_curve(model, crops)}


def evaluate_file(args) -> None:
    """--evaluate: the held-out and (with --kodak) Kodak tables of a model file as it is shipped. The
    float model that the integer rate loss is measured against is the one rebuilt from the file
    (psic_train.fromfile), not the checkpoint's, so that figure is not the exporter's."""
    t_start = time.time()
    mf = ModelFile(args.evaluate)
    model, meta = model_from_file(args.evaluate)
    model.eval()
    log(f"evaluating {args.evaluate} (step {meta.get('training', {}).get('steps', '?')})")
    report = {"model_file": str(args.evaluate), "step": meta.get("training", {}).get("steps"),
              "fingerprint": meta["fingerprint"], "evaluated_only": True,
              "heldout_eval": heldout_eval(model, args.data, args.holdout)}
    if args.golden:
        report["golden"] = write_golden(mf, args.golden, log)
    if args.kodak:
        log(f"evaluating on {args.kodak}")
        report["kodak"] = evaluate_kodak(mf, model, args.kodak, args.kodak_seeds, _level_lambdas(args.rd_lambda, mf.L), log=log)
    report["seconds"] = time.time() - t_start
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    log(f"report {args.report} ({report['seconds']:.0f} s)")


def main(argv=None):
    args = parse_args(argv)
    require_files("export.py", args.checkpoint, args.evaluate)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        return evaluate_file(args)
    t_start = time.time()
    report_path = args.report or args.out.with_suffix(".report.json")

    # a private copy, so a checkpoint being rewritten cannot be read half-way
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "checkpoint.pt"
        shutil.copyfile(args.checkpoint, tmp)
        ckpt = torch.load(tmp, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ckpt["config"])
    model = PSICModel(cfg)
    state, use_ema = checkpoint_weights(ckpt, ema=args.weights == "ema")
    model.load_state_dict(state)
    model.eval()
    step = int(ckpt.get("step", 0))
    log(f"checkpoint {args.checkpoint}: step {step}, {cfg}, {'EMA' if use_ema else 'raw'} weights")

    files = list_images(args.data)
    train_files = files[:-args.holdout] if args.holdout else files
    held_files = files[-args.holdout:] if args.holdout else []
    rng = np.random.default_rng(args.seed)
    calib_x = torch.from_numpy(random_crops(train_files, args.calib_crops, args.crop, rng)).permute(0, 3, 1, 2).float() / 255
    held_x = (torch.from_numpy(random_crops(held_files, len(held_files) * args.heldout_crops, args.crop, rng))
              .permute(0, 3, 1, 2).float() / 255) if held_files else calib_x[:0]
    log(f"{calib_x.shape[0]} calibration crops from {len(train_files)} training photos, "
        f"{held_x.shape[0]} crops from {len(held_files)} held-out photos ({time.time() - t_start:.0f} s)")
    y_c, z_c = analyse(model, calib_x)
    y_h, z_h = analyse(model, held_x) if held_x.shape[0] else (y_c[:0], z_c[:0])
    calib = calibrate(model, y_c, z_c)
    tables = (gaussian_tables(ScaleGrid(args.scale_count)), z_tables(model.entropy_bottleneck))
    log(f"calibrated, tables built ({time.time() - t_start:.0f} s)")

    crops = {"calibration": Crops.analysed(model, y_c, z_c), "heldout": Crops.analysed(model, y_h, z_h)}
    choice = search_quantization(model, calib, tables, crops["calibration"], crops["heldout"], args.headroom, log, t_start)
    ent, rates, headroom, h_range, search = choice.ent, choice.rates, choice.headroom, choice.h_range, choice.search
    worst = max(r["rate_loss"] for r in rates.values())
    if worst >= RATE_LOSS_LIMIT and not args.force:
        raise SystemExit(f"integer rate loss {100 * worst:.2f}% >= 1%: model not written (use --force to override)")
    offsets_report = calibrate_coding_offsets(ent, crops, choice.encodes)
    if offsets_report["at_search_bound"]:
        log(f"note: {offsets_report['at_search_bound']} channels chose an end of the offset search "
            f"{offsets_report['search']} (psic_train/codingoffset.py SEARCH): a wider search may code them smaller")
    log(f"coding offsets: {100 * offsets_report['bits_saving']:.2f} % fewer level bits on the calibration crops ("
        + " ".join(f"L{i + 1} {100 * v:.2f}" for i, v in enumerate(offsets_report["level_bits_saving"]))
        + "), rate against the float model " + ", ".join(
            f"{k} {100 * v['rate_loss']:+.3f}%" for k, v in offsets_report["rates"].items())
        + f" ({time.time() - t_start:.0f} s)")

    # fp16 transforms?
    fp16_report = None
    use_fp16 = False
    if args.fp16:
        eval_x = held_x if held_x.shape[0] else calib_x[:32]
        p32 = full_decode_psnr(Transforms(float_tensors(model, False)), ent, eval_x)
        p16 = full_decode_psnr(Transforms(float_tensors(model, True)), ent, eval_x)
        use_fp16 = abs(p32 - p16) < FP16_PSNR_LIMIT
        fp16_report = {"psnr_fp32": p32, "psnr_fp16": p16, "difference_db": p32 - p16, "used": use_fp16}
        log(f"fp16 transforms: PSNR {p32:.3f} dB (fp32) vs {p16:.3f} dB (fp16): "
            + ("stored as F16" if use_fp16 else "difference >= 0.05 dB, kept F32"))

    training = {"steps": step, "checkpoint": args.checkpoint.name, "weights": "ema" if use_ema else "raw",
                "device": str(ckpt.get("args", {}).get("device", "cpu")),
                # what train.py --init MODEL_FILE continues with (psic_train/recipe.py)
                "recipe": {k: v for k, v in ckpt.get("args", {}).items() if k in recipe_defaults()}}
    rd_lambda = _level_lambdas(args.rd_lambda, model.cfg.L) or 0.0
    meta = write_model(args.out, model, ent, use_fp16, training, rd_lambda)
    size = args.out.stat().st_size
    log(f"wrote {args.out} ({size / 2**20:.2f} MiB, fingerprint {meta['fingerprint']})")

    # round trip: the file's integer model must reproduce the in-memory one exactly
    mf = ModelFile(args.out)
    probe_y, probe_z = (y_h if y_h.shape[0] else y_c)[:4].numpy(), (z_h if z_h.shape[0] else z_c)[:4].numpy()
    a, b = ent.encode(probe_y, probe_z), mf.entropy.encode(probe_y, probe_z)
    assert all(np.array_equal(a[k], b[k]) for k in a), "model file does not reproduce the integer model"

    report = {
        "checkpoint": str(args.checkpoint), "step": step, "model_file": str(args.out), "bytes": size,
        "fingerprint": meta["fingerprint"], "architecture": meta["architecture"],
        "rates": rates, "rate_loss_limit": RATE_LOSS_LIMIT,
        "int_layers": {l.name: {"weight_bits": l.extra["weight_bits"], "input_bound": l.input_bound,
                                "output_range": l.output_max, "max_abs_weight": int(np.abs(l.weight).max()),
                                "worst_case_accumulator_fraction": l.worst_case_accumulator() / im.ACC_LIMIT}
                       for l in all_layers(ent)},
        "coding_offset": offsets_report, "rd_lambda": ModelFile(args.out).rd_lambda,
        "s_H": ent.h_s[-1].extra["s_H"], "headroom": headroom, "h_range": h_range, "quantization_search": search,
        "scale_count": ent.scale_grid.count, "calibration": {"crops": int(calib_x.shape[0]), "crop": args.crop, "maxabs": calib.maxabs},
        "fp16": fp16_report, "float_dtype": "F16" if use_fp16 else "F32",
    }
    report["heldout_eval"] = heldout_eval(model_from_file(args.out)[0], args.data, args.holdout)
    if report["heldout_eval"]:
        log("held-out evaluation crops (the file rebuilt as floats): " + " ".join(
            f"L{r['level']} {r['bpp']:.3f}/{r['psnr']:.2f}" for r in report["heldout_eval"]["sampled"]))
    if args.golden:
        report["golden"] = write_golden(mf, args.golden, log)
    if args.kodak:
        log(f"evaluating {args.kodak}")
        report["kodak"] = evaluate_kodak(mf, model, args.kodak, args.kodak_seeds, log=log)
        k = report["kodak"]
        log(f"kodak rate loss {100 * k['rate_loss']:+.3f}%; " + " ".join(
            f"L{r['level']} {r['bpp']:.3f} bpp {r['psnr']:.2f} dB {r['ms_ssim']:.4f}" for r in k["mean"]))
    report["seconds"] = time.time() - t_start
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    log(f"report {report_path} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
