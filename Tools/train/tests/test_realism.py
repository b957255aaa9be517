"""The realism measure (psic_train/realism.py) and its probe (realism_probe.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("ot")   # POT, from Tools/eval/requirements.txt
import realism_probe  # noqa: E402
from psic_train.realism import (RealismConfig, RealismMeter, binomial_blur, collapse,  # noqa: E402
                                laplacian_pyramid)

torch.set_num_threads(1)
SMALL = RealismConfig(bands=3, per_image=128, projections=128)


def textured(seed: int, h: int = 96, w: int = 128, grain: int | None = None) -> torch.Tensor:
    """A photo-like 1x3xHxW image: smooth shading plus fine grain (drawn with seed `grain`, by
    default `seed`), in [0, 1]."""
    rng = np.random.default_rng(seed if grain is None else grain)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / (9 + seed) + c) * np.cos(yy / (11 + c)) for c in range(3)], 0)
    img = np.clip(0.5 + 0.3 * base + rng.normal(0, 0.06, base.shape), 0, 1)
    return torch.from_numpy(img).float()[None]


def test_the_pyramid_collapses_back_to_its_image():
    x = textured(0)
    bands, low = laplacian_pyramid(x, 3)
    assert [b.shape[-2:] for b in bands] == [(96, 128), (48, 64), (24, 32)] and low.shape[-2:] == (12, 16)
    torch.testing.assert_close(collapse(bands, low), x, atol=1e-5, rtol=0)
    # the band-pass images hold no mean: a flat image has no band energy
    flat, _ = laplacian_pyramid(torch.full((1, 3, 64, 64), 0.4), 2)
    assert all(b.abs().max() < 1e-6 for b in flat)


def test_the_photos_score_the_floor_and_blur_scores_worse_in_the_finest_band():
    photos = [textured(s) for s in range(3)]
    meter = RealismMeter(photos, SMALL)
    for i, p in enumerate(photos):
        meter.add("same", i, p)
        meter.add("blur", i, binomial_blur(binomial_blur(p)))
        meter.add("grain", i, (p + 0.08 * torch.randn_like(p)).clamp(0, 1))
    floor = meter.floor()
    assert meter.distances("same") == pytest.approx(floor)
    blur, grain = meter.distances("blur"), meter.distances("grain")
    # too little and too much fine detail both lie further from the photos than they do themselves
    assert blur[0] > 2 * floor[0] and grain[0] > 2 * floor[0]
    # the positions and directions are seeded: a second meter measures the same
    again = RealismMeter(photos, SMALL)
    for i, p in enumerate(photos):
        again.add("blur", i, binomial_blur(binomial_blur(p)))
    assert again.distances("blur") == blur


def test_a_decode_with_other_but_equally_real_details_scores_near_the_floor():
    # the same scenes with fresh grain: no fine detail matches its photo's, its statistics do
    photos = [textured(s) for s in range(4)]
    meter = RealismMeter(photos, SMALL)
    for i, p in enumerate(photos):
        meter.add("regrained", i, textured(i, grain=100 + i))
        meter.add("blur", i, binomial_blur(binomial_blur(p)))
    floor, regrained, blur = meter.floor(), meter.distances("regrained"), meter.distances("blur")
    assert regrained[0] < 1.25 * floor[0] < blur[0] / 2
    # while PSNR would put the blur far ahead of fresh grain
    mse = lambda a, b: float(torch.mean((a - b) ** 2))  # noqa: E731
    assert mse(binomial_blur(binomial_blur(photos[0])), photos[0]) < mse(textured(0, grain=100), photos[0]) / 2


def test_bad_input_is_refused():
    photos = [textured(0)]
    meter = RealismMeter(photos, SMALL)
    with pytest.raises(ValueError, match="for photo 0"):
        meter.add("x", 0, textured(0, 64, 64))
    with pytest.raises(ValueError, match="decodes of 0 of the 1 photos"):
        meter.distances("nothing")
    with pytest.raises(ValueError, match="use fewer bands"):
        RealismMeter([textured(0, 64, 64)], RealismConfig(bands=5))
    with pytest.raises(SystemExit):
        realism_probe.parse_args(["m.pt", "--sample-scale", "0"])
    with pytest.raises(SystemExit):
        realism_probe.parse_args(["m.pt", "--bands", "0"])


def test_the_probe_scores_a_tiny_model_on_every_level(tmp_path, capsys):
    from psic_train.checkpoint import write_checkpoint
    from psic_train.model import PSICModel
    from tiny import TINY_CONFIG
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG)
    folder = tmp_path / "photos"
    folder.mkdir()
    for s in range(2):
        img = (textured(s, 128, 128)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(img).save(folder / f"{s}.png")
    ckpt = tmp_path / "tiny.pt"
    write_checkpoint(ckpt, {"model": model.state_dict(), "config": TINY_CONFIG.to_dict(), "step": 7})
    out = tmp_path / "r.json"
    realism_probe.main([str(ckpt), "--data", str(folder), "--details", "both", "--bands", "2", "--patches", "32",
                        "--projections", "32", "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    # (a checkpoint without a moving average gives its raw weights, and says so)
    assert "tiny.pt (step 7, raw), sampled details (seed 0, scale x 1)" in printed and "mean details" in printed
    report = json.loads(out.read_text())
    assert len(report["floor"]) == 2 and len(report["models"]) == 2
    levels = report["models"][0]["levels"]
    assert [r["level"] for r in levels] == list(range(1, TINY_CONFIG.L + 1))
    # the full level samples nothing: both modes decode it alike
    assert report["models"][0]["levels"][-1]["distances"] == report["models"][1]["levels"][-1]["distances"]


def test_decoded_folders_are_scored_against_the_photos_of_the_same_names(tmp_path, capsys):
    photos, same, missing = tmp_path / "photos", tmp_path / "same", tmp_path / "missing"
    for d in (photos, same, missing):
        d.mkdir()
    for s in range(2):
        img = (textured(s, 128, 128)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(img).save(photos / f"p{s}.png")
        Image.fromarray(img).save(same / f"p{s}.png")   # a "decode" that is the photo
    Image.fromarray(img).save(missing / "p1.png")
    out = tmp_path / "r.json"
    realism_probe.main(["--data", str(photos), "--decoded", str(same), "--bands", "2", "--patches", "32",
                        "--projections", "32", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["decoded"][0]["distances"] == pytest.approx(report["floor"])
    with pytest.raises(SystemExit, match="p0.png does not exist"):
        realism_probe.main(["--data", str(photos), "--decoded", str(missing), "--bands", "2", "--patches", "32"])
    with pytest.raises(SystemExit):
        realism_probe.parse_args([])
    assert "give a model or --decoded folders" in capsys.readouterr().err


def test_decoded_folders_get_ssimulacra2_when_asked(tmp_path, capsys):
    pytest.importorskip("ssimulacra2")
    photos, same, grey = tmp_path / "photos", tmp_path / "same", tmp_path / "grey"
    for d in (photos, same, grey):
        d.mkdir()
    for s in range(2):
        img = (textured(s, 128, 128)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(img).save(photos / f"p{s}.png")
        Image.fromarray(img).save(same / f"p{s}.png")
        Image.fromarray(np.full_like(img, 128)).save(grey / f"p{s}.png")
    out = tmp_path / "r.json"
    realism_probe.main(["--data", str(photos), "--decoded", str(same), str(grey), "--bands", "2", "--patches", "32",
                        "--projections", "32", "--ssimulacra2", "--json", str(out)])
    same_row, grey_row = json.loads(out.read_text())["decoded"]
    assert same_row["ssimulacra2"] == pytest.approx(100, abs=0.01)   # the photo itself scores the metric's top
    assert grey_row["ssimulacra2"] < 50
    assert "SSIMULACRA2 100.00" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        realism_probe.parse_args(["--ssimulacra2", "model.pt"])
    assert "--ssimulacra2 scores --decoded folders" in capsys.readouterr().err
