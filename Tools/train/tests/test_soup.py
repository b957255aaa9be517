"""Tests of weight soups (psic_train/soup.py, soup.py): the ends of the weight are the parents, the
middle is their mean, integer buffers and mismatched parents are handled, the recipe is mixed, and
train.py starts from a soup."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import soup as soup_cli  # noqa: E402
import train  # noqa: E402
from psic_train.fromfile import load_model  # noqa: E402
from psic_train.model import ModelConfig, PSICModel  # noqa: E402
from psic_train.soup import SoupError, mix_recipes, mix_states, soup  # noqa: E402
from tiny import TINY_CONFIG  # noqa: E402

torch.set_num_threads(1)


def checkpoint(seed: int, step: int, cfg: ModelConfig = TINY_CONFIG, **args) -> dict:
    torch.manual_seed(seed)
    model = PSICModel(cfg)
    ema = {n: p.detach() + 0.01 for n, p in model.named_parameters()}   # an average apart from the raw weights
    return {"config": cfg.to_dict(), "model": model.state_dict(), "step": step, "ema": ema,
            "args": {"batch": 4, "lambda_max": 2350.0, "perceptual_weight": 0.01, **args}}


def test_the_weight_runs_from_the_first_checkpoint_to_the_second():
    a, b = checkpoint(0, 100), checkpoint(1, 300, perceptual_weight=0.03)
    for part in ("model", "ema"):
        floats = [k for k, t in a[part].items() if t.is_floating_point()]
        assert floats
        at0, at1 = soup(a, b, 0.0, ("a", "b"))[0][part], soup(a, b, 1.0, ("a", "b"))[0][part]
        half = soup(a, b, 0.5, ("a", "b"))[0][part]
        for k in floats:
            assert torch.equal(at0[k], a[part][k]) and torch.allclose(at1[k], b[part][k]), k
            assert torch.allclose(half[k], (a[part][k] + b[part][k]) / 2), k
    ckpt, notes = soup(a, b, 0.3, ("runs/a.pt", "runs/b.pt"))
    assert ckpt["step"] == 300 and "optimizer" not in ckpt
    assert ckpt["args"]["souped_from"] == "runs/a.pt (step 100) x 0.7 + runs/b.pt (step 300) x 0.3"
    assert ckpt["args"]["perceptual_weight"] == pytest.approx(0.016) and ckpt["args"]["batch"] == 4
    assert notes == ["perceptual_weight: 0.01 and 0.03 mixed to 0.016"]


def test_integer_tensors_are_the_first_checkpoints_and_shapes_must_match():
    a = {"w": torch.zeros(2), "n": torch.tensor([3])}
    b = {"w": torch.ones(2), "n": torch.tensor([7])}
    mixed = mix_states(a, b, 0.25)
    assert torch.allclose(mixed["w"], torch.full((2,), 0.25)) and torch.equal(mixed["n"], torch.tensor([3]))
    with pytest.raises(SoupError, match="different tensors"):
        mix_states(a, {"w": torch.ones(2)}, 0.5)
    with pytest.raises(SoupError, match=r"w is \(2,\) in one checkpoint and \(3,\)"):
        mix_states(a, {"w": torch.ones(3), "n": torch.tensor([7])}, 0.5)


def test_recipes_keep_what_the_parents_share_and_mix_numbers():
    mixed, notes = mix_recipes({"batch": "4", "crop": 256, "samples": 2}, {"batch": 8, "crop": 256}, 0.5)
    assert mixed["batch"] == 6 and mixed["crop"] == 256 and mixed["samples"] == 2
    assert notes == ["batch: 4 and 8 mixed to 6"]
    mixed, notes = mix_recipes({"lambda_max": "x"}, {"lambda_max": "y"}, 0.5)
    assert mixed["lambda_max"] == "x" and notes == ["lambda_max: x and y differ, the first checkpoint's kept"]


def test_parents_that_cannot_be_mixed_are_refused():
    a = checkpoint(0, 1)
    with pytest.raises(SoupError, match="outside"):
        soup(a, checkpoint(1, 1), 1.5, ("a", "b"))
    wider = checkpoint(1, 1, ModelConfig(**{**TINY_CONFIG.to_dict(), "N": 24}))
    with pytest.raises(SoupError, match="different models"):
        soup(a, wider, 0.5, ("a", "b"))
    no_average = {k: v for k, v in checkpoint(1, 1).items() if k != "ema"}
    with pytest.raises(SoupError, match="moving average"):
        soup(a, no_average, 0.5, ("a", "b"))


def test_the_cli_writes_a_soup_that_compare_loads_and_train_py_continues(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(checkpoint(0, 10), a)
    torch.save(checkpoint(1, 20, perceptual_weight=0.02), b)
    out = tmp_path / "s.pt"
    soup_cli.main([str(a), str(b), "--weight", "0.5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "moving averages and raw weights mixed" in printed and "perceptual_weight: 0.01 and 0.02 mixed to 0.015" in printed
    model, step, recipe, averaged = load_model(out)
    assert step == 20 and averaged and recipe["perceptual_weight"] == pytest.approx(0.015)
    first = load_model(a)[0]
    name = next(n for n, p in model.named_parameters() if p.is_floating_point())
    assert not torch.equal(dict(model.named_parameters())[name], dict(first.named_parameters())[name])
    # train.py --init continues it, with the soup's recipe
    data = tmp_path / "photos"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(data / f"{i}.png")
    capsys.readouterr()
    train.main(["--data", str(data), "--out", str(tmp_path / "run"), "--init", str(out), "--steps", "21",
                "--batch", "1", "--crop", "64", "--threads", "1", "--holdout", "1", "--log-every", "1",
                "--eval-every", "0", "--checkpoint-minutes", "0"])
    assert "perceptual_weight 0.015 (the checkpoint's)" in capsys.readouterr().out
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 21
    for bad, message in ((["--weight", "2"], "outside"), (["--weight", "0.5", "--out", str(tmp_path / "s.safetensors")], "should end in .pt")):
        with pytest.raises(SystemExit, match=message):
            soup_cli.main([str(a), str(b), "--out", str(out), *bad])
    with pytest.raises(SystemExit, match="does not exist"):
        soup_cli.main([str(a), str(tmp_path / "none.pt"), "--weight", "0.5", "--out", str(out)])
