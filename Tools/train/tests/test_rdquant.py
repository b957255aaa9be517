"""The encoder's rate-distortion symbol choice (intmodel.rd_symbols) and where it reaches: encode,
the model file's `encoder` block, export's Kodak evaluation and golden vectors. No ../shared."""
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from psic_train import intmodel as im  # noqa: E402
from psic_train.golden import make_golden  # noqa: E402
from psic_train.kodakeval import evaluate_kodak  # noqa: E402
from psic_train.modelfile import ModelFile, write_model  # noqa: E402
from tiny import tiny_integer_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    return tiny_integer_model()


def two_tables() -> im.CDFTables:
    """Table 0: values -2..2 (frequencies 1000, 4000, 50000, 10000, 535) then escape (1); table 1:
    values 0..1 (frequencies 60000, 5535) then escape (1)."""
    f0, f1 = [1000, 4000, 50000, 10000, 535, 1], [60000, 5535, 1]
    cdf = np.zeros((2, 7), np.int32)
    cdf[0] = np.concatenate([[0], np.cumsum(f0)])
    cdf[1, :4] = np.concatenate([[0], np.cumsum(f1)])
    t = im.CDFTables(cdf=cdf, length=np.array([6, 3]), offset=np.array([-2, 0]))
    t.validate()
    return t


def test_rd_symbols_hand_examples():
    t = two_tables()
    bits = lambda f: -math.log2(f / 65536)  # noqa: E731
    # r = 0.4 in table 0: nearest 0 (50000) costs less than 1 (10000) and is nearer: 0 at any lambda
    assert im.rd_symbols(np.float32([[0.4]]), np.array([[0]]), t, 1.0)[0, 0] == 0
    # r = 0.6: nearest is 1; 0 saves bits(10000) - bits(50000) = 2.32 bits for 0.36 - 0.16 = 0.2 of
    # squared error, so 0 wins below lambda 11.6 and 1 above
    saving = bits(10000) - bits(50000)
    assert im.rd_symbols(np.float32([[0.6]]), np.array([[0]]), t, saving / 0.2 * 0.99)[0, 0] == 0
    assert im.rd_symbols(np.float32([[0.6]]), np.array([[0]]), t, saving / 0.2 * 1.01)[0, 0] == 1
    # r = -1.45: nearest -1 (4000) against -2 (1000): -1 is both nearer and cheaper
    assert im.rd_symbols(np.float32([[-1.45]]), np.array([[0]]), t, 0.01)[0, 0] == -1
    # r = 2.4 in table 0: the other neighbour, 3, is escaped: the nearest stands at any lambda
    assert im.rd_symbols(np.float32([[2.4]]), np.array([[0]]), t, 1e-6)[0, 0] == 2
    # r = -0.4 in table 1: -1 is escaped there, 0 stands; r = 1.2: 2 is escaped, 1 stands
    assert im.rd_symbols(np.float32([[-0.4, 1.2]]), np.array([[1, 1]]), t, 1e-6).tolist() == [[0, 1]]
    # r exactly an integer: the other candidate is one step away and never wins at a sane lambda
    assert im.rd_symbols(np.float32([[1.0]]), np.array([[0]]), t, 5.0)[0, 0] == 1


def test_rd_symbols_is_nearest_rounding_for_a_large_lambda_and_only_ever_a_neighbour():
    t = two_tables()
    rng = np.random.default_rng(0)
    r = rng.uniform(-2.5, 2.5, (4, 1000)).astype(np.float32)
    rows = rng.integers(0, 2, r.shape)
    assert np.array_equal(im.rd_symbols(r, rows, t, 1e9), im.round_half_away(r))
    q = im.rd_symbols(r, rows, t, 2.0)
    assert np.all(np.abs(q - r) < 1) and np.any(q != im.round_half_away(r))


def test_encode_with_a_weight_saves_bits_at_a_small_latent_error(setup):
    _, ent, y, z = setup
    y, z = y.numpy(), z.numpy()
    plain, rd = ent.encode(y, z), ent.encode(y, z, rd_lambda=20.0)
    bits = lambda e: ent.gaussian.bits(e["k_code"], e["q"])[0]  # noqa: E731
    assert bits(rd) < bits(plain)
    yhat = lambda e: e["y_hat"] / im.MEAN_SCALE  # noqa: E731
    err_plain, err_rd = np.mean((yhat(plain) - y) ** 2), np.mean((yhat(rd) - y) ** 2)
    assert err_plain < err_rd < err_plain + 0.1
    # each level's parameters follow from the symbols chosen before it (the engine's order)
    lc = ent.level_channels
    buf = np.concatenate([rd["H"], rd["y_hat"]], 1)
    for i in range(ent.L):
        mu, k = ent.level_params(i, buf)
        assert np.array_equal(mu, rd["mu"][:, i * lc:(i + 1) * lc]) and np.array_equal(k, rd["k"][:, i * lc:(i + 1) * lc])
    assert np.array_equal(ent.encode(y, z, rd_lambda=0.0)["q"], plain["q"])


def test_model_file_carries_the_weight_and_refuses_a_bad_one(setup, tmp_path):
    model, ent, _, _ = setup
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    meta_a = write_model(a, model, ent, fp16=False, training={"steps": 0})
    meta_b = write_model(b, model, ent, fp16=False, training={"steps": 0}, rd_lambda=40.0)
    assert "encoder" not in meta_a and meta_b["encoder"] == {"rate_distortion_lambda": [40.0] * 4}
    # metadata only: the tensors and so the fingerprint are the same
    assert meta_a["fingerprint"] == meta_b["fingerprint"]
    assert ModelFile(a).rd_lambda == [0.0] * 4 and ModelFile(b).rd_lambda == [40.0] * 4
    c = tmp_path / "c.safetensors"
    write_model(c, model, ent, fp16=False, training={"steps": 0}, rd_lambda=im.level_lambdas(10.0, 4, 2.0))
    assert ModelFile(c).rd_lambda == [80.0, 40.0, 20.0, 10.0]
    from safetensors.numpy import load_file, save_file
    for value in (-1.0, 40.0, [40.0] * 3, [40.0, 40.0, -1.0, 40.0], ["40"] * 4, [float("nan")] * 4):
        bad = dict(meta_b, encoder={"rate_distortion_lambda": value})
        save_file(load_file(str(b)), str(c), metadata={"psic": json.dumps(bad)})
        with pytest.raises(ValueError, match="rate_distortion_lambda"):
            ModelFile(c)
    with pytest.raises(ValueError):
        im.level_lambdas([1.0, 2.0], 4)
    with pytest.raises(ValueError):
        im.level_lambdas(-1.0, 4)


def wide_latent_model_file(setup, tmp_path, rd_lambda: float = 0.0):
    """(model, file) of the test model with its analysis scaled up 100 times: the untrained model's
    latents of a noise image all round to 0, where there is nothing to choose; these are a few
    steps wide."""
    import copy
    model, ent, _, _ = setup
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(100)
        model.g_a[-1].bias.mul_(100)
    path = tmp_path / "m.safetensors"
    write_model(path, model, ent, fp16=False, training={"steps": 0}, rd_lambda=rd_lambda)
    return model, path


def test_export_kodak_evaluation_and_golden_vectors_use_the_weight(setup, tmp_path):
    import export
    from PIL import Image
    from safetensors.numpy import load_file
    model, path = wide_latent_model_file(setup, tmp_path, rd_lambda=2.0)
    folder = tmp_path / "kodak"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)).save(folder / "a.png")
    mf = ModelFile(path)
    by_file = evaluate_kodak(mf, model, folder)
    nearest = evaluate_kodak(mf, model, folder, rd_lambda=[0.0] * 4)
    assert by_file["rd_lambda"] == [2.0] * 4 and nearest["rd_lambda"] == [0.0] * 4
    assert by_file["mean"][-1]["bpp"] < nearest["mean"][-1]["bpp"]
    g = make_golden(mf, folder / "a.png", tmp_path / "g.safetensors")
    t = load_file(str(tmp_path / "g.safetensors"))
    assert g["rd_lambda"] == [2.0] * 4 and t["rd_q"].shape == t["q"].shape
    assert np.any(t["rd_q"] != t["q"]) and np.all(np.abs(t["rd_q"] - t["q"]) <= 1)
    for bad in ("-1", "nan", "inf", "x", "40/0", "40/x"):
        with pytest.raises(SystemExit):
            export.parse_args(["--checkpoint", "x.pt", "--out", "m.safetensors", "--rd-lambda", bad])
    assert export.parse_args(["--checkpoint", "x.pt", "--out", "m.safetensors", "--rd-lambda", "40/1.3"]).rd_lambda == (40.0, 1.3)


def test_rd_probe_prints_each_weights_curve_against_nearest_rounding(setup, tmp_path, capsys):
    import rd_probe
    from PIL import Image
    model, path = wide_latent_model_file(setup, tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    rd_probe.main([str(path), "2", "2/1.5", "--data", str(folder), "--every", "2"])
    out = capsys.readouterr().out
    assert "2 photos of" in out and "sampled details" in out and "a.png" in out and "c.png" in out and "b.png" not in out
    lines = {l.split(":")[0].strip(): l for l in out.splitlines() if "/" in l and ":" in l and "photos" not in l}
    assert set(lines) == {"nearest", "2", "2/1.5"}
    assert "psnr" in lines["2"] and "ms_ssim" in lines["2"] and "psnr" not in lines["nearest"]
    # the weighted encode is smaller at the full level than nearest rounding
    def full_level_bpp(line: str) -> float:
        return float(line.split(": ")[1].split()[model.cfg.L - 1].split("/")[0])
    assert full_level_bpp(lines["2"]) < full_level_bpp(lines["nearest"])
    rd_probe.main([str(path), "2", "--data", str(folder), "--every", "2", "--offset", "1"])
    out = capsys.readouterr().out
    assert "1 photos of" in out and "b.png" in out and "a.png" not in out
    for bad in (["--every", "2", "--offset", "2"], ["--every", "0"]):
        with pytest.raises(SystemExit):
            rd_probe.main([str(path), "2", "--data", str(folder)] + bad)
    for bad in ("0", "-3", "x", "4/0", "4/y"):
        with pytest.raises(argparse.ArgumentTypeError):
            rd_probe.weight(bad)
    assert rd_probe.weight("40/1.3") == ("40/1.3", 40.0, 1.3, False) and rd_probe.weight("40@c")[3]
