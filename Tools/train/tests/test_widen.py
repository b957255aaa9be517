"""Tests of widening a trained model (psic_train/widen.py, widen.py): the wider model codes and
decodes exactly as the narrower one, its added z channels cost no bits, and its added channels
can learn (their incoming weights get gradients)."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import widen as widen_cli  # noqa: E402
from psic_train.model import ModelConfig, PSICModel, checkpoint_weights, code_levels, z_likelihood  # noqa: E402
from psic_train.widen import START, added_channel_weights, narrow, split_copy_gaps, widen  # noqa: E402
from tiny import TINY_CONFIG  # noqa: E402

torch.set_num_threads(1)
NARROW = TINY_CONFIG
# The starts that keep one side of the added channels at zero (the split start copies instead).
ZERO_STARTS = ("incoming", "outgoing")


@pytest.fixture(scope="module")
def trained():
    """A narrow model whose GDN and bottleneck parameters are off their initial values, as a
    trained model's are (a fresh GDN's gamma is diagonal, which would hide a wrong copy)."""
    torch.manual_seed(3)
    model = PSICModel(NARROW)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gamma" in name or "beta" in name or name.startswith("entropy_bottleneck"):
                p.add_(0.5 * torch.rand_like(p))
    return model.eval()


def decode(model: PSICModel, x: torch.Tensor):
    """The coding path of the codec: z, the per-level symbols and the full decode."""
    with torch.no_grad():
        y = model.g_a(x)
        z_hat, _, hyper = model.hyper(y)
        coded = code_levels(model, hyper, y.chunk(model.cfg.L, dim=1))
        x_hat = model.g_s(torch.cat([decoded for _, _, decoded in coded], dim=1))
    return z_hat, [q for _, q, _ in coded], x_hat


@pytest.mark.parametrize("start", ZERO_STARTS)
def test_the_wider_model_codes_and_decodes_as_the_narrow_one(trained, start):
    wide = widen(trained, 24, start=start).eval()
    assert wide.cfg == ModelConfig(N=24, C=16, L=4, hyper=16, ep_width=16)
    x = torch.rand(2, 3, 64, 64)
    z0, q0, x0 = decode(trained, x)
    z1, q1, x1 = decode(wide, x)
    with torch.no_grad():                                              # the added z channels are 0 before rounding
        z_wide = wide.h_a(wide.g_a(x))
    assert torch.equal(z_wide[:, 16:], torch.zeros_like(z_wide[:, 16:]))
    assert torch.equal(z1[:, :16], z0)
    for a, b in zip(q0, q1):
        assert torch.equal(a, b)
    # Convolutions over more (zero) channels may sum in another order: float rounding only.
    assert torch.allclose(x1, x0, atol=1e-5)
    with torch.no_grad():
        old_bits = -torch.log2(z_likelihood(trained.entropy_bottleneck, z0))
        new_bits = -torch.log2(z_likelihood(wide.entropy_bottleneck, z1))
    assert torch.allclose(new_bits[:, :16], old_bits, atol=1e-5)
    assert new_bits[:, 16:].mean() < 0.01                              # fitted to symbol 0


def test_the_added_channels_learn_from_zero_incoming_weights(trained):
    wide = widen(trained, 24).train()
    x = torch.rand(1, 3, 64, 64)
    F.mse_loss(wide.g_s(wide.g_a(x)), x).backward()
    for conv in (wide.g_a[2], wide.g_a[4]):                           # Conv2d: [out, in, k, k]
        assert torch.equal(conv.weight[16:].detach(), torch.zeros_like(conv.weight[16:]))
        assert conv.weight.grad[16:].abs().sum() > 0
    for deconv in (wide.g_s[2], wide.g_s[4]):                         # ConvTranspose2d: [in, out, k, k]
        assert torch.equal(deconv.weight[:, 16:].detach(), torch.zeros_like(deconv.weight[:, 16:]))
        assert deconv.weight.grad[:, 16:].abs().sum() > 0


def test_the_old_channels_learn_to_read_the_added_ones_from_zero_outgoing_weights(trained):
    wide = widen(trained, 24, start="outgoing").train()
    x = torch.rand(1, 3, 64, 64)
    F.mse_loss(wide.g_s(wide.g_a(x)), x).backward()
    for conv in (wide.g_a[2], wide.g_a[4]):                           # Conv2d: [out, in, k, k]
        assert conv.weight[16:].detach().abs().sum() > 0                # the added channels compute
        assert torch.equal(conv.weight[:16, 16:].detach(), torch.zeros_like(conv.weight[:16, 16:]))
        assert conv.weight.grad[:16, 16:].abs().sum() > 0
    for deconv in (wide.g_s[2], wide.g_s[4]):                         # ConvTranspose2d: [in, out, k, k]
        assert torch.equal(deconv.weight[16:, :16].detach(), torch.zeros_like(deconv.weight[16:, :16]))
        assert deconv.weight.grad[16:, :16].abs().sum() > 0
    last = wide.g_s[6]                                                # the image reads no added channel yet
    assert torch.equal(last.weight[16:].detach(), torch.zeros_like(last.weight[16:]))
    assert last.weight.grad[16:].abs().sum() > 0


def test_widen_refuses_a_narrower_width_and_an_unknown_start(trained):
    with pytest.raises(ValueError, match="narrower"):
        widen(trained, 8)
    with pytest.raises(ValueError, match="not one of"):
        widen(trained, 24, start="both")
    with pytest.raises(ValueError, match="at most 32"):
        widen(trained, 40, start="split")


def test_the_cli_writes_a_checkpoint_train_py_starts_from(trained, tmp_path, capsys):
    src = tmp_path / "narrow.pt"
    torch.save({"config": NARROW.to_dict(), "model": trained.state_dict(), "step": 1234,
                "ema": {n: p.detach() for n, p in trained.named_parameters()},
                "args": {"lambda_max": "2350"}}, src)
    out = tmp_path / "wide.pt"
    widen_cli.main(["--init", str(src), "--N", "24", "--out", str(out)])
    assert "N 16 -> 24, step 1234" in capsys.readouterr().out
    ckpt = torch.load(out, map_location="cpu", weights_only=False)
    assert ckpt["step"] == 1234 and ckpt["config"]["N"] == 24 and ckpt["args"]["lambda_max"] == "2350"
    assert "optimizer" not in ckpt and "ema" not in ckpt
    model = PSICModel(ModelConfig(**ckpt["config"]))
    model.load_state_dict(checkpoint_weights(ckpt)[0])
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(decode(model.eval(), x)[2], decode(trained, x)[2], atol=1e-5)
    # --N below the model's cuts it back: the round trip gives the narrow model's weights.
    back = tmp_path / "back.pt"
    widen_cli.main(["--init", str(out), "--N", "16", "--out", str(back)])
    assert "N 24 -> 16, step 1234, the leading channels kept" in capsys.readouterr().out
    state = torch.load(back, map_location="cpu", weights_only=False)["model"]
    for k, t in trained.state_dict().items():
        assert torch.equal(state[k], t), k
    with pytest.raises(SystemExit, match="at least 1"):
        widen_cli.main(["--init", str(src), "--N", "0", "--out", str(out)])
    with pytest.raises(SystemExit, match="widen.py --init: .*missing.pt does not exist"):
        widen_cli.main(["--init", str(tmp_path / "missing.pt"), "--N", "24", "--out", str(out)])
    with pytest.raises(SystemExit, match="widen.py --inspect: .*missing.pt does not exist"):
        widen_cli.main(["--inspect", str(tmp_path / "missing.pt"), "--old-N", "16"])


@pytest.mark.parametrize("start", ZERO_STARTS)
def test_narrow_undoes_widen_and_drops_what_the_added_channels_learnt(trained, start):
    wide = widen(trained, 24, start=start)
    for k, t in narrow(wide, 16).state_dict().items():
        assert torch.equal(t, trained.state_dict()[k]), k
    with torch.no_grad():
        wide.g_s[0].weight[:, 16:].fill_(0.05)                       # the added channels compute,
        wide.g_s[2].weight[16:, :16].fill_(0.05)                     # and old channels read them
    x = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(decode(narrow(wide, 16).eval(), x)[2], decode(wide.eval(), x)[2], atol=1e-3)
    with pytest.raises(ValueError, match="not in 1...24"):
        narrow(wide, 25)


@pytest.mark.parametrize("start", ZERO_STARTS)
def test_inspect_reports_the_zero_side_of_each_start(trained, start, tmp_path, capsys):
    wide = widen(trained, 24, start=start)
    rows = {name: (old, added_in, from_added) for name, old, added_in, from_added in added_channel_weights(wide, 16)}
    assert list(rows) == ["g_a.0", "g_a.2", "g_a.4", "g_a.6", "g_s.0", "g_s.2", "g_s.4", "g_s.6",
                          "h_a.0", "h_a.2", "h_a.4", "h_s.0", "h_s.2", "h_s.4"]
    assert rows["g_a.0"][2] is None and rows["g_s.0"][2] is None          # the image and y did not grow
    assert rows["g_a.6"][1] is None and rows["g_s.6"][1] is None and rows["h_s.4"][1] is None
    zero_side = 1 if start == "incoming" else 2
    for name in ("g_a.2", "g_a.4", "g_s.2", "g_s.4", "h_s.2"):
        assert rows[name][0] > 0 and rows[name][zero_side] == 0 and rows[name][3 - zero_side] > 0
    assert rows["h_a.4"][1] == 0                                          # z's added channels: zero either way
    ckpt = tmp_path / "wide.pt"
    torch.save({"config": wide.cfg.to_dict(), "model": wide.state_dict(), "step": 7}, ckpt)
    widen_cli.main(["--inspect", str(ckpt), "--old-N", "16"])
    out = capsys.readouterr().out
    assert "(step 7, raw weights): weight RMS per layer, N 16 -> 24" in out and "g_s.6" in out
    with pytest.raises(SystemExit, match="give the narrower width"):
        widen_cli.main(["--inspect", str(ckpt), "--old-N", "24"])


def test_a_split_without_noise_codes_and_decodes_as_the_narrow_one(trained):
    assert START == ZERO_STARTS + ("split",)
    wide = widen(trained, 24, start="split", noise=0.0).eval()
    x = torch.rand(2, 3, 64, 64)
    z0, q0, x0 = decode(trained, x)
    z1, q1, x1 = decode(wide, x)
    assert torch.equal(z1[:, :16], z0) and torch.equal(z1[:, 16:], torch.zeros_like(z1[:, 16:]))
    for a, b in zip(q0, q1):
        assert torch.equal(a, b)
    assert torch.allclose(x1, x0, atol=1e-5)            # halves summed in another order: rounding only
    # Every added channel of g_a computes its source's feature: no channel is idle.
    with torch.no_grad():
        h = wide.g_a[1](wide.g_a[0](x))
    for a in range(16, 24):
        assert any(torch.equal(h[:, a], h[:, o]) for o in range(16)), a


def test_split_copies_start_near_their_sources_and_learn_apart(trained):
    x = torch.rand(2, 3, 64, 64)
    z0, _, x0 = decode(trained, x)
    apart = {}
    for noise in (0.0, 0.01):
        wide = widen(trained, 24, start="split", noise=noise)
        z1, _, x1 = decode(wide.eval(), x)
        assert torch.equal(z1[:, 16:], torch.zeros_like(z1[:, 16:]))
        if noise:
            assert 0 < (x1 - x0).abs().max() < 0.01          # the noise moves the function a little
        wide.train()
        F.mse_loss(wide.g_s(wide.g_a(x)), x).backward()
        w, g = wide.g_a[2].weight.detach(), wide.g_a[2].weight.grad   # Conv2d: [out, in, k, k]
        gaps = []
        for a in range(16, 24):
            # Its source: the old row it is closest to (equal without noise).
            o = int(torch.stack([(w[a] - w[s]).norm() for s in range(16)]).argmin())
            assert (w[a] - w[o]).norm() <= 0.05 * w[o].norm()
            gaps.append(float((g[a] - g[o]).norm() / g[o].norm()))
        apart[noise] = gaps
    # Exact copies get their source's gradient, so Adam would keep them equal for ever; the noise
    # gives each copy a gradient of its own (about the noise's size in these tiny layers).
    assert max(apart[0.0]) < 1e-5
    assert min(apart[0.01]) > 1e-4


def test_the_cli_writes_a_split_with_the_noise_it_is_given(trained, tmp_path, capsys):
    src = tmp_path / "narrow.pt"
    torch.save({"config": NARROW.to_dict(), "model": trained.state_dict(), "step": 5}, src)
    out = tmp_path / "wide.pt"
    widen_cli.main(["--init", str(src), "--N", "24", "--start", "split", "--noise", "0", "--out", str(out)])
    assert "N 16 -> 24, step 5, start split (noise 0)" in capsys.readouterr().out
    model = PSICModel(ModelConfig(**torch.load(out, map_location="cpu", weights_only=False)["config"]))
    model.load_state_dict(torch.load(out, map_location="cpu", weights_only=False)["model"])
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(decode(model.eval(), x)[2], decode(trained, x)[2], atol=1e-5)
    with pytest.raises(SystemExit, match="--N 40: widen: a split copies each channel at most once"):
        widen_cli.main(["--init", str(src), "--N", "40", "--start", "split", "--out", str(out)])
    with pytest.raises(SystemExit, match="--noise"):
        widen_cli.main(["--init", str(src), "--N", "24", "--start", "split", "--noise", "-1", "--out", str(out)])


def test_inspect_reports_how_far_split_copies_have_parted(trained, tmp_path, capsys):
    wide = widen(trained, 24, start="split", noise=0.01)
    gaps = dict(split_copy_gaps(wide, 16))
    assert list(gaps) == ["g_a.0", "g_a.2", "g_a.4", "g_s.0", "g_s.2", "g_s.4", "h_a.0", "h_a.2", "h_s.0", "h_s.2"]
    assert all(0.002 < v < 0.02 for v in gaps.values()), gaps     # the noise: 0.01 of the row's RMS
    with torch.no_grad():
        wide.g_s[2].weight[:, 16:].mul_(-1)                        # ConvTranspose2d: the copies' incoming weights
    assert dict(split_copy_gaps(wide, 16))["g_s.2"] > 1.0
    ckpt = tmp_path / "wide.pt"
    # The moving average lags the trained weights: --raw reads the latter.
    ema = {n: t.clone() for n, t in widen(trained, 24, start="split", noise=0.01).named_parameters()}
    torch.save({"config": wide.cfg.to_dict(), "model": wide.state_dict(), "ema": ema, "step": 7}, ckpt)
    tables = {}
    for flag in ([], ["--raw"]):
        widen_cli.main(["--inspect", str(ckpt), "--old-N", "16", *flag])
        tables[bool(flag)] = capsys.readouterr().out
    assert "(step 7, moving average)" in tables[False] and "(step 7, raw weights)" in tables[True]
    g_s2 = {raw: next(line for line in out.splitlines() if line.startswith("g_s.2")) for raw, out in tables.items()}
    assert float(g_s2[True].split()[-1]) > 1.0 > float(g_s2[False].split()[-1])
