"""export_gap.py: the integer scale index against the checkpoint's float scale."""
import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import export_gap  # noqa: E402
from psic_train.quantize import analyse  # noqa: E402
from tiny import tiny_integer_model  # noqa: E402

torch.set_num_threads(1)


def test_the_scale_index_bias_is_the_integer_networks_and_moves_with_the_float_scale():
    model, ent, _, _ = tiny_integer_model()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y, z = analyse(model, x)
    bias = export_gap.scale_index_bias(model, ent, y, z)
    assert bias.shape == (model.cfg.L,)
    assert np.all(np.abs(bias) < 0.25), "the integer index rounds the float one: no bias past a fraction of a step"
    # the float scale one grid step wider at every level: the integer index now sits a step below it
    wider = copy.deepcopy(model)
    lc = model.cfg.C // model.cfg.L
    with torch.no_grad():
        for net in wider.entropy_parameters:
            net[-1].bias[lc:] += ent.scale_grid.log_step
    np.testing.assert_allclose(export_gap.scale_index_bias(wider, ent, y, z), bias - 1, atol=0.02)


def test_a_checkpoint_is_set_beside_the_file_exported_from_it_only(tmp_path):
    from psic_train.fromfile import exported_checkpoint
    from psic_train.modelfile import write_model
    model, ent, _, _ = tiny_integer_model()
    path = tmp_path / "m.safetensors"
    write_model(path, model, ent, fp16=False, training={"steps": 12})
    for step in (12, 13):
        torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), "step": step}, tmp_path / f"{step}.pt")
    loaded, step, mf = exported_checkpoint(tmp_path / "12.pt", path)
    assert step == 12 and not loaded.training and mf.meta["training"]["steps"] == 12
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(SystemExit, match="exported at step 12, .* is at step 13"):
        exported_checkpoint(tmp_path / "13.pt", path)
