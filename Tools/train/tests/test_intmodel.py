"""Tests of the integer entropy model reference, quantisation, tables and model file (no ../shared)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from psic_train import intmodel as im  # noqa: E402
from psic_train.kodakeval import evaluate_kodak  # noqa: E402
from psic_train.model import PSICModel  # noqa: E402
from psic_train.modelfile import ModelFile, Transforms, float_tensors, write_model  # noqa: E402
from psic_train.quantize import (H_RANGES, all_layers, calibrate, calibrated_outputs, int16_weights,  # noqa: E402
                                 quantize_entropy_model)
from psic_train.tables import gaussian_tables, quantize_pmf, z_tables  # noqa: E402
from tiny import TINY_CONFIG, tiny_integer_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    return tiny_integer_model()


def test_calibration_records_each_requantised_layer_and_leaves_no_hooks(setup):
    model, _, y, z = setup
    calib = calibrate(model, y, z)
    assert sorted(calib.maxabs) == sorted(calibrated_outputs(model)) and calib.count == y.shape[0]
    assert all(not m._forward_hooks for m in model.modules())
    with torch.no_grad():
        assert calib.maxabs["h_s.4"] == float(model.h_s(z).abs().max())
        assert calib.maxabs["h_s.0"] == float(model.h_s[1](model.h_s[0](z)).abs().max())
        # level 0 sees H alone, so its first layer's maximum is known without the level loop
        ep0 = model.entropy_parameters[0]
        assert calib.maxabs["ep.0.0"] == float(ep0[1](ep0[0](model.h_s(z))).abs().max())


def test_requantize_hand_example():
    acc = np.array([-100, 100, 7]).reshape(1, 3, 1, 1)
    out = im.requantize(acc, [3, 3, 1], [2, 2, 1], "leaky", -1000, 1000).ravel()
    # (-300+2)>>2 = -75 -> (-75*16)>>8 = -5;  (300+2)>>2 = 75;  (7+1)>>1 = 4
    assert out.tolist() == [-5, 75, 4]
    assert im.requantize(acc, [3, 3, 1], [2, 2, 1], "none", -50, 50).ravel().tolist() == [-50, 50, 4]


def test_int_layers_exact_paths_agree(setup):
    _, ent, y, z = setup
    zi = z.numpy().astype(np.int64)
    for layer in ent.h_s:
        a, b = layer.forward(zi), layer.forward(zi, exact_int=True)
        assert np.array_equal(a, b)
        zi = a


def test_conv_transpose_matches_torch():
    rng = np.random.default_rng(1)
    w = rng.integers(-5, 6, (3, 4, 5, 5))
    x = rng.integers(-9, 10, (2, 3, 3, 4))
    layer = im.IntLayer("t", "conv_transpose", 5, 2, 3, 4, w.astype(np.int16), np.zeros(4, np.int32),
                        np.ones(4, np.int32), np.ones(4, np.int32), 9, "none", -10**9, 10**9)
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                               stride=2, padding=2, output_padding=1)
    assert np.array_equal(layer.accumulate(x, exact_int=True), ref.numpy().astype(np.int64))


def _entropy_model(model, y, z, grid):
    return quantize_entropy_model(model, calibrate(model, y, z), grid=grid,
                                  weight_bits={f"ep.{i}.0": 16 for i in range(model.cfg.L)})


def _float_scale_index(log_scale: torch.Tensor, grid: im.ScaleGrid) -> np.ndarray:
    return torch.clamp(torch.round((log_scale - math.log(im.SCALE_MIN)) / grid.log_step), 0, grid.count - 1).numpy()


@pytest.mark.parametrize("count", [64, 128])
def test_int_forward_agrees_with_float(setup, count):
    model, _, y, z = setup
    ent = _entropy_model(model, y, z, im.ScaleGrid(count))
    assert ent.scale_grid.count == count and ent.gaussian.cdf.shape[0] == count
    lc = model.cfg.level_channels
    enc = ent.encode(y.numpy(), z.numpy())
    with torch.no_grad():
        H = model.h_s(z)
        prev = torch.from_numpy(enc["y_hat"]).float() / 16
        s_H = ent.h_s[-1].extra["s_H"]
        assert np.abs(enc["H"] * s_H - H.numpy()).max() < 0.02 * float(H.abs().max()) + 1e-3
        close, total, mean_err = 0, 0, []
        for i in range(model.cfg.L):
            out = model.entropy_parameters[i](torch.cat([H, prev[:, :i * lc]], 1))
            mean, log_scale = out.chunk(2, 1)
            k_float = _float_scale_index(log_scale, ent.scale_grid)
            k_int = enc["k"][:, i * lc:(i + 1) * lc]
            close += int((np.abs(k_int - k_float) <= 1).sum())
            total += k_int.size
            mean_err.append(np.abs(enc["mu"][:, i * lc:(i + 1) * lc] / 16 - mean.numpy()).max())
    assert close / total > 0.99
    assert max(mean_err) < 0.1


@pytest.mark.parametrize("count", [64, 128])
def test_tables_valid(count):
    grid = im.ScaleGrid(count)
    g = gaussian_tables(grid)
    g.validate()
    sig = grid.sigmas()
    assert g.cdf.shape[0] == count
    assert sig[0] == pytest.approx(im.SCALE_MIN) and sig[-1] == pytest.approx(im.SCALE_MAX)
    assert np.all(g.length == 2 * np.ceil(6.5 * sig).astype(int) + 2) and np.all(g.offset == -np.ceil(6.5 * sig))
    for r in range(count):
        f = g.freq(r)
        assert f.sum() == 65536 and f.min() >= 1
        assert np.all(np.diff(g.cdf[r, :g.length[r] + 1]) >= 1)
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG)
    zt = z_tables(model.entropy_bottleneck)
    zt.validate()
    assert zt.cdf.shape[0] == 16
    f = quantize_pmf(np.array([0.5, 0.5 - 1e-9, 1e-9, 0.0]))
    assert f.sum() == 65536 and f.min() == 1


def test_sampler():
    assert im.splitmix64(0) == 0xE220A8397B1DCDAF          # splitmix64 with state 0, first output
    x = np.array([0, 1, 2**63 + 5], dtype=np.uint64)
    assert [int(v) for v in im.splitmix64(x)] == [im.splitmix64(int(v)) for v in x]
    ctr = (3 << 56) | (5 << 40) | (7 << 20) | 9
    u = im.sampler_uniforms(7, 3, 6, 8, 10)
    assert u[5, 7, 9] == (im.splitmix64(7 ^ im.splitmix64(ctr)) >> 48)
    assert np.array_equal(u, im.sampler_uniforms(7, 3, 6, 8, 10))
    assert not np.array_equal(u, im.sampler_uniforms(8, 3, 6, 8, 10))
    g = gaussian_tables()
    k = np.full(u.shape, 20)
    q = g.sample(k, u)
    R = math.ceil(6.5 * im.ScaleGrid().sigmas()[20])
    assert q.min() >= -R and q.max() <= R
    # inverse CDF by hand for one element
    c = g.cdf[20, :g.length[20] + 1]
    s = int(np.nonzero(c <= u[0, 0, 0])[0].max())
    assert q[0, 0, 0] == min(s, g.length[20] - 2) + g.offset[20]


def test_sample_decode_deterministic(setup):
    _, ent, y, z = setup
    enc = ent.encode(y.numpy()[:2], z.numpy()[:2])
    a = ent.sample(enc["H"], enc["y_hat"], 2, seed=7)
    b = ent.sample(enc["H"], enc["y_hat"], 2, seed=7)
    assert np.array_equal(a["y_hat"], b["y_hat"])
    lc = ent.level_channels
    assert np.array_equal(a["y_hat"][:, :2 * lc], enc["y_hat"][:, :2 * lc])
    assert np.array_equal(a["y_hat"][:, 2 * lc:], im.latent_from_symbol(a["q"], a["mu"]))


def test_mean_details_decode_each_untransmitted_level_at_its_mean(setup):
    """seed None is the decoder's --details mean: symbol 0 everywhere past the cut, so Y^ = mu there,
    with each level's mu predicted from the levels decoded before it (not from the encoder's)."""
    _, ent, y, z = setup
    enc = ent.encode(y.numpy()[:2], z.numpy()[:2])
    lc = ent.level_channels
    m = ent.sample(enc["H"], enc["y_hat"], 1, None)
    assert not m["q"].any() and m["q"].shape[1] == 3 * lc
    assert np.array_equal(m["y_hat"][:, :lc], enc["y_hat"][:, :lc])
    assert np.array_equal(m["y_hat"][:, lc:], np.clip(m["mu"], -im.LATENT_INT_MAX, im.LATENT_INT_MAX))
    buf = np.concatenate([enc["H"], m["y_hat"]], 1)
    mu3, _ = ent.level_params(3, buf)
    assert np.array_equal(m["mu"][:, 2 * lc:], mu3)
    assert not np.array_equal(m["y_hat"], ent.sample(enc["H"], enc["y_hat"], 1, seed=0)["y_hat"])


def model_and_one_image_folder(setup, tmp_path, rng):
    """The test model written as a file, and a Kodak-like folder holding one random 180x170 image
    (MS-SSIM needs sides over 160)."""
    from PIL import Image
    model, ent, _, _ = setup
    path = tmp_path / "m.safetensors"
    write_model(path, model, ent, fp16=False, training={"steps": 0})
    folder = tmp_path / "kodak"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)).save(folder / "a.png")
    return model, path, folder


def test_kodak_evaluation_reports_both_detail_modes(setup, tmp_path):
    import export
    from PIL import Image
    rng = np.random.default_rng(1)
    model, path, folder = model_and_one_image_folder(setup, tmp_path, rng)
    rep = evaluate_kodak(ModelFile(path), model, folder)
    rows = rep["mean"]
    assert [r["level"] for r in rows] == [1, 2, 3, 4] and rep["images"] == 1
    # the full level transmits everything: both modes are the same image
    assert rows[-1]["psnr"] == rows[-1]["psnr_mean_details"]
    assert all(math.isfinite(r[k]) for r in rows for k in ("psnr", "psnr_mean_details", "ms_ssim_mean_details"))
    assert any(r["psnr"] != r["psnr_mean_details"] for r in rows[:-1])
    assert rows == sorted(rows, key=lambda r: r["bpp"])
    # the same table for the written file alone (export.py --evaluate), as the file computes it
    data = tmp_path / "train"
    data.mkdir()
    for i, (h, w) in enumerate([(90, 100), (130, 70), (40, 300)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(data / f"p{i}.png")
    out = tmp_path / "r.json"
    export.main(["--evaluate", str(path), "--kodak", str(folder), "--report", str(out), "--data", str(data),
                 "--holdout", "2"])
    import json
    again = json.loads(out.read_text())
    assert again["evaluated_only"] and again["fingerprint"] == ModelFile(path).meta["fingerprint"]
    assert [r["bpp"] for r in again["kodak"]["mean"]] == [r["bpp"] for r in rows]
    assert [r["psnr_mean_details"] for r in again["kodak"]["mean"]] == [r["psnr_mean_details"] for r in rows]
    # ... and its held-out curve: the last 2 photos, one of them under 64 px high and so skipped,
    # the same numbers compare.py gives for the file on those crops (figures.py heldout's reference)
    held = again["heldout_eval"]
    assert held["crops"] == 1 and [r["level"] for r in held["sampled"]] == [1, 2, 3, 4]
    import compare
    compare.main([str(path), "--data", str(data), "--holdout", "2", "--threads", "1", "--json", str(tmp_path / "c.json")])
    assert json.loads((tmp_path / "c.json").read_text())["models"][0]["sampled"] == held["sampled"]
    # without --kodak only the held-out table is computed
    export.main(["--evaluate", str(path), "--report", str(out), "--data", str(data), "--holdout", "2"])
    assert "kodak" not in json.loads(out.read_text()) and json.loads(out.read_text())["heldout_eval"] == held
    with pytest.raises(SystemExit):
        export.parse_args(["--evaluate", str(path), "--kodak", str(folder)])     # no --report
    with pytest.raises(SystemExit):
        export.parse_args(["--checkpoint", "x.pt"])                               # no --out
    assert export.parse_args(["--checkpoint", "x.pt", "--out", "m.safetensors"]).scale_count == im.DEFAULT_SCALE_COUNT
    assert export.parse_args(["--checkpoint", "x.pt", "--out", "m.safetensors", "--scale-count", "64"]).scale_count == 64
    for bad in ("1", "0", "-64", "2000", "sixty"):
        with pytest.raises(SystemExit):
            export.parse_args(["--checkpoint", "x.pt", "--out", "m.safetensors", "--scale-count", bad])


def test_kodak_evaluation_with_more_seeds_keeps_seed_0_as_the_main_table(setup, tmp_path):
    import export
    model, path, folder = model_and_one_image_folder(setup, tmp_path, np.random.default_rng(2))
    one = evaluate_kodak(ModelFile(path), model, folder)
    three = evaluate_kodak(ModelFile(path), model, folder, [0, 1, 2])
    assert "sample_seeds" not in one and three["sample_seeds"] == [0, 1, 2]
    for r1, r3 in zip(one["mean"], three["mean"]):
        # adding seeds does not change what seed 0 measures
        assert (r1["psnr"], r1["ms_ssim"], r1["bpp"]) == (r3["psnr"], r3["ms_ssim"], r3["bpp"])
        assert r3["psnr_seeds"][0] == r3["psnr"] and len(r3["ms_ssim_seeds"]) == 3
    # other seeds draw other details below the top level; the top level samples nothing
    assert any(len(set(r["psnr_seeds"])) == 3 for r in three["mean"][:-1])
    assert len(set(three["mean"][-1]["psnr_seeds"])) == 1
    for bad in ("1,2", "0,0", "0,x", "0,-1"):
        with pytest.raises(SystemExit):
            export.parse_args(["--evaluate", str(path), "--kodak", str(folder), "--report", "r.json",
                               "--kodak-seeds", bad])
    assert export.parse_args(["--evaluate", str(path), "--report", "r.json", "--kodak-seeds", "0,5"]).kodak_seeds == [0, 5]


def test_export_round_trip(setup, tmp_path):
    model, ent, y, z = setup
    path = tmp_path / "m.safetensors"
    meta = write_model(path, model, ent, fp16=False, training={"steps": 0})
    mf = ModelFile(path)
    assert mf.meta["fingerprint"] == meta["fingerprint"] and len(meta["fingerprint"]) == 16
    a, b = ent.encode(y.numpy(), z.numpy()), mf.entropy.encode(y.numpy(), z.numpy())
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert mf.meta["int_layers"]["h_s.0"]["kind"] == "conv_transpose"
    assert mf.meta["int_layers"]["ep.3.0"]["in"] == 16 + 3 * 4
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model.g_s(model.g_a(x))
        assert torch.allclose(mf.g_s(mf.g_a(x)), ref, atol=1e-4)
        assert torch.allclose(mf.h_a(model.g_a(x)), model.h_a(model.g_a(x)), atol=1e-5)
    t16 = Transforms(float_tensors(model, fp16=True))
    assert torch.allclose(t16.g_a(x), model.g_a(x), atol=1e-2)


def test_model_file_scale_count_must_match_its_tables(setup, tmp_path):
    """scale_count is the file's choice (64 up to session 36, 128 since): a reader takes it from
    the file, and refuses a file whose scale_count disagrees with its Gaussian tables."""
    import json

    from safetensors.numpy import load_file, save_file
    model, _, y, z = setup
    path = tmp_path / "m.safetensors"
    write_model(path, model, _entropy_model(model, y, z, im.ScaleGrid(64)), fp16=False, training={"steps": 0})
    mf = ModelFile(path)
    assert mf.meta["constants"]["scale_count"] == 64 and mf.entropy.scale_grid == im.ScaleGrid(64)
    meta = dict(mf.meta, constants=dict(mf.meta["constants"], scale_count=128))
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={"psic": json.dumps(meta)})
    with pytest.raises(ValueError, match="scale_count 128 does not match its 64 Gaussian tables"):
        ModelFile(bad)


def test_quantize_refuses_a_grid_that_is_not_the_tables(setup):
    model, _, y, z = setup
    tables = (gaussian_tables(im.ScaleGrid(64)), z_tables(model.entropy_bottleneck))
    with pytest.raises(ValueError, match="grid of 128 scales given with 64 Gaussian tables"):
        quantize_entropy_model(model, calibrate(model, y, z), tables=tables, grid=im.ScaleGrid(128))
    with pytest.raises(ValueError, match="at least 2 scales"):
        im.ScaleGrid(1)


@pytest.mark.parametrize("count", [64, 128])
def test_model_from_file_rebuilds_the_shipped_function(setup, tmp_path, count):
    """A session without a checkpoint resumes from the model file: the rebuilt float model must
    compute what the file's integer entropy model computes (means within quantisation error,
    scale indexes within one step) and the transforms exactly."""
    from psic_train.fromfile import model_from_file
    model, _, y, z = setup
    ent = _entropy_model(model, y, z, im.ScaleGrid(count))
    path = tmp_path / "m.safetensors"
    write_model(path, model, ent, fp16=False, training={"steps": 123})
    rebuilt, meta = model_from_file(path)
    assert meta["training"]["steps"] == 123 and rebuilt.cfg == model.cfg
    assert meta["constants"]["scale_count"] == count
    rebuilt.eval()
    enc = ent.encode(y.numpy(), z.numpy())
    lc = model.cfg.level_channels
    with torch.no_grad():
        H = rebuilt.h_s(z)
        prev = torch.from_numpy(enc["y_hat"]).float() / 16
        close, total, mean_err = 0, 0, []
        for i in range(model.cfg.L):
            mean, _, log_scale = rebuilt.level_params(i, H, list(prev[:, :i * lc].split(lc, 1)))
            k = _float_scale_index(log_scale, im.ScaleGrid(count))
            close += int((np.abs(enc["k"][:, i * lc:(i + 1) * lc] - k) <= 1).sum())
            total += k.size
            mean_err.append(np.abs(enc["mu"][:, i * lc:(i + 1) * lc] / 16 - mean.numpy()).max())
        x = torch.rand(1, 3, 64, 64)
        assert torch.allclose(rebuilt.g_s(rebuilt.g_a(x)), model.g_s(model.g_a(x)), atol=1e-4)
        assert torch.allclose(rebuilt.h_a(model.g_a(x)), model.h_a(model.g_a(x)), atol=1e-5)
    assert close / total > 0.99
    assert max(mean_err) < 0.1
    # the z prior was fitted to the file's tables: its cross-entropy is the tables' entropy
    from psic_train.fromfile import fit_z_prior
    t = ent.z
    entropy = []
    for c in range(t.cdf.shape[0]):
        p = np.diff(t.cdf[c, :int(t.length[c])].astype(np.float64)) / im.CDF_TOTAL
        entropy.append(-(p[p > 0] * np.log2(p[p > 0])).sum())
    cross = fit_z_prior(rebuilt.entropy_bottleneck, t, steps=1, lr=0.0)
    assert cross < np.mean(entropy) * 1.03 + 0.01, (cross, np.mean(entropy))


def test_init_from_a_model_file_keeps_its_training_recipe(setup, tmp_path, capsys):
    """A new machine continues from the committed model file: the recipe export.py wrote into it
    (train.py's options at the exported step) is what train.py --init MODEL continues with."""
    import train
    from PIL import Image
    model, ent, y, z = setup
    path = tmp_path / "m.safetensors"
    write_model(path, model, ent, fp16=False,
                training={"steps": 7, "recipe": {"batch": "1", "crop": "64", "lambda_max": "2240.0"}})
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (70, 80, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    train.main(["--init", str(path), "--data", str(photos), "--out", str(tmp_path / "run"), "--holdout", "1",
                "--threads", "1", "--steps", "8", "--eval-every", "100"])
    out = capsys.readouterr().out
    assert "step 7; batch 1x64² (the checkpoint's); lambda_max 2240 (the checkpoint's)" in out
    stored = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["args"]
    assert float(stored["lambda_max"]) == 2240 and stored["batch"] == "1"
    # the model file as a checkpoint: its step, recipe and rebuilt weights, nothing to carry over
    from psic_train.fromfile import model_from_file, starting_point
    start = starting_point(path)
    assert start["step"] == 7 and start["args"]["lambda_max"] == "2240.0"
    assert "optimizer" not in start and "ema" not in start
    rebuilt = model_from_file(path)[0].state_dict()
    assert start["model"].keys() == rebuilt.keys()
    assert all(torch.equal(start["model"][k], rebuilt[k]) for k in rebuilt)
    # a mistyped path is refused before a run folder is made
    with pytest.raises(SystemExit, match="--init: .* does not exist"):
        train.main(["--init", str(tmp_path / "missing.safetensors"), "--data", str(photos),
                    "--out", str(tmp_path / "typo")])
    assert not (tmp_path / "typo").exists()


def test_export_and_rate_breakdown_refuse_a_missing_source(tmp_path):
    import export
    import rate_breakdown
    for given in (["--checkpoint", str(tmp_path / "no.pt"), "--out", str(tmp_path / "m.safetensors")],
                  ["--evaluate", str(tmp_path / "no.safetensors"), "--report", str(tmp_path / "r.json")]):
        with pytest.raises(SystemExit, match="export.py: .* does not exist"):
            export.main(given)
    with pytest.raises(SystemExit, match="rate_breakdown.py: .*no.pt does not exist"):
        rate_breakdown.main(["--checkpoint", str(tmp_path / "no.pt"), "--model", str(tmp_path / "no.safetensors")])
    assert not (tmp_path / "m.safetensors").exists()


def test_headroom_schedule_shrinks_to_the_floor():
    from export import headroom_schedule
    assert headroom_schedule(2.0) == [2.0, 1.5, 1.125]
    assert headroom_schedule(1.1) == [1.1]
    assert all(b < a for a, b in zip(headroom_schedule(4.0), headroom_schedule(4.0)[1:]))


def test_int16_weights_are_never_coarser_than_int8(setup):
    model, _, y, z = setup
    calib = calibrate(model, y, z)
    int8 = quantize_entropy_model(model, calib, weight_bits={f"ep.{i}.0": 16 for i in range(model.cfg.L)})
    int16 = quantize_entropy_model(model, calib, weight_bits=int16_weights(model.cfg))
    for a, b in zip(all_layers(int8), all_layers(int16)):
        assert a.name == b.name
        assert np.all(b.extra["w_scale"] <= a.extra["w_scale"] * (1 + 1e-12)), a.name


def test_smaller_h_range_gives_the_h_columns_of_ep_layer_0_finer_weights(setup):
    model, _, y, z = setup
    calib = calibrate(model, y, z)
    hyper = model.cfg.hyper
    levels = {}
    for h_range in (32767, 2047):
        ent = quantize_entropy_model(model, calib, weight_bits=int16_weights(model.cfg), h_range=h_range)
        assert ent.h_s[-1].output_max == h_range and ent.ep[1][0].input_bound == im.LATENT_INT_MAX
        w = np.abs(ent.ep[1][0].weight[:, :hyper].astype(np.int64))
        levels[h_range] = np.median(w.max(axis=1))
    assert levels[2047] > 4 * levels[32767]


def test_search_quantization_keeps_the_lowest_calibration_rate_loss(setup):
    from export import Crops, rate_summary, search_quantization
    model, _, y, z = setup
    calib = calibrate(model, y, z)
    tables = (gaussian_tables(), z_tables(model.entropy_bottleneck))
    crops = Crops.analysed(model, y, z)
    choice = search_quantization(model, calib, tables, crops, Crops.analysed(model, y[:2], z[:2]), 2.0,
                                 log=lambda *_: None)
    assert [s["h_range"] for s in choice.search[:len(H_RANGES)]] == list(H_RANGES)
    best = min(choice.search, key=lambda s: s["rate_loss"])
    assert (best["headroom"], best["h_range"]) == (choice.headroom, choice.h_range)
    assert choice.rates["calibration"]["rate_loss"] == best["rate_loss"]
    assert set(choice.rates) == set(choice.encodes) == {"calibration", "heldout"}
    assert choice.ent.h_s[-1].output_max == choice.h_range
    # the float rates taken once for all candidates are the ones a fresh analysis takes, and the
    # kept encodes are the chosen model's
    fresh, encodes = rate_summary(choice.ent, Crops.analysed(model, y, z))
    assert choice.rates["calibration"] == fresh
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(encodes, choice.encodes["calibration"]) for k in a)


def test_rate_breakdown_runs_from_the_float_rate_to_the_integer_rate(setup):
    from export import Crops, rate_summary
    from psic_train.ratebreakdown import STAGES, format_breakdown, rate_breakdown
    from psic_train.rates import z_bits_int
    model, ent, y, z = setup
    rows = rate_breakdown(model, ent, [(y, z)])
    summary, _ = rate_summary(ent, Crops.analysed(model, y, z))
    assert [r["stage"] for r in rows] == list(STAGES)
    assert rows[0]["bpp"] == pytest.approx(summary["float_bpp"]) and rows[0]["vs_float"] == 0
    assert rows[-1]["bpp"] == pytest.approx(summary["int_bpp"])
    assert rows[-1]["vs_float"] == pytest.approx(summary["rate_loss"])
    # the pieces' costs compose to the total loss
    assert np.prod([1 + r["cost"] for r in rows]) - 1 == pytest.approx(summary["rate_loss"])
    # z changes only where the tables replace the float prior
    npix = y.shape[0] * y.shape[2] * 16 * y.shape[3] * 16
    assert rows[1]["z_bpp"] == rows[2]["z_bpp"] == rows[0]["z_bpp"]
    assert rows[3]["z_bpp"] == pytest.approx(z_bits_int(ent, z.numpy())[0] / npix)
    # each level's rate is positive at every stage, and the report has a line per stage
    assert all(min(r["level_bpp"]) > 0 for r in rows)
    assert len(format_breakdown(rows)) == len(STAGES) + 1
    # several (y, z) pairs (images of different sizes) sum bits and pixels: two halves give the whole
    halves = rate_breakdown(model, ent, [(y[:4], z[:4]), (y[4:], z[4:])])
    assert [r["bpp"] for r in halves] == pytest.approx([r["bpp"] for r in rows])


@pytest.mark.parametrize("count", [64, 128])
def test_rate_breakdown_scale_index_is_the_nearest_table_scale(count):
    from psic_train.ratebreakdown import scale_index, table_scale
    grid = im.ScaleGrid(count)
    k = torch.arange(count)
    assert torch.equal(scale_index(table_scale(k, grid), grid), k)
    # halfway in log between two table scales rounds to either neighbour, never further
    mid = torch.sqrt(table_scale(k[:-1], grid) * table_scale(k[1:], grid))
    assert ((scale_index(mid, grid) - k[:-1]) >= 0).all() and ((scale_index(mid, grid) - k[:-1]) <= 1).all()
    assert scale_index(torch.tensor([0.01, 1e4]), grid).tolist() == [0, count - 1]
