"""Fast tests of the pure parts of Tools/eval: BD-rate, PSNR, command construction."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bdrate  # noqa: E402
import metrics  # noqa: E402
from codec_runners import CODECS, PSIC  # noqa: E402


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bdrate_constant_factor(method):
    # Test curve needs exactly 0.8x the anchor's rate at every quality: BD-rate -20 %.
    q = np.linspace(30, 40, 6)
    rate = np.exp(0.15 * q) / 100
    assert bdrate.bd_rate(rate, q, 0.8 * rate, q, method) == pytest.approx(-20.0, abs=1e-6)
    assert bdrate.bd_rate(rate, q, 1.5 * rate, q, method) == pytest.approx(50.0, abs=1e-6)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bdrate_identical_and_partial_overlap(method):
    q = np.array([30.0, 32, 34, 36, 38])
    rate = np.array([0.1, 0.2, 0.4, 0.8, 1.6])            # log-rate linear in q
    assert bdrate.bd_rate(rate, q, rate, q, method) == pytest.approx(0.0, abs=1e-9)
    # Test curve shifted by +1 dB at equal rate: rate ratio 2^(-1/2) over the overlap [31, 38].
    assert bdrate.bd_rate(rate, q, rate, q + 1, method) == pytest.approx((2 ** -0.5 - 1) * 100, abs=1e-6)


def test_bdrate_lower_is_better_metric_and_order():
    # A metric where lower is better (like Butteraugli): points given in any order.
    d = np.array([8.0, 5, 3, 2, 1.5])
    rate = np.exp(-0.3 * d)
    perm = [3, 0, 4, 1, 2]
    assert bdrate.bd_rate(rate, d, 0.5 * rate[perm], d[perm]) == pytest.approx(-50.0, abs=1e-6)


def test_bdrate_no_overlap_is_nan():
    q = np.array([20.0, 21, 22, 23])
    r = np.array([0.1, 0.2, 0.3, 0.4])
    assert math.isnan(bdrate.bd_rate(r, q, r, q + 10))
    assert math.isnan(bdrate.bd_rate(r[:3], q[:3], r, q))


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 3                          # MSE = 9/3 = 3 over all channels
    assert metrics.mse(a, b) == pytest.approx(3.0)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 3))
    assert metrics.psnr(a, a) == math.inf
    c = np.full((2, 2, 3), 255, np.uint8)
    assert metrics.psnr(np.zeros_like(c), c) == pytest.approx(0.0)


def test_ssimulacra2_scores_where_installed_and_is_absent_otherwise(tmp_path, monkeypatch):
    from PIL import Image
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(ref).save(tmp_path / "a.png")
    Image.fromarray(np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)).save(
        tmp_path / "b.png")
    if metrics.ssimulacra2_available():
        assert metrics.ssimulacra2(tmp_path / "a.png", tmp_path / "a.png") > 99
        assert metrics.ssimulacra2(tmp_path / "a.png", tmp_path / "b.png") < 90
        assert metrics.available()["ssimulacra2"].startswith("ssimulacra2 ")
    monkeypatch.setitem(sys.modules, "ssimulacra2", None)   # an import of it now raises ImportError
    assert not metrics.ssimulacra2_available()
    assert metrics.ssimulacra2(tmp_path / "a.png", tmp_path / "b.png") is None
    assert metrics.available()["ssimulacra2"] == ""


def test_sample_spread():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a + 1
    assert metrics.sample_spread([a, b]) == pytest.approx(10 * math.log10(255 ** 2))
    assert math.isnan(metrics.sample_spread([a]))


def test_codec_commands():
    s, d = Path("in.ppm"), Path("out.jpg")
    assert CODECS["jpeg"].encode_cmd(s, d, 40) == ["cjpeg", "-optimize", "-quality", "40", "-outfile", "out.jpg", "in.ppm"]
    assert CODECS["webp"].encode_cmd(Path("a.png"), Path("b.webp"), 75)[:5] == ["cwebp", "-quiet", "-m", "6", "-q"]
    av = CODECS["avif"].encode_cmd(Path("a.png"), Path("b.avif"), 30)
    assert av[:5] == ["avifenc", "-c", "aom", "-s", "6"] and av[av.index("--min") + 1] == "30" and av[av.index("--max") + 1] == "30"
    jx = CODECS["jxl"].encode_cmd(Path("a.png"), Path("b.jxl"), 1.5)
    assert jx[:3] == ["cjxl", "a.png", "b.jxl"] and "-e" in jx and jx[jx.index("-e") + 1] == "7" and jx[jx.index("-d") + 1] == "1.5"
    assert CODECS["jpeg"].describe().startswith("cjpeg -optimize -quality Q")
    assert CODECS["webp"].command_lines() == "cwebp -quiet -m 6 -q Q IN -o OUT.webp ; dwebp -quiet OUT.webp -o DEC"


def test_psic_commands():
    p = PSIC(Path("/bin/psic"), backend="vulkan")
    assert p.encode_cmd(Path("a.png"), Path("a.psic")) == ["/bin/psic", "encode", "a.png", "-o", "a.psic", "--force", "--backend", "vulkan", "--jobs", "1"]
    assert p.truncate_cmd(Path("a.psic"), Path("b.psic"), 3) == ["/bin/psic", "truncate", "a.psic", "--levels", "3", "-o", "b.psic", "--force"]
    d = p.decode_cmd(Path("b.psic"), Path("b.png"), seed=0, samples=4)
    assert d[:4] == ["/bin/psic", "decode", "b.psic", "-o"] and d[d.index("--samples") + 1] == "4" and d[d.index("--seed") + 1] == "0"
    assert "--samples" not in p.decode_cmd(Path("b.psic"), Path("b.png"))
    assert "--details" not in p.decode_cmd(Path("b.psic"), Path("b.png"))
    m = p.decode_cmd(Path("b.psic"), Path("b.png"), details="mean")
    assert m[m.index("--details") + 1] == "mean"


def test_qualities_cover_range():
    for c in CODECS.values():
        assert len(c.qualities) >= 6


def test_lpips_from_local_weights(tmp_path):
    # Random weights in the loader's format: checks the wiring only (no pretrained weights here).
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train"))
    from psic_train.perceptual import LPIPS
    torch.manual_seed(0)
    f = tmp_path / "lpips.pt"
    torch.save(LPIPS("alex").lpips_state_dict(), f)
    metrics.configure_lpips([f])
    try:
        a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)
        assert metrics.lpips(a, a) == pytest.approx(0.0, abs=1e-6)
        assert metrics.lpips(a, b) != 0.0
    finally:
        metrics.configure_lpips(None)
    assert metrics.lpips(a, b) is None


def test_psic_model_fingerprint_from_file(tmp_path, monkeypatch):
    import json
    import struct
    import evaluate
    header = json.dumps({"__metadata__": {"psic": json.dumps({"fingerprint": "00ff00ff00ff00ff"})}}).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    monkeypatch.setenv("PSIC_MODEL", str(tmp_path / "m.safetensors"))
    assert evaluate.psic_model_fingerprint() == "00ff00ff00ff00ff"
    monkeypatch.setenv("PSIC_MODEL", str(tmp_path / "missing.safetensors"))
    with pytest.raises(SystemExit):
        evaluate.psic_model_fingerprint()


def test_reference_seeds_only_matching_images_and_versions(tmp_path):
    import json
    import reference
    imgs = []
    for stem in ("a", "b"):
        p = tmp_path / f"{stem}.png"
        p.write_bytes(stem.encode() * 10)
        imgs.append(p)
    tools = {"webp": {"webp": "1.2.4", "butteraugli": "0~2", "ssimulacra2": "0.1", "pytorch-msssim": "1.0"},
             "jpeg": {"libjpeg-turbo-progs": "1:2.1.5", "butteraugli": "0~2", "ssimulacra2": "0.1",
                      "pytorch-msssim": "1.0"}}
    records = [{"codec": c, "image": s, "quality": q, "bpp": 0.5, "psnr": 30.0}
               for c in ("webp", "jpeg") for s in ("a", "b") for q in (5, 20)]
    records.append({"codec": "psic", "image": "a", "quality": 1, "bpp": 0.1})
    ref = tmp_path / "ref.json"
    assert reference.write_reference(ref, records, imgs, tools) == 8   # PSIC's are never kept
    # Same versions, image b changed since: a's results are seeded, b's are measured.
    imgs[1].write_bytes(b"changed")
    out = tmp_path / "out"
    report = reference.seed_cache(ref, out, imgs, tools)
    assert report == {"webp": "2 results from the reference", "jpeg": "2 results from the reference"}
    assert json.loads((out / "cache" / "webp" / "a_q20.json").read_text())["psnr"] == 30.0
    assert not (out / "cache" / "webp" / "b_q20.json").exists()
    # An existing cache entry is kept; another webp version is measured; codecs not asked are left.
    (out / "cache" / "jpeg" / "a_q5.json").write_text('{"mine": 1}')
    other_out = tmp_path / "out2"
    newer = {"webp": {**tools["webp"], "webp": "1.3.0"}}
    report = reference.seed_cache(ref, other_out, imgs, newer)
    assert list(report) == ["webp"] and "(webp): measured" in report["webp"]
    assert not (other_out / "cache").exists()
    # So is a webp whose command lines changed (say, another -m), with the same versions.
    other_cmd = {"webp": {**tools["webp"], "command lines": "cwebp -m 4 ..."}}
    report = reference.seed_cache(ref, other_out, imgs, other_cmd)
    assert "(command lines): measured" in report["webp"]
    assert not (other_out / "cache").exists()
    assert reference.seed_cache(ref, out, imgs, tools)["jpeg"] == "0 results from the reference"
    assert json.loads((out / "cache" / "jpeg" / "a_q5.json").read_text()) == {"mine": 1}


FAKE_PSIC = """#!{python}
# A stand-in for psic: streams of 100 bytes per level; decodes are flat images, value 90 + seed
# for sampled details and 99 for mean ones (the original is 100).
import sys
from pathlib import Path
from PIL import Image
a = sys.argv[1:]
opt = lambda k, d=None: a[a.index(k) + 1] if k in a else d
dst = Path(opt("-o"))
if a[0] == "encode":
    dst.write_bytes(b"x" * 800)
elif a[0] == "truncate":
    dst.write_bytes(b"x" * (100 * int(opt("--levels"))))
elif a[0] == "decode":
    samples, seed = int(opt("--samples", "1")), int(opt("--seed", "0"))
    if opt("--details") == "mean":
        Image.new("RGB", (32, 32), (99,) * 3).save(dst)
    elif samples == 1:
        Image.new("RGB", (32, 32), (90 + seed,) * 3).save(dst)
    else:
        for k in range(samples):
            Image.new("RGB", (32, 32), (90 + seed + k,) * 3).save(dst.with_name(f"{{dst.stem}}-s{{k}}.png"))
"""


def test_psic_task_measures_mean_details_beside_samples(tmp_path, monkeypatch):
    """task_psic: one psic-mean record per level, with the psic record's bytes: the mean-details
    decode below L, the seed-0 decode at L (nothing left to fill); results are cached."""
    import evaluate
    from PIL import Image
    fake = tmp_path / "psic"
    fake.write_text(FAKE_PSIC.format(python=sys.executable))
    fake.chmod(0o755)
    img = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (100,) * 3).save(img)
    monkeypatch.setattr(metrics, "all_metrics", lambda ref_path, dist_path, ref=None, full=True: {
        "psnr": metrics.psnr(metrics.load_rgb(ref_path), metrics.load_rgb(dist_path)), "ms_ssim": 1.0})
    monkeypatch.setattr(metrics, "ms_ssim", lambda a, b: 1.0)   # needs images over 160 pixels
    binary_id = evaluate.psic_binary_id(fake)
    assert len(binary_id) == 12 and binary_id != evaluate.psic_binary_id(img)
    args = (str(fake), 2, str(img), str(tmp_path / "out"), "m1", binary_id)
    recs = evaluate.task_psic(args)
    psic = {r["quality"]: r for r in recs if r["codec"] == "psic"}
    mean = {r["quality"]: r for r in recs if r["codec"] == "psic-mean"}
    assert sorted(psic) == sorted(mean) == list(range(1, 9))
    for level in range(1, 8):
        assert mean[level]["bytes"] == psic[level]["bytes"] == 100 * level
        assert mean[level]["psnr"] == pytest.approx(metrics.psnr(np.full((32, 32, 3), 100, np.uint8),
                                                                 np.full((32, 32, 3), 99, np.uint8)))
        assert mean[level]["psnr"] > psic[level]["psnr"]
    assert mean[8]["psnr"] == psic[8]["psnr"]
    assert {r["binary"] for r in recs} == {binary_id}
    fake.unlink()   # a second call reads the cache
    assert evaluate.task_psic(args) == recs
    # another executable (the same model) is measured afresh, never read from this one's cache
    with pytest.raises(OSError):
        evaluate.task_psic(args[:-1] + ("0123456789ab",))
    agg = evaluate.aggregate(recs)
    assert list(agg) == ["psic", "psic-mean"]


def test_ms_ssim_in_db_is_averaged_per_image_and_drives_the_bd_tables():
    import evaluate
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(1.0) == 100.0
    recs = []
    for codec, scale in (("jpeg", 1.0), ("psic", 0.8)):
        for q, (a, b) in enumerate([(0.9, 0.99), (0.95, 0.995), (0.98, 0.998), (0.99, 0.999)]):
            for image, v in (("x", a), ("y", b)):
                recs.append({"codec": codec, "quality": q, "image": image, "bytes": 1, "bpp": scale * (q + 1),
                             "psnr": 30.0 + q + (image == "y"), "ms_ssim": v})
    agg = evaluate.aggregate(recs)
    # Mean of per-image dB (10 and 20 dB), not the dB of the mean MS-SSIM (0.945: 12.6 dB).
    # Four qualities: a cubic BD-rate fit needs four points.
    assert agg["jpeg"][0]["ms_ssim_db"] == pytest.approx(15.0)
    table = evaluate.bd_tables(agg)
    row = next(line for line in table.splitlines() if line.startswith("| ms_ssim_db |"))
    assert "-20.0" in row   # PSIC needs 0.8x the bits at every quality
    assert not any(line.startswith("| ms_ssim |") for line in table.splitlines())


def test_level_gains_names_the_smallest_step_and_a_drop():
    import evaluate
    rec = lambda image, q, p: {"codec": "psic", "image": image, "quality": q, "psnr": p}
    rising = [rec("a", 1, 20.0), rec("a", 2, 22.0), rec("a", 3, 23.5), rec("b", 1, 19.0), rec("b", 2, 21.0),
              {"codec": "jpeg", "image": "a", "quality": 50, "psnr": 1.0}]
    text = evaluate.level_gains(rising)
    assert "+1.50 dB (a, level 2 → 3, 2 images)" in text and "grows with the level on every image" in text
    falling = rising + [rec("b", 3, 20.5)]
    text = evaluate.level_gains(falling)
    assert "-0.50 dB (b, level 2 → 3" in text and "does NOT grow" in text
    assert evaluate.level_gains([]) == ""


def _doc_agg(psic_scale):
    """Four anchors and PSIC (seed 0 and mean details) on the same quality grid; PSIC needs
    psic_scale x each anchor's rate."""
    import evaluate
    recs = []
    for codec, scale in (("jpeg", 1.0), ("webp", 0.5), ("avif", 0.25), ("jxl", 1.0),
                         ("psic", psic_scale), ("psic-mean", psic_scale)):
        for q in range(1, 5):
            recs.append({"codec": codec, "quality": q, "image": "x", "bytes": 1, "bpp": scale * 2 ** q,
                         "psnr": 25.0 + 2 * q, "ms_ssim": 1 - 10 ** (-q / 2), "ssimulacra2": 10.0 * q})
    return evaluate.aggregate(recs)


def _doc(tmp_path, headline="old headline"):
    import results_doc
    names = ("model", "headline", "history", "curves", "bdrate", "samples")
    text = "# r\n\n" + "\n\nprose\n\n".join(f"<!-- eval:{n} -->\n{headline if n == 'headline' else 'x'}\n<!-- /eval:{n} -->"
                                           for n in names) + "\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text(text)
    readme = "\n\n".join(f"<!-- eval:{n} -->\nx\n<!-- /eval:{n} -->" for n in ("readme-model", "readme-levels",
                                                                                "readme-bdrate"))
    (tmp_path / "README.md").write_text("# PSIC\n\n" + readme + "\n\n## Layout\n")
    return results_doc


def _info(results_doc, fingerprint, step):
    return results_doc.RunInfo(fingerprint=fingerprint, step=step, weights="EMA", architecture="conv, N=1",
                               commit="abc1234", date="2026-12-04 17:00 UTC", images=24, folder="kodak")


def test_results_doc_rewrites_every_block_and_keeps_the_prose(tmp_path):
    rd = _doc(tmp_path)
    agg = _doc_agg(0.8)
    doc = tmp_path / "docs" / "results.md"
    rd.update_results(doc, _info(rd, "aaaa", 100), agg, "CURVES", "BDRATE")
    text = doc.read_text()
    assert text.count("prose") == 5 and "CURVES" in text and "BDRATE" in text
    assert "fingerprint `aaaa`, training step 100, EMA weights" in text
    # PSIC needs 0.8x JPEG's bits, 1.6x WebP's, 3.2x AVIF's: -20 / +60 / +220 / -20 %.
    assert "PSNR −20 / +60 / +220 / −20 %" in rd.block(text, "headline")
    assert rd.block(text, "history") == "x"       # the old headline had no data: nothing to keep
    rd.update_readme(tmp_path / "README.md", _info(rd, "aaaa", 100), agg)
    readme = (tmp_path / "README.md").read_text()
    assert "| PSNR | −20 % | +60 % | +220 % | −20 % |" in readme
    assert "| PSIC level | 1 | 2 | 3 | 4 |" in readme and readme.endswith("## Layout\n")


def test_results_doc_moves_the_previous_models_headline_to_the_history(tmp_path):
    rd = _doc(tmp_path)
    doc = tmp_path / "docs" / "results.md"
    rd.update_results(doc, _info(rd, "aaaa", 100), _doc_agg(0.8), "", "")
    rd.update_results(doc, _info(rd, "aaaa", 100), _doc_agg(0.8), "", "")    # same model again: no entry
    assert rd.block(doc.read_text(), "history") == "x"
    rd.update_results(doc, _info(rd, "bbbb", 200), _doc_agg(0.5), "", "")
    text = doc.read_text()
    history = rd.block(text, "history").splitlines()
    assert history[0].startswith("- Model `aaaa` (step 100, measured 2026-12-04 17:00 UTC): ")
    assert "PSNR −20 / +60 / +220 / −20 %" in history[0] and history[1] == "x"
    assert "PSNR −50 / ±0 / +100 / −50 %" in rd.block(text, "headline")


def test_results_doc_wraps_without_splitting_a_figure_list(tmp_path):
    rd = _doc(tmp_path)
    text = ("Cubic BD-rates, sampled details (seed 0) against JPEG / WebP / AVIF / JPEG XL: PSNR −1 / +67 / "
            "+145 / +40 %, MS-SSIM (dB) −26 / +9 / +51 / +7 %; mean details: PSNR −15 / +51 / +116 / +29 %.")
    lines = rd._wrap(text).splitlines()
    assert len(lines) > 1 and " ".join(lines) == text and "\u00a0" not in "".join(lines)
    for line in lines:
        # No line starts or ends inside a list: not with "/", a bare "%", or a number followed by " /".
        assert not line.startswith(("/", "%")) and not line.endswith(("/", " −1", " +145"))
    assert any("−1 / +67 / +145 / +40 %," in line for line in lines)
    speed = ("warm (`psic bench codec`, graphs prepared) 0.37 s and 0.39 s, where the same model's transforms alone "
             "take 0.50 s / 0.63 s in PyTorch")
    assert all(not line.startswith(("s ", "/")) for line in rd._wrap(speed).splitlines())


def test_results_doc_refuses_a_document_without_its_markers(tmp_path):
    rd = _doc(tmp_path)
    doc = tmp_path / "docs" / "results.md"
    doc.write_text(doc.read_text().replace("<!-- /eval:curves -->", ""))
    with pytest.raises(rd.ResultsDocError, match="eval:curves"):
        rd.update_results(doc, _info(rd, "aaaa", 100), _doc_agg(0.8), "", "")
    with pytest.raises(rd.ResultsDocError, match="results.md: expected one '<!-- eval:curves -->'"):
        rd.check_documents(doc, tmp_path / "README.md")

    with pytest.raises(rd.ResultsDocError):
        rd.replace_block("<!-- eval:a -->\n<!-- /eval:a -->\n<!-- eval:a -->\n<!-- /eval:a -->", "a", "y")


def test_docs_option_needs_the_whole_sweep(capsys):
    import evaluate
    import results_doc
    repo = Path(__file__).resolve().parents[3]
    # The committed documents carry every block a run writes.
    results_doc.check_documents(repo / "docs" / "results.md", repo / "README.md")
    for partial in (["--limit", "3"], ["--codecs", "psic"]):
        with pytest.raises(SystemExit) as e:
            evaluate.main(["--docs", "docs", *partial])
        assert e.value.code == 2 and "--docs rewrites the published figures" in capsys.readouterr().err


def test_a_folder_without_images_is_refused_before_anything_runs(tmp_path, capsys):
    import evaluate
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--images", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "no PNG images there" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_speed_blocks_state_the_run_and_its_ratios(tmp_path):
    import speed
    rd = _doc(tmp_path)
    doc, readme = tmp_path / "docs" / "results.md", tmp_path / "README.md"
    doc.write_text(doc.read_text() + "\n<!-- eval:speed -->\nold\n<!-- /eval:speed -->\n")
    readme.write_text(readme.read_text() + "\n<!-- eval:readme-speed -->\nold\n<!-- /eval:readme-speed -->\n")
    rd.check_documents(doc, readme, speed=True)
    res = {"machine": {"cpus": 2, "cpu": "Test CPU", "load_at_start": (0.5, 0.4, 0.3)}, "images": ["a", "b"],
           "psic_cpu": {"encode_wall_s": 0.5, "encode_self_s": 0.2, "decode_wall_s": 0.6, "decode_self_s": 0.4, "n": 2},
           "psic_vulkan": {"encode_wall_s": 2.0, "encode_self_s": 1.0, "decode_wall_s": 2.0, "decode_self_s": 1.2, "n": 1},
           "torch_cpu": {"encode_s": 0.3, "decode_s": 0.2, "g_a": 0.2, "h_a": 0.0, "h_s": 0.0, "entropy_params": 0.1,
                         "g_s": 0.1, "threads": 2, "size": "8x8", "device": "cpu", "reps": 3},
           "codecs": {"jpeg": {"quality": 85, "encode_s": 0.01, "decode_s": 0.02, "bpp": 1.0, "command": "cjpeg"}},
           "psic_batch_cpu": {"images": 2, "wall_s": 1.0, "images_per_s": 2.0, "self_s": None, "self_images_per_s": None},
           "psic_warm_cpu": {"encode_s": 0.15, "decode_s": 0.1, "bytes": 99, "device": "cpu", "repeats": 9, "image": "a"},
           "psic_warm_vulkan": {"encode_s": 0.6, "decode_s": 0.5, "bytes": 99, "device": "lvp", "repeats": 3,
                                "image": "a"}}
    rd.update_speed(doc, readme, _info(rd, "aaaa", 100), res, speed.speed_table(res))
    block = rd.block(doc.read_text(), "speed")
    flat = " ".join(block.split())          # the prose is wrapped at 100 columns
    assert "commit `abc1234`" in flat and "2 CPUs (Test CPU), load average 0.50" in flat
    assert "encodes 1.5× faster and decodes 2.0× slower than PyTorch's" in flat   # 0.2 vs 0.3, 0.4 vs 0.2
    assert "encode 5.0× slower, decode 3.0× slower" in flat                        # Vulkan vs CPU
    assert "| psic cpu (psic's own timer) | 0.200 | 0.400 |" in block
    assert "| psic vulkan (warm: `psic bench codec`) | 0.600 | 0.500 |" in block
    assert "Warm psic CPU vs PyTorch/CompressAI** (graphs prepared, entropy coding included, against " \
           "transforms only): encode 2.0× faster, decode 2.0× faster" in flat
    assert "(lvp): encode 4.0× slower, decode 5.0× slower; both wrote the same stream" in flat
    readme_block = " ".join(rd.block(readme.read_text(), "readme-speed").split())
    assert "encodes in 0.20 s and decodes in 0.40 s" in readme_block
    assert "warm (`psic bench codec`, graphs prepared) 0.15 s and 0.10 s" in readme_block
    with pytest.raises(rd.ResultsDocError):
        rd.check_documents(doc, tmp_path / "README-missing.md", speed=True)
