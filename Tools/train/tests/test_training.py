"""Tests of the training tool: perceptual registry, LPIPS loading, adversarial losses, checkpoint
compatibility and short end-to-end runs on a tiny model (no ../shared, no downloads)."""
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402
from psic_train import adversarial as adv  # noqa: E402
from psic_train.model import RATE_PROXIES, PSICModel, code_levels, gaussian_likelihood  # noqa: E402
from psic_train.objective import MSSSIM_WEIGHTS, ObjectiveConfig, SVIObjective, msssim_loss  # noqa: E402
from psic_train.perceptual import LPIPS, make_perceptual  # noqa: E402
from psic_train.rates import float_bits, proxy_bits  # noqa: E402
from psic_train.progress import Progress, fmt_duration, summarize  # noqa: E402
from tiny import TINY, TINY_CONFIG  # noqa: E402

torch.set_num_threads(1)
RUN = ["--batch", "2", "--crop", "64", "--threads", "1", "--holdout", "1", "--log-every", "1",
       "--eval-every", "2", "--disc-width", "8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96]
    for i in range(4):
        base = np.stack([np.sin(xx / (5 + i) + c) * np.cos(yy / (7 + c)) for c in range(3)], -1)
        img = np.clip(127 + 90 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    """A randomly initialised AlexNet LPIPS (non-negative heads, as trained ones are) saved under
    torchvision + released-LPIPS names."""
    torch.manual_seed(3)
    net = LPIPS("alex")
    for h in net.heads:
        h.weight.copy_(torch.rand_like(h.weight))
    path = tmp_path_factory.mktemp("lpips") / "alex_random.pt"
    torch.save(net.lpips_state_dict(), path)
    return net, path


def run(argv):
    train.main([str(a) for a in argv])


def tiny_parameter_names() -> list[str]:
    """The parameter names of the TINY model, in named_parameters order."""
    return [n for n, _ in PSICModel(TINY_CONFIG).named_parameters()]


def test_grad_clip_is_an_option():
    out = ["--out", "runs/x"]
    assert train.parse_args(out).grad_clip == train.GRAD_CLIP
    assert train.parse_args(out + ["--grad-clip", "20"]).grad_clip == 20.0
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            train.parse_args(out + ["--grad-clip", bad])


def test_grad_clip_reaches_the_update(data, tmp_path):
    """The same two steps with a limit never reached and one always reached: the log says which
    steps were clipped, the norm before clipping is the same, and the weights differ (Adam is
    invariant to a constant gradient scale, not to one that changes from step to step)."""
    runs = {}
    for name, clip in (("free", 1e9), ("tight", 1e-6)):
        out = tmp_path / name
        run(["--data", data, "--out", out, *TINY, *RUN, "--steps", 2, "--grad-clip", clip])
        lines = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
        runs[name] = ([line for line in lines if "grad_norm" in line],
                      torch.load(out / "last.pt", weights_only=False)["model"])
    (free, free_w), (tight, tight_w) = runs["free"], runs["tight"]
    assert [line["clipped"] for line in free] == [0.0, 0.0]
    assert [line["clipped"] for line in tight] == [1.0, 1.0]
    assert free[0]["grad_norm"] == pytest.approx(tight[0]["grad_norm"]) and free[0]["grad_norm"] > 1e-6
    assert any(not torch.equal(free_w[n], tight_w[n]) for n in free_w)


# -- perceptual registry ----------------------------------------------------------------------
def test_registry_choices(tmp_path):
    assert make_perceptual("msssim") is msssim_loss
    assert make_perceptual("none") is None
    with pytest.raises(SystemExit, match="unknown perceptual"):
        make_perceptual("dists")
    with pytest.raises(SystemExit, match="--lpips-weights"):
        make_perceptual("lpips")
    with pytest.raises(SystemExit, match="does not exist"):
        make_perceptual("lpips", lpips_weights=[tmp_path / "missing.pth"])


def test_msssim_matches_pytorch_msssim_and_takes_small_crops():
    from pytorch_msssim import ms_ssim
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128)
    xh = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    w = torch.tensor(MSSSIM_WEIGHTS)
    ref = 1 - ms_ssim(xh, x, data_range=1.0, size_average=True, win_size=7, weights=w / w.sum())
    assert torch.equal(msssim_loss(xh, x), ref)
    assert 0 < msssim_loss(xh[..., :64, :64], x[..., :64, :64]).item() < 1


def test_lpips_loads_local_weights(lpips_file, tmp_path):
    net, path = lpips_file
    loaded = make_perceptual("lpips", lpips_weights=[path])
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    xh = (x + 0.2 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    d = loaded(xh, x)
    assert torch.allclose(d, net(xh, x))
    assert d.item() > 0 and loaded(x, x).item() == pytest.approx(0, abs=1e-6)
    d.backward()
    assert xh.grad is not None and xh.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loaded.parameters())
    # the `lpips` package's names, split over two files (backbone, heads), and safetensors
    sd = torch.load(path, weights_only=True)
    slice_of = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    backbone = {f"net.slice{slice_of[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
                for k, v in sd.items() if k.startswith("features.")}
    heads = {k.replace(".model.1.", ".model.0."): v for k, v in sd.items() if k.startswith("lin")}
    torch.save(backbone, tmp_path / "backbone.pth")
    torch.save({"state_dict": heads}, tmp_path / "heads.pth")
    split = LPIPS("alex").load_weights([tmp_path / "backbone.pth", tmp_path / "heads.pth"])
    assert torch.allclose(split(xh, x), d)
    from safetensors.torch import save_file
    save_file(sd, str(tmp_path / "alex.safetensors"))
    assert torch.allclose(LPIPS("alex").load_weights(tmp_path / "alex.safetensors")(xh, x), d)
    with pytest.raises(SystemExit, match="lin0"):
        LPIPS("alex").load_weights(tmp_path / "backbone.pth")


def test_objective_with_lpips_and_none(lpips_file):
    _, path = lpips_file
    torch.manual_seed(0)
    cfg = TINY_CONFIG
    model = PSICModel(cfg)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, 2, 2)
    for p in (make_perceptual("lpips", lpips_weights=[path]), None):
        loss, stats = SVIObjective(cfg.L, ObjectiveConfig(), perceptual=p)(model, x, out, 2)
        assert math.isfinite(loss.item())
        assert (stats["perceptual_full"] > 0) == (p is not None)


def test_consistency_every_k_steps_at_k_times_the_weight():
    torch.manual_seed(0)
    cfg = TINY_CONFIG
    model = PSICModel(cfg)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, 2, 2)
    without, _ = SVIObjective(cfg.L, ObjectiveConfig(consistency_weight=0.0))(model, x, out, 2)
    every1, s1 = SVIObjective(cfg.L, ObjectiveConfig())(model, x, out, 2, step=7)
    assert s1["consistency"] > 0
    objective = SVIObjective(cfg.L, ObjectiveConfig(consistency_every=4))
    skipped, s_skip = objective(model, x, out, 2, step=5)
    assert "consistency" not in s_skip and torch.allclose(skipped, without)
    taken, s_take = objective(model, x, out, 2, step=8)
    assert s_take["consistency"] == pytest.approx(s1["consistency"])
    # K times the weight on one step in K: the mean over K steps is the term computed every step
    assert torch.allclose(without + 4 * (every1 - without), taken, rtol=1e-5)


def test_consistency_every_is_a_recipe_option(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(tmp_path), "--consistency-every", "0"])
    assert "must be 1 or more" in capsys.readouterr().err
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--consistency-every", 3, "--steps", 1])
    assert torch.load(tmp_path / "last.pt", weights_only=False)["args"]["consistency_every"] == "3"
    capsys.readouterr()
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 2])
    assert "consistency_every 3 (the checkpoint's)" in capsys.readouterr().out


def test_the_rounded_rate_proxy_charges_what_the_coder_spends():
    """With --rate-proxy round a level's training bits are the bits evaluate_levels counts for the
    rounded symbols the coder writes; the noise proxy's are not, and differ between draws."""
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG)
    for m in model.entropy_parameters:   # spread the scales so some levels are mostly zeros
        m[-1].bias.data[TINY_CONFIG.level_channels:] = torch.linspace(-2, 1, TINY_CONFIG.level_channels)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y = model.g_a(x)
        hyper = model.h_s(torch.round(model.h_a(y)))
        coded = code_levels(model, hyper, y.chunk(TINY_CONFIG.L, dim=1))
        coder_bits = torch.stack([-torch.log2(gaussian_likelihood(q, sigma)).sum() for sigma, q, _ in coded])
        bits = {proxy: [torch.stack([-torch.log2(lk).sum() for lk in model(x, 2, 1, rate_proxy=proxy)["likelihoods"]])
                        for _ in range(2)] for proxy in RATE_PROXIES}
    assert torch.allclose(bits["round"][0], coder_bits, rtol=1e-5)
    assert torch.equal(bits["round"][0], bits["round"][1])
    assert not torch.allclose(bits["noise"][0], coder_bits, rtol=1e-3)
    assert not torch.equal(bits["noise"][0], bits["noise"][1])
    with pytest.raises(ValueError, match="unknown rate proxy"):
        model(x, 2, 1, rate_proxy="soft")


def test_the_rounded_rate_passes_gradients_to_the_scales_and_the_encoder():
    torch.manual_seed(1)
    model = PSICModel(TINY_CONFIG)
    out = model(torch.rand(1, 3, 64, 64), TINY_CONFIG.L, 0, rate_proxy="round")
    sum(-torch.log2(lk).sum() for lk in out["likelihoods"]).backward()
    assert model.entropy_parameters[0][-1].weight.grad.abs().sum() > 0
    assert model.g_a[0].weight.grad.abs().sum() > 0


def test_proxy_gap_counts_the_coders_bits_beside_the_noise_proxys(data, tmp_path, capsys):
    import proxy_gap
    torch.manual_seed(2)
    model = PSICModel(TINY_CONFIG).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = model.g_a(x)
        z_hat = torch.round(model.h_a(y))
        hard, noise = proxy_bits(model, y, z_hat, draws=2, generator=torch.Generator().manual_seed(0))
        _, coded = float_bits(model, y, z_hat)
    assert np.allclose(hard, coded, rtol=1e-5)
    assert not np.allclose(noise, coded, rtol=1e-3)
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 1])
    proxy_gap.main([str(tmp_path / "last.pt"), "--images", str(data), "--threads", "1", "--draws", "1"])
    out = capsys.readouterr().out
    assert "4 photos" in out and re.search(r"^\s+L4\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$", out, re.M)
    with pytest.raises(SystemExit, match="holds no photos"):
        proxy_gap.main([str(tmp_path / "last.pt"), "--images", str(tmp_path / "none")])


def test_objective_probe_scores_models_on_the_same_crops_and_draws(data, tmp_path, capsys):
    import objective_probe
    run(["--data", data, "--out", tmp_path / "a", *TINY, *RUN, "--steps", 1, "--lambda-max", 900])
    run(["--data", data, "--out", tmp_path / "b", *TINY, *RUN, "--steps", 1, "--seed", 5])
    capsys.readouterr()
    a, b = str(tmp_path / "a" / "last.pt"), str(tmp_path / "b" / "last.pt")
    probe = ["--data", str(data), "--holdout", "1", "--batches", "2", "--threads", "1", "--no-autocast"]
    objective_probe.main([a, a, b, *probe])
    out = capsys.readouterr().out.splitlines()
    assert "2 batches of 2x64²" in out[0] and "lambda 128-900" in out[0]     # the first model's recipe
    assert out[3].endswith("(+0.00 %)") and "bpp" in out[4] and "(+0.00 %)" in out[4]   # a model against itself
    assert not out[5].endswith("(+0.00 %)")
    levels = [float(v) for v in out[1].split("levels ")[1].split()]
    assert len(levels) == 4 and all(v > 0 for v in levels)


def test_the_rate_proxy_is_a_recipe_option(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(tmp_path), "--rate-proxy", "soft"])
    assert "invalid choice: 'soft'" in capsys.readouterr().err
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--rate-proxy", "round", "--steps", 1])
    assert torch.load(tmp_path / "last.pt", weights_only=False)["args"]["rate_proxy"] == "round"
    assert "rate_proxy round (given)" in capsys.readouterr().out
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 2])
    assert "rate_proxy round (the checkpoint's)" in capsys.readouterr().out



def test_a_run_folder_is_continued_only_on_purpose(data, tmp_path):
    """A fresh start in a folder that holds a run would overwrite its checkpoint and append a
    second run to its log; --resume with --init names two starting points."""
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 1])
    before = ((tmp_path / "last.pt").read_bytes(), (tmp_path / "log.jsonl").read_text())
    with pytest.raises(SystemExit, match="already holds a run: give --resume"):
        run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2])
    with pytest.raises(SystemExit, match="give one of them"):
        run(["--data", data, "--out", tmp_path, "--resume", "--init", tmp_path / "last.pt", *RUN, "--steps", 2])
    assert ((tmp_path / "last.pt").read_bytes(), (tmp_path / "log.jsonl").read_text()) == before
    # RUN gives --eval-every 2; without it a resume evaluates as the run did (before session 47: every 1000)
    i = RUN.index("--eval-every")
    run(["--data", data, "--out", tmp_path, "--resume", *RUN[:i], *RUN[i + 2:], "--steps", 2])
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 2
    assert int(torch.load(tmp_path / "last.pt", weights_only=False)["args"]["eval_every"]) == 2
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
            if "eval" in json.loads(line)] == [2]


def test_compiled_transforms_keep_the_checkpoint_keys(data, tmp_path):
    """--compile compiles g_a and g_s in place: the checkpoint holds the same parameter names as an
    eager run's, so --resume, export.py and compare.py read it."""
    run(["--data", data, "--out", tmp_path / "eager", *TINY, *RUN, "--steps", 1])
    run(["--data", data, "--out", tmp_path / "compiled", *TINY, *RUN, "--steps", 1, "--compile"])
    keys = [list(torch.load(tmp_path / r / "last.pt", weights_only=False)["model"]) for r in ("eager", "compiled")]
    assert keys[0] == keys[1] == list(PSICModel(TINY_CONFIG).state_dict())

# -- adversarial ------------------------------------------------------------------------------
def test_gan_loss_signs():
    z = torch.zeros(4)
    assert adv.generator_loss(z).item() == pytest.approx(math.log(2))
    assert adv.discriminator_loss(z, z).item() == pytest.approx(2 * math.log(2))
    big = torch.full((4,), 20.0)
    assert adv.generator_loss(big).item() < 1e-6            # D believes the fake: no generator loss
    assert adv.generator_loss(-big).item() == pytest.approx(20, rel=1e-4)  # non-saturating: grows linearly
    assert adv.discriminator_loss(big, -big).item() < 1e-6   # D right on both
    assert adv.discriminator_loss(-big, big).item() == pytest.approx(40, rel=1e-4)
    t = torch.zeros(3, requires_grad=True)
    adv.generator_loss(t).backward()
    assert (t.grad < 0).all()  # the generator raises D(x_hat)
    r, f = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    adv.discriminator_loss(r, f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()  # D raises real logits, lowers fake ones
    assert adv.discriminator_loss(r, f).item() == pytest.approx(
        (F.softplus(-r) + F.softplus(f)).mean().item())


def test_discriminator_learns_and_generator_term_leaves_d_alone():
    torch.manual_seed(0)
    a = adv.Adversarial(adv.DiscriminatorConfig(width=8), lr=1e-3)
    real = F.avg_pool2d(torch.rand(4, 3, 64, 64), 5, 1, 2)      # smooth "photos"
    fake = torch.rand(4, 3, 64, 64)                              # noise
    first = a.discriminator_step(real, fake, fake[:2])
    for _ in range(15):
        last = a.discriminator_step(real, fake, fake[:2])
    assert last["d_loss"] < first["d_loss"] and last["d_real"] > last["d_fake"]
    xh = fake.clone().requires_grad_(True)
    a.opt.zero_grad(set_to_none=True)
    g = a.generator_term(xh, None)
    g.backward()
    assert xh.grad.abs().sum() > 0
    assert all(p.grad is None for p in a.D.parameters())
    assert all(p.requires_grad for p in a.D.parameters())


# -- training runs ----------------------------------------------------------------------------
def test_old_checkpoint_resumes_with_and_without_adversarial(data, tmp_path):
    torch.manual_seed(0)
    cfg = TINY_CONFIG
    model = PSICModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    # exactly what train.py wrote before the adversarial stage existed
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 5,
                "config": cfg.to_dict(), "args": {"lr": "0.0001"}}, tmp_path / "last.pt")
    keys = set(model.state_dict())
    run(["--data", data, "--out", tmp_path, "--resume", "--steps", 6, "--adversarial-weight", 0.1, *RUN])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["step"] == 6 and set(c["model"]) == keys
    assert set(adv.DISCRIMINATOR_KEYS) <= set(c) and c["discriminator_config"]["width"] == 8
    d_state = c["discriminator"]
    # adversarial off: the discriminator is carried over untouched
    run(["--data", data, "--out", tmp_path, "--resume", "--steps", 7, "--adversarial-weight", 0, *RUN])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["step"] == 7 and set(c["model"]) == keys
    assert all(torch.equal(c["discriminator"][k], v) for k, v in d_state.items())
    # and on again: the discriminator is loaded (its own width, not --disc-width's), then trained
    run(["--data", data, "--out", tmp_path, "--resume", "--steps", 8, "--adversarial-weight", 0.1,
         *RUN, "--disc-width", "16"])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["step"] == 8 and c["discriminator_config"]["width"] == 8
    assert c["discriminator_optimizer"]["state"][0]["step"].item() == 2
    PSICModel(cfg).load_state_dict(c["model"])


def test_two_steps_end_to_end_adversarial_and_lpips(data, lpips_file, tmp_path, capsys):
    _, path = lpips_file
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2, "--adversarial-weight", 0.05,
         "--adversarial-start", 1, "--perceptual", "lpips", "--lpips-weights", path])
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [s for s in lines if "loss" in s]
    assert [s["step"] for s in steps] == [1, 2]
    assert "adv_g" not in steps[0] and {"adv_g", "d_loss", "d_real", "d_fake"} <= set(steps[1])
    assert all(math.isfinite(s["loss"]) and len(s["bpp_levels"]) == 4 for s in steps)
    assert any("eval" in s for s in lines)
    out = capsys.readouterr().out
    assert "step       2/2" in out and "ETA" in out and "adv G" in out and "\r" not in out
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["step"] == 2 and "discriminator" in c and c["args"]["perceptual"] == "lpips"


def test_a_resume_keeps_the_perceptual_term_and_the_adversarial_stage(data, lpips_file, tmp_path, capsys):
    _, path = lpips_file
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2, "--adversarial-weight", 0.05,
         "--adversarial-start", 1, "--disc-lr", 3e-4, "--perceptual", "lpips", "--lpips-weights", path])
    capsys.readouterr()
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 3, "--lpips-weights", path])
    out = capsys.readouterr().out
    assert "adversarial term 0.05 (the checkpoint's) from step 1, discriminator lr 0.0003" in out
    assert "perceptual term lpips (the checkpoint's)" in out
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["discriminator_optimizer"]["state"][0]["step"].item() == 2     # trained at steps 2 and 3
    assert "adv_g" in json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    # LPIPS carried over without its weights files is refused, not swapped for MS-SSIM
    with pytest.raises(SystemExit):
        run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 4])


def test_ema_is_saved_resumed_and_differs_from_raw_weights(data, tmp_path):
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2, "--ema", 0.5])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    params = set(tiny_parameter_names())
    assert set(c["ema"]) == params
    # after two updates at decay 0.5 the average lies strictly between the start and the raw weights
    assert any(not torch.equal(c["ema"][n], c["model"][n]) for n in params)
    first = {n: v.clone() for n, v in c["ema"].items()}
    # no --ema: the resume keeps the checkpoint's decay (0.5 below), not the default 0.999
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 3])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    # resumed from the stored average, not restarted from the raw weights: one more update
    # moves each parameter halfway from the old average towards the new raw weights
    n = next(n for n in params if not torch.equal(first[n], c["model"][n]))
    torch.testing.assert_close(c["ema"][n], 0.5 * first[n] + 0.5 * c["model"][n])
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 4, "--ema", 0])
    assert "ema" not in torch.load(tmp_path / "last.pt", weights_only=False)


def test_warmup_raises_the_learning_rate_over_this_process_first_steps(data, tmp_path):
    assert [train.warmup_factor(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert train.warmup_factor(0, 0) == 1.0
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2, "--lr", 1e-3, "--warmup-steps", 4])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 2 / 4)   # the second step's
    # a resumed process warms up again from its own first step
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 3, "--lr", 1e-3, "--warmup-steps", 4])
    c = torch.load(tmp_path / "last.pt", weights_only=False)
    assert c["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 1 / 4)
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 4, "--lr", 1e-3])
    assert torch.load(tmp_path / "last.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"] == 1e-3


def branch_from_a_base(data, tmp_path, capsys, part, *, base_steps, steps, base_args=(), args=()):
    """Trains a tiny base run for `base_steps` steps, then a run from its last.pt (--init) that trains
    `part` at lr 1e-3 to step `steps`. Returns the base's folder, its checkpoint, the branch's folder
    and what the branch printed."""
    base, branch = tmp_path / "base", tmp_path / "branch"
    run(["--data", data, "--out", base, *TINY, *RUN, "--steps", base_steps, "--ema", 0, *base_args])
    start = torch.load(base / "last.pt", weights_only=False)
    capsys.readouterr()
    run(["--data", data, "--out", branch, "--init", base / "last.pt", *RUN, "--steps", steps, "--ema", 0,
         "--trainable", part, "--lr", 1e-3, *args])
    return base, start, branch, capsys.readouterr().out


def test_synthesis_only_trains_g_s_and_keeps_everything_else(data, tmp_path, capsys):
    from psic_train.trainable import select_trainable
    base, start, branch, out = branch_from_a_base(data, tmp_path, capsys, "synthesis", base_steps=1, steps=3)
    # the checkpoint's optimiser trained everything: g_s keeps its Adam moments
    assert "Adam state carried over for" in out and "trains synthesis (given)" in out
    c = torch.load(branch / "last.pt", weights_only=False)
    names = tiny_parameter_names()
    g_s = [n for n in names if n.startswith("g_s.")]
    assert g_s and all(not torch.equal(c["model"][n], start["model"][n]) for n in g_s)
    assert all(torch.equal(c["model"][n], start["model"][n]) for n in names if n not in g_s)
    assert train.optimiser_size(c["optimizer"]) == len(g_s)
    # with a moving average, a frozen parameter starts from (and stays at) the averaged value
    run(["--data", data, "--out", base, "--resume", *RUN, "--steps", 3, "--ema", 0.5])
    averaged = torch.load(base / "last.pt", weights_only=False)
    ema_branch = tmp_path / "ema-branch"
    run(["--data", data, "--out", ema_branch, "--init", base / "last.pt", *RUN, "--steps", 5, "--ema", 0.5,
         "--trainable", "synthesis", "--lr", 1e-3])
    e = torch.load(ema_branch / "last.pt", weights_only=False)
    frozen = [n for n in names if n not in g_s]
    assert any(not torch.equal(averaged["ema"][n], averaged["model"][n]) for n in frozen)
    assert all(torch.equal(e["model"][n], averaged["ema"][n]) and torch.equal(e["ema"][n], averaged["ema"][n])
               for n in frozen)
    capsys.readouterr()
    # a resume keeps training what the checkpoint trained, with its Adam state
    run(["--data", data, "--out", branch, "--resume", *RUN, "--steps", 4, "--ema", 0, "--lr", 1e-3])
    out = capsys.readouterr().out
    assert "trains synthesis (the checkpoint's)" in out and "Adam state starts fresh" not in out
    again = torch.load(branch / "last.pt", weights_only=False)
    assert all(torch.equal(again["model"][n], start["model"][n]) for n in names if n not in g_s)
    # and switching back to the whole model starts Adam afresh over every parameter
    run(["--data", data, "--out", branch, "--resume", *RUN, "--steps", 5, "--ema", 0, "--trainable", "all"])
    assert "trained synthesis, this run trains all" in capsys.readouterr().out
    assert train.optimiser_size(torch.load(branch / "last.pt", weights_only=False)["optimizer"]) == len(names)
    with pytest.raises(ValueError, match="choose one of"):
        select_trainable(PSICModel(TINY_CONFIG), "decoder")


def test_transforms_trains_both_transforms_and_keeps_the_entropy_model(data, tmp_path, capsys):
    _, start, branch, out = branch_from_a_base(data, tmp_path, capsys, "transforms", base_steps=2, steps=5,
                                               base_args=["--trainable", "synthesis"])
    names = tiny_parameter_names()
    g_s = [n for n in names if n.startswith("g_s.")]
    transforms = [n for n in names if n.startswith(("g_a.", "g_s."))]
    assert f"Adam state carried over for {len(g_s)} of the {len(transforms)} trained parameters" in out
    c = torch.load(branch / "last.pt", weights_only=False)
    assert all(not torch.equal(c["model"][n], start["model"][n]) for n in transforms)
    assert all(torch.equal(c["model"][n], start["model"][n]) for n in names if n not in transforms)
    assert train.optimiser_size(c["optimizer"]) == len(transforms)


def test_entropy_trains_the_entropy_model_alone_and_keeps_both_transforms(data, tmp_path, capsys):
    from psic_train.trainable import ENTROPY_MODEL
    _, start, branch, out = branch_from_a_base(data, tmp_path, capsys, "entropy", base_steps=2, steps=5,
                                               args=["--entropy-lr-scale", 0.5])
    names = tiny_parameter_names()
    entropy = [n for n in names if n.split(".", 1)[0] in ENTROPY_MODEL]
    # the scale applies with the transforms frozen too, and the start-up line says so
    assert "trains entropy (given) at lr 0.001 (given), entropy model at lr 0.0005 (scale 0.5, given)" in out
    # (a parameter the checkpoint's two steps gave no gradient has no moments to carry)
    assert re.search(rf"Adam state carried over for \d+ of the {len(entropy)} trained parameters", out)
    c = torch.load(branch / "last.pt", weights_only=False)
    # the latents are fixed: g_a and g_s keep every weight, and the prior moves
    assert all(torch.equal(c["model"][n], start["model"][n]) for n in names if n not in entropy)
    moved = [n for n in entropy if not torch.equal(c["model"][n], start["model"][n])]
    assert {n.split(".", 1)[0] for n in moved} == set(ENTROPY_MODEL)
    assert train.optimiser_size(c["optimizer"]) == len(entropy)
    assert [g["lr"] for g in c["optimizer"]["param_groups"]] == [pytest.approx(5e-4)]


def test_encoder_trains_what_only_the_encoder_runs_and_keeps_the_decoder(data, tmp_path, capsys):
    _, start, branch, out = branch_from_a_base(data, tmp_path, capsys, "encoder", base_steps=2, steps=5,
                                               args=["--rate-proxy", "round", "--entropy-lr-scale", 0.5])
    names = tiny_parameter_names()
    encoder = [n for n in names if n.startswith(("g_a.", "h_a."))]
    # h_a belongs to the entropy model's group, so the scale applies to it
    assert "trains encoder (given) at lr 0.001 (given), entropy model at lr 0.0005 (scale 0.5, given)" in out
    c = torch.load(branch / "last.pt", weights_only=False)
    # what a stream decodes to is fixed: g_s, h_s, z's prior and the entropy-parameter networks keep
    # every weight (buffers included), while both encoder networks move
    assert all(torch.equal(c["model"][n], start["model"][n]) for n in c["model"] if n not in encoder)
    moved = {n.split(".", 1)[0] for n in encoder if not torch.equal(c["model"][n], start["model"][n])}
    assert moved == {"g_a", "h_a"}
    assert train.optimiser_size(c["optimizer"]) == len(encoder)
    assert [g["lr"] for g in c["optimizer"]["param_groups"]] == [1e-3, pytest.approx(5e-4)]


def test_carry_adam_state_keeps_the_moments_of_the_parameters_both_parts_train():
    from psic_train.trainable import carry_adam_state, select_trainable, trained_names
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG)
    before = torch.optim.Adam(select_trainable(model, "synthesis"), lr=1e-3)
    sum(p.square().sum() for p in model.g_s.parameters()).backward()
    before.step()
    old = before.state_dict()
    after = torch.optim.Adam(select_trainable(model, "transforms"), lr=1e-4)
    kept = carry_adam_state(after, old, trained_names(model, "synthesis"), trained_names(model, "transforms"))
    g_s = dict(model.g_s.named_parameters())
    assert kept == len(g_s)
    for name, p in model.named_parameters():
        if name.startswith("g_s."):
            assert torch.equal(after.state[p]["exp_avg"], before.state[p]["exp_avg"])
        else:
            assert p not in after.state
    assert after.param_groups[0]["lr"] == 1e-4   # the new optimiser's hyperparameters stay
    with pytest.raises(ValueError, match="covers"):
        carry_adam_state(after, old, trained_names(model, "transforms"), trained_names(model, "transforms"))


def test_images_smaller_than_the_crop_are_counted_and_reported(tmp_path, capsys):
    from psic_train.data import CropSampler
    Image.fromarray(np.zeros((200, 140, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((90, 300, 3), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "c.png")   # held out
    files = [tmp_path / "a.png", tmp_path / "b.png"]
    assert CropSampler(files, 64).skipped == 0
    s = CropSampler(files, 128)
    assert s.skipped == 1 and len(s.images) == 1 and s.batch(2).shape == (2, 3, 128, 128)
    with pytest.raises(SystemExit):
        CropSampler(files, 256)
    run(["--data", tmp_path, "--out", tmp_path / "run", *TINY, *RUN, "--crop", 128, "--steps", 1])
    out = capsys.readouterr().out
    assert "warning: 1 of 2 training images are smaller than 128x128" in out
    assert "2 training images, 1 held out (c);" in out   # which photos the evaluation sees


def test_resume_keeps_the_checkpoints_recipe_unless_given(data, tmp_path, capsys):
    import argparse
    from psic_train.recipe import fill_recipe, recipe_defaults

    def blank(**given):
        return argparse.Namespace(**{**{n: None for n in recipe_defaults()}, **given})

    fresh = blank()
    assert set(fill_recipe(fresh, None).values()) == {"default"} and (fresh.batch, fresh.crop) == (2, 256)
    assert fresh.lambda_max == recipe_defaults()["lambda_max"] and fresh.samples == 2
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--batch", 3, "--crop", 64, "--lambda-max", 1000,
         "--steps", 1])
    no_shape = [a for i, a in enumerate(RUN) if a not in ("--batch", "--crop") and RUN[i - 1] not in ("--batch", "--crop")]
    capsys.readouterr()
    run(["--data", data, "--out", tmp_path, "--resume", *no_shape, "--steps", 2])
    out = capsys.readouterr().out
    assert "batch 3x64² (the checkpoint's); lambda_max 1000 (the checkpoint's)" in out
    stored = torch.load(tmp_path / "last.pt", weights_only=False)["args"]
    assert stored["batch"] == "3" and float(stored["lambda_max"]) == 1000
    run(["--data", data, "--out", tmp_path, "--resume", *no_shape, "--batch", 1, "--crop", 64,
         "--lambda-max", 900, "--steps", 3])
    assert "batch 1x64² (given); lambda_max 900 (given)" in capsys.readouterr().out
    # the default given back on a resume changes the recipe: the start-up line says so too
    run(["--data", data, "--out", tmp_path, "--resume", *no_shape, "--lambda-max", recipe_defaults()["lambda_max"],
         "--steps", 4])
    assert f"lambda_max {recipe_defaults()['lambda_max']:g} (given)" in capsys.readouterr().out
    # a checkpoint from before these defaults stored its shape too ("8", "128"): kept on resume
    old = blank()
    sources = fill_recipe(old, {"batch": "8", "crop": "128", "lambda_max": "2048.0", "samples": "2"})
    assert (old.batch, old.crop, old.lambda_max) == (8, 128, 2048.0) and sources["crop"] == "the checkpoint's"
    # each option says where it came from
    mixed = blank(batch=4)
    sources = fill_recipe(mixed, {"batch": "8", "crop": "128"})
    assert (mixed.batch, mixed.crop) == (4, 128) and (sources["batch"], sources["crop"]) == ("given", "the checkpoint's")
    assert train.recipe_line(mixed, sources).startswith("batch 4x128² (batch given, crop the checkpoint's)")


def test_the_start_up_line_names_the_held_out_photos():
    assert train.held_out_span([]) == ""
    assert train.held_out_span([Path("d/urban100_img_063.png"), Path("d/urban100_img_070.png")]) \
        == " (urban100_img_063 … urban100_img_070)"


def test_evaluation_crops_sizes(tmp_path):
    from psic_train.data import evaluation_crops
    Image.fromarray(np.zeros((200, 140, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((50, 300, 3), np.uint8)).save(tmp_path / "small.png")  # under 64 rows: skipped
    files = [tmp_path / "a.png", tmp_path / "small.png"]
    assert [c.shape for c in evaluation_crops(files)] == [(1, 3, 192, 128)]
    assert [c.shape for c in evaluation_crops(files, 128)] == [(1, 3, 128, 128)]
    assert [c.shape for c in evaluation_crops(files, 0)] == [(1, 3, 192, 128)]
    Image.fromarray(np.zeros((700, 330, 3), np.uint8)).save(tmp_path / "a.png")
    assert [c.shape for c in evaluation_crops(files)] == [(1, 3, 256, 256)]
    assert [c.shape for c in evaluation_crops(files, 0)] == [(1, 3, 640, 320)]


def test_compare_prints_levels_and_bd_rate(data, tmp_path, capsys):
    import compare
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2])
    (tmp_path / "last.pt").rename(tmp_path / "early.pt")
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 3])
    capsys.readouterr()
    compare.main([str(tmp_path / "early.pt"), str(tmp_path / "last.pt"), "--data", str(data), "--holdout", "1",
                  "--crop", "0", "--threads", "1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("early.pt (step 2") and out[1].startswith("last.pt (step 3")
    assert all(f"L{i} " in out[0] for i in range(1, 5))
    assert out[2].startswith("  vs first: mean PSNR ") and "PSNR BD-rate" in out[2] and "MS-SSIM BD-rate" in out[2]
    compare.main([str(tmp_path / "last.pt"), "--data", str(data), "--holdout", "1", "--crop", "0", "--threads", "1",
                  "--json", str(tmp_path / "c.json")])
    curve = json.loads((tmp_path / "c.json").read_text())["models"][0]["sampled"]
    assert [r["level"] for r in curve] == [1, 2, 3, 4] and all(0 < r["ms_ssim"] <= 1 for r in curve)
    # --every-photo takes every photo of the folder (a Kodak screen), the same as holding them all out
    curves = {}
    for n in (["--every-photo"], ["--holdout", "4"], ["--holdout", "1"]):
        compare.main([str(tmp_path / "last.pt"), "--data", str(data), *n, "--crop", "64", "--threads", "1",
                      "--json", str(tmp_path / "n.json")])
        curves[n[-1]] = json.loads((tmp_path / "n.json").read_text())["models"][0]["sampled"]
    assert curves["--every-photo"] == curves["4"] != curves["1"]
    capsys.readouterr()
    # train.py's --holdout 0 holds no photo out, so here it names none: refused, --every-photo suggested
    with pytest.raises(SystemExit, match="give --every-photo"):
        compare.main([str(tmp_path / "last.pt"), "--data", str(data), "--holdout", "0"])
    with pytest.raises(SystemExit):  # the two choices of photos exclude each other
        compare.main([str(tmp_path / "last.pt"), "--data", str(data), "--holdout", "2", "--every-photo"])
    for bad in (["--crop", "32"], ["--holdout", "-1"], ["--data", str(tmp_path / "none")]):
        with pytest.raises(SystemExit, match="compare.py: --"):
            compare.main([str(tmp_path / "last.pt"), "--data", str(data), *bad])
    compare.main([str(tmp_path / "last.pt"), "--data", str(data), "--holdout", "1", "--crop", "64", "--threads", "1",
                  "--details", "both"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("last.pt (step 3") and out[1].startswith("last.pt (step 3, EMA) [mean details]")
    rates = [[float(tok.split("/")[0]) for tok in line.split(": ")[1].split()[1::2]] for line in out[:2]]
    assert rates[0] == rates[1], "the transmitted levels (and so the rates) do not depend on the details"
    assert out[2].startswith("  mean vs sampled details, PSNR: L1 ") and out[2].endswith("L4 +0.00 dB")


def test_compare_scores_decodes_with_ssimulacra2(data, tmp_path, capsys):
    pytest.importorskip("ssimulacra2")
    import compare
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2])
    capsys.readouterr()
    args = ["--data", str(data), "--holdout", "1", "--crop", "64", "--threads", "1", "--ssimulacra2"]
    compare.main([str(tmp_path / "last.pt"), str(tmp_path / "last.pt"), *args, "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  SSIMULACRA2: L1 ") and "L4 " in out[1]
    assert "SSIMULACRA2 BD-rate +0.00 %" in out[-2]                    # a model against itself
    # 1 photo, 4 levels, 2 models
    assert re.fullmatch(r"SSIMULACRA2: 8 decodes scored in \d+ s \(\d+\.\d\d s each\)", out[-1])
    curve = json.loads((tmp_path / "s.json").read_text())["models"][0]["sampled"]
    assert all(-200 < r["ssimulacra2"] < 100 for r in curve)
    compare.main([str(tmp_path / "last.pt"), *args, "--details", "both"])
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("  mean vs sampled details, SSIMULACRA2: L1 ") and out[-2].endswith("L4 +0.00")
    # the score is of the decode: a decode equal to the photo scores 100, a flat grey one far less
    scorer = compare.Ssimulacra2Scorer(tmp_path)
    from psic_train.data import evaluation_crops, list_images
    x = evaluation_crops(list_images(data), 64)[0]
    assert scorer(x, x)["ssimulacra2"] == pytest.approx(100, abs=0.01)
    assert scorer(x, torch.full_like(x, 0.5))["ssimulacra2"] < 30
    # the photo is written once for its decodes, and again when the next photo comes
    other = evaluation_crops(list_images(data), 64)[1]
    assert scorer(other, other)["ssimulacra2"] == pytest.approx(100, abs=0.01)
    assert scorer.summary().startswith("SSIMULACRA2: 3 decodes scored in ")


def test_profile_steps_prints_operators_and_writes_nothing(data, tmp_path, capsys):
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 2])
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    capsys.readouterr()
    run(["--data", data, "--out", tmp_path, *RUN, "--resume", "--profile-steps", 2])
    out = capsys.readouterr().out
    assert "profile of 2 steps" in out and "Self CPU" in out and "aten::" in out
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before, "a profiling run changed the run folder"


def test_mean_details_are_the_prior_mean_and_deterministic():
    torch.manual_seed(0)
    model = PSICModel(TINY_CONFIG).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        _, _, hyper = model.hyper(model.g_a(x))
        first = model.level_params(0, hyper, [])[0]
        a = model.sample_levels(hyper, [first], generator=torch.Generator().manual_seed(1), mean_details=True)
        b = model.sample_levels(hyper, [first], generator=torch.Generator().manual_seed(2), mean_details=True)
        s = model.sample_levels(hyper, [first], generator=torch.Generator().manual_seed(1))
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        assert torch.equal(a[1], model.level_params(1, hyper, a[:1])[0])
        assert not torch.equal(a[1], s[1])


# -- progress display -------------------------------------------------------------------------
def _stats(i):
    return {"loss": 1.0 + i, "bpp": 0.5, "mse_full": 0.01, "mse_sampled": 0.02, "bpp_levels": [0.1, 0.2],
            "seconds": 0.5}


def test_progress_tty_and_plain():
    s = io.StringIO()
    p = Progress(2, 0, log_every=2, max_steps=10, stream=s, tty=True)
    for i in range(1, 4):
        p.drawn = 0
        p.update(i, _stats(i))
    p.message("eval something")
    p.update(4, _stats(4))
    p.close()
    text = s.getvalue()
    assert text.count("\n") == 2 and text.count("\r") >= 4
    assert "step       3/10" in text and "0.50 s/step" in text and "ETA 0m04s" in text and "PSNR 20.00/16.99 dB" in text
    s = io.StringIO()
    p = Progress(2, 0, log_every=2, stream=s, tty=False)
    for i in range(1, 3):
        p.update(i, _stats(i))
    p.log(2, summarize([_stats(1), _stats(2)], 2))
    lines = s.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in s.getvalue() and "ETA" not in lines[0]
    assert "levels 0.100 0.200" in lines[0] and "loss 2.500" in lines[0]
    # grad_norm / clipped are averaged when present (the share of clipped steps), absent otherwise
    clipped = summarize([{**_stats(1), "grad_norm": 0.5, "clipped": 0.0, "level": 2},
                         {**_stats(2), "grad_norm": 1.5, "clipped": 1.0, "level": 2}], 2)
    assert clipped["grad_norm"] == 1.0 and clipped["clipped"] == 0.5 and clipped["grad_norm_levels"] == [None, 1.0]
    assert "grad_norm" not in summarize([_stats(1)], 2)
    assert fmt_duration(3 * 3600 + 120) == "3h02m" and fmt_duration(2 * 86400 + 3600) == "2d01h"


# -- allocator ----------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_keep_freed_memory_takes_on_glibc():
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    from psic_train.allocator import keep_freed_memory
    assert keep_freed_memory() is True
    # A 64 MiB tensor now comes from the heap, not from a new mmap (hblkhd: mmapped bytes).
    before = libc.mallinfo2().hblkhd
    t = torch.ones((64 << 20) // 4)
    assert libc.mallinfo2().hblkhd - before < 64 << 20
    assert float(t.sum()) == (64 << 20) // 4


def test_entropy_lr_scale_puts_the_entropy_model_in_a_slower_group(data, tmp_path, capsys):
    from psic_train.trainable import optimiser_groups, trained_names
    model = PSICModel(TINY_CONFIG)
    groups, order = optimiser_groups(model, "all", 1e-3, 0.1)
    # the order every single-group checkpoint was saved in, so their Adam state carries by name
    assert order == trained_names(model, "all")
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert {n.split(".")[0] for n, p in model.named_parameters() if any(p is q for q in groups[1]["params"])} \
        == {"h_a", "h_s", "entropy_bottleneck", "entropy_parameters"}
    assert len(optimiser_groups(model, "synthesis", 1e-3, 0.1)[0]) == 1
    with pytest.raises(ValueError, match="positive"):
        optimiser_groups(model, "all", 1e-3, 0)
    # end to end: a g_s-only run branched to everything keeps g_s's moments, warms both groups up
    # in proportion, and a resume keeps the scale
    base, branch = tmp_path / "base", tmp_path / "branch"
    run(["--data", data, "--out", base, *TINY, *RUN, "--steps", 2, "--ema", 0, "--trainable", "synthesis"])
    capsys.readouterr()
    run(["--data", data, "--out", branch, "--init", base / "last.pt", *RUN, "--steps", 4, "--ema", 0,
         "--trainable", "all", "--entropy-lr-scale", 0.1, "--lr", 1e-3, "--warmup-steps", 4])
    out = capsys.readouterr().out
    assert "trains all (given) at lr 0.001 (given), entropy model at lr 0.0001 (scale 0.1, given)" in out
    g_s = [n for n in trained_names(model, "synthesis")]
    assert f"Adam state carried over for {len(g_s)} of the {len(order)} trained parameters" in out
    c = torch.load(branch / "last.pt", weights_only=False)
    assert [g["lr"] for g in c["optimizer"]["param_groups"]] == [pytest.approx(1e-3 * 2 / 4), pytest.approx(1e-4 * 2 / 4)]
    start = torch.load(base / "last.pt", weights_only=False)
    # (the entropy model moves; in a 2-step tiny model some of its weights see no gradient yet)
    assert any(not torch.equal(c["model"][n], start["model"][n]) for n in order if n.startswith("h_s."))
    run(["--data", data, "--out", branch, "--resume", *RUN, "--steps", 5, "--ema", 0])
    out = capsys.readouterr().out
    # the learning rate too is the checkpoint's (before session 47 a resume without --lr took 1e-4)
    assert ("trains all (the checkpoint's) at lr 0.001 (the checkpoint's), "
            "entropy model at lr 0.0001 (scale 0.1, the checkpoint's)") in out
    assert "; no EMA (given);" in out
    assert "Adam state" not in out
    c = torch.load(branch / "last.pt", weights_only=False)
    assert [g["lr"] for g in c["optimizer"]["param_groups"]] == [1e-3, pytest.approx(1e-4)]
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(branch), "--entropy-lr-scale", "0"])
    assert "--entropy-lr-scale must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(branch), "--ema", "1"])
    assert "--ema must be a decay in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(branch), "--eval-every", "-1"])
    assert "--eval-every must be 0 (no evaluations)" in capsys.readouterr().err


def test_what_a_run_trains_carries_over_like_the_recipe(data, tmp_path):
    import argparse
    from psic_train.recipe import LOSS_TERM_SCOPE, UnknownPart, fill_scope, scope_defaults

    def scope_args(**given):
        return argparse.Namespace(**{**dict.fromkeys(scope_defaults()), **given})
    unsaid = dict.fromkeys(LOSS_TERM_SCOPE, "default")   # what these checkpoints do not record
    blank = scope_args()
    # a checkpoint from before session 34 holds no part or scale: it trained everything at one rate;
    # one from before session 43 no count of kept evaluations: it kept none
    assert fill_scope(blank, {"batch": "2", "ema": "0.9995"}) \
        == ({"trainable": "default", "lr": "default", "entropy_lr_scale": "default", "ema": "the checkpoint's",
             "eval_every": "default", "keep_evaluated": "default", **unsaid}, "all")
    assert (blank.trainable, blank.lr, blank.entropy_lr_scale, blank.ema, blank.eval_every, blank.keep_evaluated) \
        == ("all", 1e-4, 1.0, 0.9995, 1000, 0)
    # checkpoints store their args as strings
    stored = scope_args()
    assert fill_scope(stored, {"trainable": "synthesis", "lr": "3e-05", "entropy_lr_scale": "0.1", "ema": "0.0",
                               "eval_every": "500", "keep_evaluated": "6"}) \
        == ({"trainable": "the checkpoint's", "lr": "the checkpoint's", "entropy_lr_scale": "the checkpoint's",
             "ema": "the checkpoint's", "eval_every": "the checkpoint's", "keep_evaluated": "the checkpoint's",
             **unsaid}, "synthesis")
    assert (stored.trainable, stored.lr, stored.entropy_lr_scale, stored.ema, stored.eval_every,
            stored.keep_evaluated) == ("synthesis", 3e-5, 0.1, 0.0, 500, 6)
    given = scope_args(trainable="all", lr=1e-3, ema=0.5, keep_evaluated=0)
    # the part given for this run; the checkpoint's own part is what its Adam state was saved over
    assert fill_scope(given, {"trainable": "synthesis", "entropy_lr_scale": "None", "keep_evaluated": "6"}) \
        == ({"trainable": "given", "lr": "given", "entropy_lr_scale": "default", "ema": "given",
             "eval_every": "default", "keep_evaluated": "given", **unsaid}, "synthesis")
    assert given.keep_evaluated == 0
    unknown = scope_args()
    with pytest.raises(UnknownPart) as refused:
        fill_scope(unknown, {"trainable": "decoder"})
    assert refused.value.part == "decoder" and "give --trainable (all, synthesis" in str(refused.value)
    # a checkpoint whose part this train.py does not know: a clear refusal, not a traceback
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 1, "--ema", 0])
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    ckpt["args"]["trainable"] = "decoder"
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(SystemExit, match="the checkpoint trained 'decoder'.*give --trainable"):
        run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 2, "--ema", 0])


def test_held_out_ms_ssim_is_pytorch_msssims_and_defined_on_small_crops():
    from pytorch_msssim import ms_ssim
    from psic_train.objective import ms_ssim_5
    torch.manual_seed(0)
    a = torch.rand(1, 3, 192, 256)
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    assert ms_ssim_5(b, a) == pytest.approx(float(ms_ssim(b, a, data_range=1.0)), abs=1e-6)
    small = ms_ssim_5(b[..., :64, :64], a[..., :64, :64])   # pytorch_msssim refuses sides <= 160
    assert 0 < small < 1


def test_keep_evaluated_writes_each_evaluated_step_and_keeps_the_most_recent(data, tmp_path, capsys):
    run(["--data", data, "--out", tmp_path, *TINY, *RUN, "--steps", 6, "--ema", 0.5, "--keep-evaluated", 2])
    assert "keeps 2 evaluated checkpoints (given)" in capsys.readouterr().out
    assert sorted(f.name for f in tmp_path.glob("eval-*.pt")) == ["eval-4.pt", "eval-6.pt"]
    snap = torch.load(tmp_path / "eval-4.pt", weights_only=False)
    assert snap["step"] == 4 and "ema" in snap and "optimizer" in snap
    # a full checkpoint (weights, average, Adam state): export.py and --init read it like last.pt
    (tmp_path / "eval-notes.pt").write_bytes(b"kept")   # not one of ours: never deleted
    # the count carries over on --resume like the decay does
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 10])
    assert sorted(f.name for f in tmp_path.glob("eval-*.pt")) == ["eval-10.pt", "eval-8.pt", "eval-notes.pt"]
    assert "keeps 2 evaluated checkpoints (the checkpoint's)" in capsys.readouterr().out
    run(["--data", data, "--out", tmp_path, "--resume", *RUN, "--steps", 12, "--keep-evaluated", 1])
    assert "keeps 1 evaluated checkpoint (given)" in capsys.readouterr().out
    assert sorted(f.name for f in tmp_path.glob("eval-*.pt")) == ["eval-12.pt", "eval-notes.pt"]
    with pytest.raises(SystemExit):
        train.parse_args(["--out", str(tmp_path), "--keep-evaluated", "-1"])
