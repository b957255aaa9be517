"""Figures from what training and export already wrote: no model is run, so each takes a second.
(The one exception below is making a reference of another model with compare.py.)

    # held-out evaluations of a run (train.py's periodic EMA evaluation in log.jsonl), each as a
    # PSNR BD-rate against a reference: another evaluation (LOG:STEP) or compare.py --json output
    python Tools/train/figures.py heldout --ref Tools/train/runs/s6/log.jsonl:64000 Tools/train/runs/s6/log.jsonl
    # against the shipped file: its export report holds its curve on the same crops
    python Tools/train/figures.py heldout --ref Models/psic-conv.report.json Tools/train/runs/s7/log.jsonl
    # any model file or checkpoint as the reference (same crops, 20 s)
    python Tools/train/compare.py Tools/train/runs/s6/last.pt --json s6.json
    python Tools/train/figures.py heldout --ref s6.json Tools/train/runs/s7/log.jsonl

    # mean gradient norm before clipping per level drawn (logged since session 35)
    python Tools/train/figures.py gradnorm Tools/train/runs/s9d/log.jsonl

    # A/B of two runs fed the same batches: mean training loss, bpp and PSNR over a step range
    python Tools/train/figures.py loss --steps 66050:66600 Tools/train/runs/s6/log.jsonl Tools/train/runs/s6d/log.jsonl

    # two exporter reports (export.py --kodak): BD-rates of B against A, per-level rows
    python Tools/train/figures.py exports Models/psic-conv.report.json /tmp/exp/psic-conv.report.json

BD-rates are pchip (Tools/eval/bdrate.py); negative means B (or the evaluation) needs fewer bits at
equal quality. `exports` reads both detail modes when both reports have them: "sampled" (levels
past the cut sampled with the report's seed, what the codec shows by default) and "mean" (those
levels at their mean, the decoder's --details mean).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from bdrate import bd_rate  # noqa: E402


class FiguresError(Exception):
    """A file that is missing, unreadable or lacks what a figure needs; main() prints it and exits 2."""


def read_log(path: Path) -> list[dict]:
    """The records of a train.py log.jsonl (a line cut short by a stopped run is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise FiguresError(f"cannot read {path}: {e.strerror}") from None
    records = []
    for n, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines) - 1:     # only the last line may be half-written
                raise FiguresError(f"{path}:{n + 1} is not JSON: is this a train.py log.jsonl?") from None
    return records


def evaluations(path: Path) -> dict[int, list[dict]]:
    """step -> [{level, bpp, psnr}] of every held-out evaluation in a log (a resumed step's last)."""
    return {r["step"]: r["eval"] for r in read_log(path) if "eval" in r}


def reference_rows(ref: str) -> tuple[list[dict], str]:
    """The reference curve of `heldout --ref`: LOG:STEP, an export.py report (its "heldout_eval"), or a
    compare.py --json file (its first model, sampled details)."""
    path, _, step = ref.rpartition(":")
    if path and step.isdigit():
        evals = evaluations(Path(path))
        if int(step) not in evals:
            known = ", ".join(str(s) for s in sorted(evals)[-5:]) or "none"
            raise FiguresError(f"{path} has no evaluation at step {step} (last ones: {known})")
        return evals[int(step)], f"{Path(path).parent.name} step {step}"
    try:
        doc = json.loads(Path(ref).read_text())
        if isinstance(doc, dict) and doc.get("heldout_eval"):
            return doc["heldout_eval"]["sampled"], (f"{doc.get('model_file', ref)} (step {doc.get('step', '?')}, "
                                                    "export report)")
        first = doc["models"][0]
        return first["sampled"], first["name"]
    except OSError as e:
        raise FiguresError(f"cannot read {ref}: {e.strerror}") from None
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        raise FiguresError(f"{ref} is neither LOG:STEP, an export.py report with a held-out evaluation "
                           "(export.py --evaluate MODEL --report OUT adds one) nor compare.py --json output "
                           "(with sampled details)") from None


def bd(ref: list[dict], test: list[dict], quality: str = "psnr") -> float:
    return bd_rate([r["bpp"] for r in ref], [r[quality] for r in ref],
                   [r["bpp"] for r in test], [r[quality] for r in test], "pchip")


def heldout(args) -> list[str]:
    ref, ref_name = reference_rows(args.ref)
    out = [f"reference: {ref_name}: " + " ".join(f"{r['bpp']:.3f}/{r['psnr']:.2f}" for r in ref)]
    waiting = []
    for log in args.logs:
        evals = evaluations(log)
        if not evals:
            # a run started beside others has none for its first --eval-every steps: say so, show the rest
            waiting.append(log)
            out.append(f"{log.parent.name}: no held-out evaluation yet")
            continue
        for step, rows in sorted(evals.items()):
            if len(rows) != len(ref):
                raise FiguresError(f"{log} step {step} has {len(rows)} levels, the reference {len(ref)}")
            line = f"{log.parent.name} {step}: " + " ".join(f"{r['bpp']:.3f}/{r['psnr']:.2f}" for r in rows) \
                + f"  BD-rate {bd(ref, rows):+.2f} %"
            # logs from session 40 on evaluate MS-SSIM too; a run that buys PSNR with it shows here
            if all("ms_ssim" in r for r in ref + rows):
                line += f", MS-SSIM {bd(ref, rows, 'ms_ssim'):+.2f} %"
            out.append(line)
            if args.per_level:
                out.append("  " + " ".join(level_change(a, b) for a, b in zip(ref, rows)))
    if len(waiting) == len(args.logs):
        raise FiguresError(f"{', '.join(map(str, waiting))}: no held-out evaluation yet "
                           "(train.py writes one every --eval-every steps)")
    return out


def level_change(ref: dict, row: dict) -> str:
    """One level against the reference: "L3 -0.54 %/-0.016 dB" (rate change, PSNR change), with the
    MS-SSIM change in thousandths when both have it: a BD-rate's sum over levels hides which moved."""
    text = f"L{row['level']} {100 * (row['bpp'] / ref['bpp'] - 1):+.2f} %/{row['psnr'] - ref['psnr']:+.3f} dB"
    if "ms_ssim" in ref and "ms_ssim" in row:
        text += f"/{1000 * (row['ms_ssim'] - ref['ms_ssim']):+.2f}e-3"
    return text


def loss(args) -> list[str]:
    lo, sep, hi = args.steps.partition(":")
    if not sep or not lo.isdigit() or not hi.isdigit() or int(lo) > int(hi):
        raise FiguresError(f"--steps {args.steps}: expected FIRST:LAST, e.g. 66050:66600")
    lo, hi = int(lo), int(hi)
    keys = ("loss", "bpp", "psnr_full", "psnr_sampled")
    out, first = [], None
    for log in args.logs:
        # a resumed run logs some steps twice: the later line is the one that continued
        by_step = {r["step"]: r for r in read_log(log)
                   if all(k in r for k in keys) and lo <= r.get("step", -1) <= hi}
        if not by_step:
            raise FiguresError(f"{log} logs no training step in {lo}..{hi} (train.py lines with {', '.join(keys)})")
        means = {k: sum(r[k] for r in by_step.values()) / len(by_step) for k in keys}
        line = (f"{log.parent.name}: {len(by_step)} log lines, steps {min(by_step)}..{max(by_step)}: "
                f"loss {means['loss']:.4f}, bpp {means['bpp']:.4f}, PSNR full {means['psnr_full']:.2f} dB, "
                f"sampled {means['psnr_sampled']:.2f} dB")
        rows = list(by_step.values())
        levels = [sum(col) / len(rows) for col in zip(*(r["bpp_levels"] for r in rows))] \
            if all("bpp_levels" in r for r in rows) else None
        times = sorted(r["s_per_step"] for r in rows if "s_per_step" in r)
        if first is None:
            first = (means, set(by_step), levels)
        else:
            if set(by_step) != first[1]:
                line += "  (other steps than the first log: not the same batches)"
            line += (f"  vs first: loss {100 * (means['loss'] / first[0]['loss'] - 1):+.2f} %, "
                     f"bpp {100 * (means['bpp'] / first[0]['bpp'] - 1):+.2f} %, "
                     f"PSNR full {means['psnr_full'] - first[0]['psnr_full']:+.3f} dB")
        out.append(line)
        if levels:
            extra = "  bpp per level " + " ".join(f"{b:.4f}" for b in levels)
            if first[2] and len(first[2]) == len(levels) and first[2] is not levels:
                extra += " (vs first " + " ".join(f"{100 * (b / a - 1):+.2f}" for a, b in zip(first[2], levels)) + " %)"
            out.append(extra)
        if times:
            out.append(f"  median s/step {times[len(times) // 2]:.3f} over {len(times)} log lines")
    return out


def kodak_curves(path: Path) -> tuple[dict, dict[str, list[dict]]]:
    try:
        report = json.loads(path.read_text())
        mean = report["kodak"]["mean"]
    except OSError as e:
        raise FiguresError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FiguresError(f"{path} is not an export.py report with a Kodak evaluation (export.py --kodak)") from None
    curves = {"sampled": mean}
    if all("psnr_mean_details" in r for r in mean):
        curves["mean"] = [{"level": r["level"], "bpp": r["bpp"], "psnr": r["psnr_mean_details"],
                           "ms_ssim": r["ms_ssim_mean_details"]} for r in mean]
    return report, curves


def seed_curve(report: dict, seed: int) -> list[dict]:
    """A report's mean Kodak curve with the levels below L sampled with `seed` (a report from before
    --kodak-seeds holds only its one seed's curve)."""
    if "psnr_seeds" not in report["kodak"]["mean"][0]:
        return report["kodak"]["mean"]
    i = report["kodak"]["sample_seeds"].index(seed)
    return [{"level": r["level"], "bpp": r["bpp"], "psnr": r["psnr_seeds"][i], "ms_ssim": r["ms_ssim_seeds"][i]}
            for r in report["kodak"]["mean"]]


@dataclass(frozen=True)
class SeedRates:
    """Sampled-details BD-rates of B's curve against A's, one per seed both reports decoded with
    (export.py --kodak-seeds): their mean decides shipping (ship.py), the spread shows how much of a
    figure is the draw of the untransmitted levels."""
    per_seed: tuple[tuple[int, float, float], ...]  # (seed, PSNR BD-rate %, MS-SSIM BD-rate %)

    @property
    def seeds(self) -> list[int]:
        return [seed for seed, _, _ in self.per_seed]

    @property
    def psnr(self) -> list[float]:
        return [p for _, p, _ in self.per_seed]

    @property
    def ms_ssim(self) -> list[float]:
        return [m for _, _, m in self.per_seed]

    @property
    def psnr_mean(self) -> float:
        return fmean(self.psnr)

    @property
    def ms_ssim_mean(self) -> float:
        return fmean(self.ms_ssim)

    def seed_list(self) -> str:
        return ", ".join(map(str, self.seeds))

    def lines(self) -> list[str]:
        """One line per seed (figures.py exports and ship.py print the same)."""
        return [f"  seed {seed}: PSNR BD-rate {p:+.2f} %, MS-SSIM BD-rate {m:+.2f} %" for seed, p, m in self.per_seed]


def seed_bd_rates(ra: dict, rb: dict) -> SeedRates:
    """B's sampled-details BD-rates against A's under each seed both reports decoded with."""
    sa, sb = ra["kodak"].get("sample_seeds", [0]), rb["kodak"].get("sample_seeds", [0])
    out = []
    for seed in (s for s in sa if s in sb):
        a, b = seed_curve(ra, seed), seed_curve(rb, seed)
        out.append((seed, bd(a, b), bd(a, b, "ms_ssim")))
    return SeedRates(tuple(out))


def seed_lines(ra: dict, rb: dict) -> list[str]:
    """The per-seed BD-rates of B against A with their mean and range as the headline."""
    rates = seed_bd_rates(ra, rb)
    if len(rates.per_seed) < 2:
        return ["other seeds: not in both reports (export.py --kodak-seeds 0,1,2)"]
    psnr, msssim = rates.psnr, rates.ms_ssim
    head = (f"sampled details over seeds {rates.seed_list()}: PSNR BD-rate mean {rates.psnr_mean:+.2f} % "
            f"(range {min(psnr):+.2f} … {max(psnr):+.2f}), MS-SSIM mean {rates.ms_ssim_mean:+.2f} % "
            f"(range {min(msssim):+.2f} … {max(msssim):+.2f})")
    return [head, *rates.lines()]


def gradnorm(args) -> list[str]:
    """Mean gradient norm (before clipping) per level drawn, over the windows train.py logged it for."""
    out = []
    for log in args.logs:
        rows = [r for r in read_log(log) if r.get("grad_norm_levels")]
        if not rows:
            raise FiguresError(f"{log} logs no grad_norm_levels (train.py writes them since session 35)")
        per_level = [[v for v in column if v is not None] for column in zip(*(r["grad_norm_levels"] for r in rows))]
        clipped = sum(r["clipped"] for r in rows) / len(rows)
        out.append(f"{log.parent.name}: {len(rows)} windows ending at steps {rows[0]['step']}..{rows[-1]['step']}, "
                   f"{100 * clipped:.0f} % of steps clipped; mean norm per level: "
                   + " ".join(f"L{i + 1} {sum(v) / len(v):.1f}" if v else f"L{i + 1} -" for i, v in enumerate(per_level)))
    return out


def exports(args) -> list[str]:
    (ra, a), (rb, b) = kodak_curves(args.a), kodak_curves(args.b)
    out = [f"A: {args.a} (step {ra.get('step', '?')}, {ra.get('fingerprint', '?')})",
           f"B: {args.b} (step {rb.get('step', '?')}, {rb.get('fingerprint', '?')})"]
    for mode in ("sampled", "mean"):
        if mode not in a or mode not in b:
            out.append(f"{mode} details: not in both reports (export.py writes them since session 19)")
            continue
        if len(a[mode]) != len(b[mode]):
            raise FiguresError(f"the reports have {len(a[mode])} and {len(b[mode])} levels")
        out.append(f"{mode} details: PSNR BD-rate {bd(a[mode], b[mode]):+.2f} %, "
                   f"MS-SSIM BD-rate {bd(a[mode], b[mode], 'ms_ssim'):+.2f} %")
        for x, y in zip(a[mode], b[mode]):
            out.append(f"  L{x['level']} {x['bpp']:.3f} bpp {x['psnr']:.2f} dB {x['ms_ssim']:.4f} -> "
                       f"{y['bpp']:.3f} bpp {y['psnr']:.2f} dB {y['ms_ssim']:.4f}")
    out += seed_lines(ra, rb)
    for name, report in (("A", ra), ("B", rb)):
        losses = ", ".join(f"{k} {100 * v['rate_loss']:+.3f} %" for k, v in report.get("rates", {}).items())
        # "rates" are the integer networks' against the float model; the coder's scale-index offsets
        # (format version 2) come after them, and the Kodak figure is the coder's with them
        offsets = report.get("coding_offset")
        with_offsets = "" if offsets is None else "; with the coding offsets " + ", ".join(
            f"{k} {100 * v['rate_loss']:+.3f} %" for k, v in offsets.get("rates", {}).items())
        out.append(f"{name} integer rate loss: {losses or 'not reported'}{with_offsets}; "
                   f"Kodak {100 * report['kodak'].get('rate_loss', float('nan')):+.3f} %")
    return out


def bench_curve(path: Path) -> list[dict]:
    """The rows of a `psic bench levels --json` output (level, bpp, psnr)."""
    try:
        rows = json.loads(path.read_text())
        if not rows or not all({"level", "bpp", "psnr"} <= set(r) for r in rows):
            raise KeyError
    except OSError as e:
        raise FiguresError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FiguresError(f"{path} is not `psic bench levels --json` output") from None
    return rows


def levels(args) -> list[str]:
    """Two `psic bench levels --json` curves: B's bpp change per level and its BD-rate against A."""
    a, b = bench_curve(args.a), bench_curve(args.b)
    if len(a) != len(b):
        raise FiguresError(f"the curves have {len(a)} and {len(b)} levels")
    out = [f"PSNR BD-rate of {args.b} against {args.a}: {bd(a, b):+.2f} % (pchip)"]
    for x, y in zip(a, b):
        out.append(f"  L{x['level']} {x['bpp']:.4f} bpp {x['psnr']:.2f} dB -> {y['bpp']:.4f} bpp {y['psnr']:.2f} dB "
                   f"({100 * (y['bpp'] / x['bpp'] - 1):+.2f} % bpp)")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("heldout", help="held-out evaluations of runs as BD-rates against a reference")
    h.add_argument("--ref", required=True, help="LOG:STEP (an evaluation in a log.jsonl), an export.py report "
                                                 "(e.g. Models/psic-conv.report.json) or compare.py --json output. "
                                                 "To predict an export's Kodak gain, use the run's own evaluation "
                                                 "at the shipped step: a report's curve is the file rebuilt as floats, "
                                                 "about 0.06 %% worse than the checkpoint's (RESULTS.md, session 38)")
    h.add_argument("logs", type=Path, nargs="+", help="train.py log.jsonl files")
    h.add_argument("--per-level", action="store_true",
                   help="under each evaluation, every level's rate change (%%), PSNR change (dB) and, where both "
                        "curves have it, MS-SSIM change (thousandths) against the reference")
    h.set_defaults(run=heldout)
    l = sub.add_parser("loss", help="mean training loss, bpp and PSNR of runs over one step range")
    l.add_argument("--steps", required=True, help="FIRST:LAST, inclusive")
    l.add_argument("logs", type=Path, nargs="+", help="train.py log.jsonl files; the first is the baseline")
    l.set_defaults(run=loss)
    g = sub.add_parser("gradnorm", help="mean gradient norm per level drawn (train.py's grad_norm_levels)")
    g.add_argument("logs", type=Path, nargs="+", help="train.py log.jsonl files")
    g.set_defaults(run=gradnorm)
    v = sub.add_parser("levels", help="two `psic bench levels --json` outputs: BD-rate of B against A")
    v.add_argument("a", type=Path, help="baseline curve")
    v.add_argument("b", type=Path, help="candidate curve")
    v.set_defaults(run=levels)
    e = sub.add_parser("exports", help="two export.py reports: BD-rates of B against A on Kodak")
    e.add_argument("a", type=Path, help="baseline report (e.g. Models/psic-conv.report.json)")
    e.add_argument("b", type=Path, help="candidate report")
    e.set_defaults(run=exports)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        print("\n".join(args.run(args)))
    except FiguresError as e:
        print(f"figures.py {args.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
