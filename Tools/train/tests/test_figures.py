"""Tests of figures.py: held-out BD-rates from log.jsonl, A/B loss means, export report comparison."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import figures  # noqa: E402

CURVE = [(0.03, 17.0), (0.11, 19.0), (0.25, 20.6), (0.41, 22.2)]


def rows(curve, rate_scale=1.0):
    return [{"level": i + 1, "bpp": b * rate_scale, "psnr": q} for i, (b, q) in enumerate(curve)]


def write_log(path: Path, records, torn_tail=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + ('{"step": 9' if torn_tail else ""))
    return path


def train_line(step, loss, bpp=1.0, psnr=29.0):
    return {"step": step, "loss": loss, "bpp": bpp, "psnr_full": psnr, "psnr_sampled": psnr - 6}


def run(capsys, *argv):
    code = figures.main(list(map(str, argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_heldout_bd_rate_against_an_evaluation_in_a_log(tmp_path, capsys):
    log = write_log(tmp_path / "s6" / "log.jsonl", [
        train_line(990, 4.0), {"step": 1000, "eval": rows(CURVE)},
        {"step": 2000, "eval": rows(CURVE, 0.9)}], torn_tail=True)
    code, out, _ = run(capsys, "heldout", "--ref", f"{log}:1000", log)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("s6 1000:") and lines[1].endswith("BD-rate +0.00 %")
    # the same PSNR with 10 % fewer bits everywhere is a -10 % BD-rate
    assert lines[2].startswith("s6 2000:") and lines[2].endswith("BD-rate -10.00 %")


def test_heldout_adds_an_ms_ssim_bd_rate_when_both_curves_have_it(tmp_path, capsys):
    ssim = [0.70, 0.80, 0.86, 0.90]
    with_ssim = lambda scale: [{**r, "ms_ssim": q} for r, q in zip(rows(CURVE, scale), ssim)]  # noqa: E731
    log = write_log(tmp_path / "s12" / "log.jsonl", [
        {"step": 500, "eval": rows(CURVE)}, {"step": 1000, "eval": with_ssim(1.0)},
        {"step": 1500, "eval": with_ssim(1.05)}])
    code, out, _ = run(capsys, "heldout", "--ref", f"{log}:1000", log)
    lines = out.splitlines()
    assert code == 0 and lines[1].endswith("BD-rate +0.00 %")   # an old evaluation: PSNR only
    assert lines[2].endswith("BD-rate +0.00 %, MS-SSIM +0.00 %")
    assert lines[3].endswith("BD-rate +5.00 %, MS-SSIM +5.00 %")
    code, out, _ = run(capsys, "heldout", "--per-level", "--ref", f"{log}:1000", log)
    lines = out.splitlines()
    assert lines[2].startswith("  L1 +0.00 %/+0.000 dB ") and "/" not in lines[2].split("dB")[1].split("L2")[0]
    assert lines[6] == "  " + " ".join(f"L{i} +5.00 %/+0.000 dB/+0.00e-3" for i in range(1, 5))


def test_heldout_reference_from_compare_json(tmp_path, capsys):
    ref = tmp_path / "shipped.json"
    ref.write_text(json.dumps({"models": [{"name": "psic-conv.safetensors (step 1)",
                                           "sampled": rows(CURVE, 1.1)}]}))
    log = write_log(tmp_path / "s7" / "log.jsonl", [{"step": 5, "eval": rows(CURVE)}])
    code, out, _ = run(capsys, "heldout", "--ref", ref, log)
    assert code == 0 and "psic-conv.safetensors (step 1)" in out
    assert out.splitlines()[1].endswith("BD-rate -9.09 %")


def test_heldout_reference_from_an_export_report(tmp_path, capsys):
    ref = tmp_path / "psic-conv.report.json"
    ref.write_text(json.dumps({"model_file": "Models/psic-conv.safetensors", "step": 71101,
                               "heldout_eval": {"crops": 8, "sampled": rows(CURVE, 0.8)}}))
    log = write_log(tmp_path / "s7" / "log.jsonl", [{"step": 72000, "eval": rows(CURVE)}])
    code, out, _ = run(capsys, "heldout", "--ref", ref, log)
    assert code == 0 and "step 71101, export report" in out
    assert out.splitlines()[1].endswith("BD-rate +25.00 %")
    # a report written before it held the curve says how to add one
    ref.write_text(json.dumps({"model_file": "Models/psic-conv.safetensors", "kodak": {"mean": []}}))
    code, _, err = run(capsys, "heldout", "--ref", ref, log)
    assert code == 2 and "export.py --evaluate" in err


def test_heldout_errors_are_typed_and_name_what_to_do(tmp_path, capsys):
    log = write_log(tmp_path / "s6" / "log.jsonl", [{"step": 1000, "eval": rows(CURVE)}])
    code, _, err = run(capsys, "heldout", "--ref", f"{log}:1500", log)
    assert code == 2 and "no evaluation at step 1500" in err and "1000" in err
    code, _, err = run(capsys, "heldout", "--ref", tmp_path / "missing.json", log)
    assert code == 2 and "cannot read" in err
    bad = tmp_path / "bad" / "log.jsonl"
    bad.parent.mkdir()
    bad.write_text("not json\n{}\n")
    code, _, err = run(capsys, "heldout", "--ref", f"{log}:1000", bad)
    assert code == 2 and "log.jsonl:1 is not JSON" in err
    empty = write_log(tmp_path / "e" / "log.jsonl", [train_line(1, 4.0)])
    code, _, err = run(capsys, "heldout", "--ref", f"{log}:1000", empty)
    assert code == 2 and "no held-out evaluation yet" in err
    # beside a log that has evaluations, one that has none yet is named and the rest are shown
    code, out, _ = run(capsys, "heldout", "--ref", f"{log}:1000", empty, log)
    assert code == 0 and "e: no held-out evaluation yet" in out and "s6 1000: " in out


def test_loss_means_over_a_step_range_take_a_resumed_steps_last_line(tmp_path, capsys):
    a = write_log(tmp_path / "a" / "log.jsonl", [train_line(s, 4.0) for s in (100, 125, 150, 175)])
    # b logged step 125 twice (stopped and resumed): the second line counts
    b = write_log(tmp_path / "b" / "log.jsonl",
                  [train_line(100, 3.0), train_line(125, 99.0), train_line(125, 3.0), train_line(150, 3.0)])
    code, out, _ = run(capsys, "loss", "--steps", "100:150", a, b)
    assert code == 0
    first, second = out.splitlines()
    assert "3 log lines, steps 100..150: loss 4.0000" in first
    assert "loss 3.0000" in second and "vs first: loss -25.00 %" in second
    assert "not the same batches" not in second
    code, out, _ = run(capsys, "loss", "--steps", "100:175", a, b)
    assert "not the same batches" in out.splitlines()[1]
    code, _, err = run(capsys, "loss", "--steps", "150:100", a)
    assert code == 2 and "FIRST:LAST" in err
    code, _, err = run(capsys, "loss", "--steps", "500:600", a)
    assert code == 2 and "no training step in 500..600" in err


def test_loss_gives_per_level_rates_and_the_median_step_time_when_logged(tmp_path, capsys):
    def line(step, levels, t):
        return {**train_line(step, 4.0), "bpp_levels": levels, "s_per_step": t}
    a = write_log(tmp_path / "a" / "log.jsonl", [line(100, [0.1, 0.2], 0.5), line(125, [0.1, 0.2], 0.7),
                                                 line(150, [0.1, 0.2], 0.6)])
    b = write_log(tmp_path / "b" / "log.jsonl", [line(100, [0.1, 0.19], 0.8), line(125, [0.1, 0.19], 0.9),
                                                 line(150, [0.1, 0.19], 0.6)])
    code, out, _ = run(capsys, "loss", "--steps", "100:150", a, b)
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "  bpp per level 0.1000 0.2000" and lines[2] == "  median s/step 0.600 over 3 log lines"
    assert lines[4] == "  bpp per level 0.1000 0.1900 (vs first +0.00 -5.00 %)"
    assert lines[5] == "  median s/step 0.800 over 3 log lines"


def report(path: Path, curve, rate_scale=1.0, mean_gain=None, step=1):
    mean = []
    for r in rows(curve, rate_scale):
        r["ms_ssim"] = 0.9 + r["psnr"] / 1000
        if mean_gain is not None:
            r["psnr_mean_details"] = r["psnr"] + mean_gain
            r["ms_ssim_mean_details"] = r["ms_ssim"]
        mean.append(r)
    path.write_text(json.dumps({"step": step, "fingerprint": "f" * 16,
                                "rates": {"calibration": {"rate_loss": -0.001}},
                                "kodak": {"rate_loss": 0.002, "mean": mean}}))
    return path


def test_exports_compares_both_detail_modes_when_both_reports_have_them(tmp_path, capsys):
    a = report(tmp_path / "a.json", CURVE, mean_gain=1.0)
    b = report(tmp_path / "b.json", CURVE, rate_scale=0.95, mean_gain=1.0, step=2)
    code, out, _ = run(capsys, "exports", a, b)
    assert code == 0
    assert "sampled details: PSNR BD-rate -5.00 %, MS-SSIM BD-rate -5.00 %" in out
    assert "mean details: PSNR BD-rate -5.00 %" in out
    assert "L2 0.110 bpp 19.00 dB" in out and "Kodak +0.200 %" in out
    # an older report (no mean details): sampled only, and says so
    old = report(tmp_path / "old.json", CURVE)
    code, out, _ = run(capsys, "exports", old, b)
    assert code == 0 and "mean details: not in both reports" in out
    code, _, err = run(capsys, "exports", old, tmp_path / "a.json.missing")
    assert code == 2 and "cannot read" in err
    (tmp_path / "nokodak.json").write_text("{}")
    code, _, err = run(capsys, "exports", old, tmp_path / "nokodak.json")
    assert code == 2 and "export.py --kodak" in err


def with_seeds(path: Path, seeds, shifts):
    """Adds --kodak-seeds columns to a report(): seed i's sampled PSNR is the main one + shifts[i]."""
    r = json.loads(path.read_text())
    r["kodak"]["sample_seeds"] = seeds
    for row in r["kodak"]["mean"]:
        row["psnr_seeds"] = [row["psnr"] + d for d in shifts]
        row["ms_ssim_seeds"] = [row["ms_ssim"]] * len(seeds)
    path.write_text(json.dumps(r))
    return path


def test_exports_gives_the_sampled_bd_rate_under_every_common_seed(tmp_path, capsys):
    a = with_seeds(report(tmp_path / "a.json", CURVE), [0, 1, 2], [0.0, 0.0, 0.0])
    # B spends 5 % less; under seed 2 its details also draw 0.5 dB worse at every level
    b = with_seeds(report(tmp_path / "b.json", CURVE, rate_scale=0.95), [0, 2, 1], [0.0, -0.5, 0.0])
    code, out, _ = run(capsys, "exports", a, b)
    assert code == 0
    assert "  seed 0: PSNR BD-rate -5.00 %" in out and "  seed 1: PSNR BD-rate -5.00 %" in out
    seed2 = next(line for line in out.splitlines() if line.startswith("  seed 2:"))
    assert float(seed2.split("PSNR BD-rate ")[1].split(" %")[0]) > 0      # seed 2 reverses the verdict
    assert "sampled details over seeds 0, 1, 2: PSNR BD-rate mean" in out
    code, out, _ = run(capsys, "exports", a, report(tmp_path / "c.json", CURVE))
    assert code == 0 and "other seeds: not in both reports" in out


def test_seed_rates_headline_is_the_mean_and_range_of_its_seed_lines(tmp_path, capsys):
    a = with_seeds(report(tmp_path / "a.json", CURVE), [0, 1, 2], [0.0, 0.0, 0.0])
    b = with_seeds(report(tmp_path / "b.json", CURVE, rate_scale=0.95), [0, 1, 2], [0.0, -0.5, 0.3])
    rates = figures.seed_bd_rates(json.loads(a.read_text()), json.loads(b.read_text()))
    assert rates.seeds == [0, 1, 2]
    assert rates.psnr[1] > rates.psnr[0] > rates.psnr[2]     # worse details cost bits, better ones save them
    assert rates.psnr[0] == pytest.approx(-5.0, abs=0.01)       # seed 0: the same curve at 95 % of the bits
    code, out, _ = run(capsys, "exports", a, b)
    head = next(line for line in out.splitlines() if line.startswith("sampled details over seeds"))
    assert f"PSNR BD-rate mean {rates.psnr_mean:+.2f} %" in head
    assert f"(range {rates.psnr[2]:+.2f} … {rates.psnr[1]:+.2f})" in head
    assert all(line in out for line in rates.lines())


def test_subcommand_is_required():
    with pytest.raises(SystemExit):
        figures.parse_args([])


def test_gradnorm_means_per_level_skip_windows_without_the_level(tmp_path, capsys):
    log = write_log(tmp_path / "r" / "log.jsonl", [
        train_line(25, 1.0),     # before session 35: no gradient norms, skipped
        {**train_line(50, 1.0), "grad_norm": 3.0, "clipped": 1.0, "grad_norm_levels": [2.0, None, 4.0]},
        {**train_line(75, 1.0), "grad_norm": 2.0, "clipped": 0.5, "grad_norm_levels": [4.0, None, 2.0]},
    ])
    code, out, _ = run(capsys, "gradnorm", log)
    assert code == 0
    assert "2 windows ending at steps 50..75, 75 % of steps clipped" in out and "L1 3.0 L2 - L3 3.0" in out
    code, _, err = run(capsys, "gradnorm", write_log(tmp_path / "old" / "log.jsonl", [train_line(25, 1.0)]))
    assert code != 0 and "grad_norm_levels" in err


def test_levels_compares_two_bench_levels_curves(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(rows(CURVE)))
    b.write_text(json.dumps(rows(CURVE, rate_scale=0.98)))
    code, out, _ = run(capsys, "levels", a, b)
    assert code == 0
    assert "PSNR BD-rate" in out and "-2.00 % (pchip)" in out
    assert "L1 0.0300 bpp 17.00 dB -> 0.0294 bpp 17.00 dB (-2.00 % bpp)" in out
    (tmp_path / "bad.json").write_text(json.dumps([{"level": 1}]))
    code, _, err = run(capsys, "levels", a, tmp_path / "bad.json")
    assert code == 2 and "psic bench levels --json" in err
    b.write_text(json.dumps(rows(CURVE[:3])))
    code, _, err = run(capsys, "levels", a, b)
    assert code == 2 and "4 and 3 levels" in err
