"""The coder's scale-index offsets (psic_train/codingoffset.py, model format version 2)."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from psic_train import codingoffset  # noqa: E402
from psic_train import tableshape  # noqa: E402
from psic_train import intmodel as im  # noqa: E402
from psic_train.modelfile import ModelFile, write_model  # noqa: E402
from psic_train.rates import int_bits  # noqa: E402
from psic_train.tables import gaussian_tables  # noqa: E402
from tiny import tiny_integer_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    return tiny_integer_model()


def synthetic_encode(tables: im.CDFTables, k: np.ndarray, spread: float, rng) -> dict:
    """Symbols drawn from zero-mean Gaussians `spread` times as wide as table k's scale."""
    sigma = im.ScaleGrid(len(tables.length)).sigmas()[k]
    return {"k": k, "q": np.round(rng.normal(0, 1, k.shape) * sigma * spread).astype(np.int64)}


def test_costs_are_the_tables_bits():
    """offset_costs prices every channel's symbols as CDFTables.bits does, escapes included, for
    every offset (up to the constant that symbols beyond every table add)."""
    tables = gaussian_tables(im.ScaleGrid(64))
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=tables)
    rng = np.random.default_rng(1)
    enc = synthetic_encode(tables, rng.integers(0, 40, (2, 4, 5, 5)), 1.6, rng)
    enc["q"][0, 1, 0, 0] = 40                       # an escape for the narrow tables, not the widest
    search = range(-3, 5)
    costs = codingoffset.offset_costs(ent, [enc], search)
    for j, d in enumerate(search):
        for c in range(4):
            k = np.clip(enc["k"][:, c] + d, 0, 63)
            assert costs[c, j] == pytest.approx(tables.bits(k, enc["q"][:, c])[0])


def test_bits_price_each_symbol_by_its_table():
    """CDFTables.bits against the rule spelt out: -log2(f/2^16) inside a table, the escape symbol's
    bits plus Elias-gamma bypass bits outside it, also for values beyond every table."""
    tables = gaussian_tables(im.ScaleGrid(64))
    rows = np.array([0, 0, 5, 63, 63, 20])
    far = 10 * int(tables.length.max())
    symbols = np.array([0, 40, -1, 3, -far, far])
    expected, escapes = 0.0, 0
    for r, v in zip(rows, symbols):
        f, n = tables.freq(r), int(tables.length[r])
        i = v - int(tables.offset[r])
        if 0 <= i < n - 1:
            expected += -np.log2(f[i] / im.CDF_TOTAL)
        else:
            escapes += 1
            expected += -np.log2(f[n - 1] / im.CDF_TOTAL) + float(im.escape_bypass_bits(np.array([v]))[0])
    bits, esc = tables.bits(rows, symbols)
    assert esc == escapes == 3 and bits == pytest.approx(expected, rel=1e-12)


def test_calibration_widens_the_tables_of_symbols_wider_than_their_scale():
    tables = gaussian_tables(im.ScaleGrid(128))
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=tables)
    rng = np.random.default_rng(2)
    k = rng.integers(30, 80, (4, 4, 16, 16))
    # channels 0-1: symbols as wide as their tables; 2: 1.35x wider (ln 1.35 / 0.061 ~ 5 steps); 3: 0.7x
    q = np.concatenate([synthetic_encode(tables, k[:, c:c + 1], s, rng)["q"]
                        for c, s in enumerate((1.0, 1.0, 1.35, 0.7))], axis=1)
    offsets, summary = codingoffset.calibrate(ent, [{"k": k, "q": q}])
    assert list(offsets[:2]) == [0, 0]
    assert 4 <= offsets[2] <= 6 and -7 <= offsets[3] <= -4
    assert summary["offsets"] == list(offsets) and summary["at_search_bound"] == 0
    assert summary["level_bits_saving"][0] == pytest.approx(0, abs=2e-3) and summary["level_bits_saving"][1] > 0.01
    assert summary["bits_saving"] > 0


def test_encode_codes_with_the_offset_table_and_samples_with_the_network_index(setup):
    _, ent, y, z = setup
    plain = ent.encode(y.numpy(), z.numpy())
    offsets = np.arange(ent.C) % 5 - 2
    shifted = replace(ent, coding_offset=offsets).encode(y.numpy(), z.numpy())
    assert np.array_equal(plain["k_code"], plain["k"])
    assert all(np.array_equal(plain[key], shifted[key]) for key in ("H", "mu", "k", "q", "y_hat"))
    top = ent.scale_grid.count - 1
    assert np.array_equal(shifted["k_code"], np.clip(plain["k"] + offsets.reshape(1, -1, 1, 1), 0, top))
    # the sampler reads no offset: a decode is the same whichever the coder uses
    a = ent.sample(plain["H"], plain["y_hat"], 1, seed=3)
    b = replace(ent, coding_offset=offsets).sample(plain["H"], plain["y_hat"], 1, seed=3)
    assert np.array_equal(a["y_hat"], b["y_hat"])


def test_int_bits_reprices_earlier_encodes_with_the_current_offsets(setup):
    _, ent, y, z = setup
    offsets = np.arange(ent.C) % 5 - 2
    shifted = replace(ent, coding_offset=offsets)
    *plain, encodes = int_bits(ent, y.numpy(), z.numpy(), batch=3)
    direct = int_bits(shifted, y.numpy(), z.numpy(), batch=3)
    reused = int_bits(shifted, y.numpy(), z.numpy(), batch=3, encodes=encodes)
    assert reused[0] == direct[0] and np.array_equal(reused[1], direct[1]) and reused[2] == direct[2]
    assert not np.array_equal(reused[1], plain[1])


def test_calibrated_offsets_never_cost_bits_on_the_calibration_latents(setup):
    model, ent, y, z = setup
    import export
    fresh = replace(ent)
    crops = {"calibration": export.Crops.analysed(model, y, z), "heldout": export.Crops.analysed(model, y[:0], z[:0])}
    summary = export.calibrate_coding_offsets(fresh, crops, {"calibration": int_bits(fresh, y.numpy(), z.numpy())[3]})
    assert set(summary["rates"]) == {"calibration"}   # no held-out crops, no held-out rates
    assert list(fresh.coding_offset) == summary["offsets"] and len(summary["offsets"]) == ent.C
    _, before, _, _ = int_bits(replace(ent, coding_offset=None), y.numpy(), z.numpy())
    _, after, _, _ = int_bits(fresh, y.numpy(), z.numpy())
    assert after.sum() <= before.sum() + 1e-6
    assert summary["rates"]["calibration"]["int_bpp"] == pytest.approx(
        (int_bits(fresh, y.numpy(), z.numpy())[0] + after.sum()) / (y.shape[0] * 128 * 128))


def test_offset_rates_of_every_crop_set_are_those_of_a_fresh_encode(setup):
    model, ent, y, z = setup
    import export
    fresh = replace(ent)
    crops = {"calibration": export.Crops.analysed(model, y, z), "heldout": export.Crops.analysed(model, y[:2], z[:2])}
    before = {k: int_bits(fresh, c.y.numpy(), c.z.numpy())[3] for k, c in crops.items()}
    summary = export.calibrate_coding_offsets(fresh, crops, before)
    assert any(summary["offsets"])   # the repricing has something to do
    for name, c in crops.items():
        assert summary["rates"][name] == export.rate_summary(fresh, c)[0]


def test_model_file_version_2_carries_the_offsets_and_version_1_reads_as_zeros(setup, tmp_path):
    from safetensors.numpy import load_file, save_file
    model, ent, y, z = setup
    offsets = (np.arange(ent.C) % 3) - 1
    path = tmp_path / "m.safetensors"
    meta = write_model(path, model, replace(ent, coding_offset=offsets), fp16=False, training={"steps": 0})
    assert meta["format_version"] == 2
    mf = ModelFile(path)
    assert np.array_equal(mf.entropy.coding_offset, offsets)
    assert np.array_equal(mf.entropy.encode(y.numpy(), z.numpy())["k_code"],
                          replace(ent, coding_offset=offsets).encode(y.numpy(), z.numpy())["k_code"])

    def rewrite(name, tensors, **changes):
        from psic_train.modelfile import fingerprint
        out = tmp_path / name
        m = dict(mf.meta, **changes, fingerprint=fingerprint(tensors))
        save_file(tensors, str(out), metadata={"psic": json.dumps(m)})
        return out

    tensors = load_file(str(path))
    del tensors["gaussian_coding_offset"]
    v1 = ModelFile(rewrite("v1.safetensors", tensors, format_version=1))
    assert np.array_equal(v1.entropy.coding_offset, np.zeros(ent.C))
    with pytest.raises(ValueError, match="needs gaussian_coding_offset"):
        ModelFile(rewrite("v2-missing.safetensors", tensors))
    for far in (ent.scale_grid.count, np.iinfo(np.int32).min):
        tensors["gaussian_coding_offset"] = np.full(ent.C, far, np.int32)
        with pytest.raises(ValueError, match="reaches past"):
            ModelFile(rewrite("v2-far.safetensors", tensors))
    with pytest.raises(ValueError, match="format version 3"):
        ModelFile(rewrite("v3.safetensors", load_file(str(path)), format_version=3))


def test_bucketed_costs_split_the_channel_costs_by_scale_index():
    tables = gaussian_tables(im.ScaleGrid(64))
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=tables)
    rng = np.random.default_rng(2)
    k = rng.integers(0, 64, (3, 4, 6, 6))
    # channel 0: narrow-index symbols drawn 1.5x wider than their table, wide-index ones 0.7x
    enc = synthetic_encode(tables, k, 1.0, rng)
    sigma = im.ScaleGrid(64).sigmas()[k]
    spread = np.where(k < 32, 1.5, 0.7)
    enc["q"][:, 0] = np.round(rng.normal(0, 1, k[:, 0].shape) * sigma[:, 0] * spread[:, 0])
    per_channel = codingoffset.offset_costs(ent, [enc])
    halves = codingoffset.offset_costs(ent, [enc], buckets=2)
    assert halves.shape == (4, 2, len(codingoffset.SEARCH))
    np.testing.assert_allclose(halves.sum(axis=1), per_channel)
    best = codingoffset.best_offsets(halves)
    assert best[0, 0] > 0 > best[0, 1]            # wider where drawn wider, narrower where narrower
    # a finer grain never prices the data it was fitted on higher
    fine = codingoffset.priced(halves, best).sum(axis=1)
    coarse = codingoffset.priced(per_channel, codingoffset.best_offsets(per_channel))
    assert np.all(fine <= coarse + 1e-9)
    # a bucket with no symbols costs nothing and keeps offset 0
    empty = codingoffset.offset_costs(ent, [{"k": np.full_like(k, 5), "q": enc["q"]}], buckets=4)
    assert not empty[:, 1:].any() and not codingoffset.best_offsets(empty)[:, 1:].any()


def test_the_shape_bound_is_what_the_symbols_own_histograms_save():
    tables = gaussian_tables(im.ScaleGrid(64))
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=tables)
    rng = np.random.default_rng(3)
    k = np.full((8, 4, 32, 32), 30)
    matched = synthetic_encode(tables, k, 1.0, rng)
    table, ideal = tableshape.table_shape_bound(ent, [matched])
    assert table.shape == ideal.shape == (2,)
    assert np.all(ideal <= table)                  # Gibbs: no table beats the data's own histogram
    assert np.all(1 - ideal / table < 0.01)        # the tables are that histogram's shape, give or take
    wide = synthetic_encode(tables, k, 2.0, rng)
    table_w, ideal_w = tableshape.table_shape_bound(ent, [wide])
    assert np.all(1 - ideal_w / table_w > 0.05)    # a table half as wide as the data is far off
    # the bits are the tables' own
    assert table_w.sum() == pytest.approx(tables.bits(k, wide["q"])[0], rel=1e-9)


def test_tables_refitted_on_other_symbols_of_the_same_shape_save_what_the_shape_costs():
    tables = gaussian_tables(im.ScaleGrid(64))
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=tables)
    rng = np.random.default_rng(4)
    k = np.full((8, 4, 32, 32), 30)
    fit, test = (synthetic_encode(tables, k, 2.0, rng) for _ in range(2))
    table, refit = tableshape.refitted_table_bits(ent, [fit], [test])
    assert table.sum() == pytest.approx(tables.bits(k, test["q"])[0], rel=1e-9)
    assert np.all(refit < 0.95 * table)            # the wide data's own shape, learnt elsewhere
    # with nothing to fit, the refitted tables are the Gaussian ones (up to their escape columns)
    empty = {"k": k[:0], "q": test["q"][:0]}
    _, prior_only = tableshape.refitted_table_bits(ent, [empty], [test])
    np.testing.assert_allclose(prior_only, table, rtol=0.002)


def test_z_tables_refitted_on_their_own_distribution_save_and_with_nothing_to_fit_stay():
    tables = gaussian_tables(im.ScaleGrid(64))
    # z tables standing in: four channels, each a Gaussian table about five times wider than the data
    rows = [40] * 4
    z = im.CDFTables(cdf=tables.cdf[rows], length=tables.length[rows], offset=tables.offset[rows])
    ent = im.IntEntropyModel(C=4, L=2, hyper=1, h_s=[], ep=[], gaussian=tables, z=z)
    rng = np.random.default_rng(5)
    fit, test = (np.round(rng.normal(0, 3, (4, 4, 16, 16))).astype(np.int64) for _ in range(2))
    table, refit = tableshape.refitted_z_bits(ent, [fit], [test])
    assert table == pytest.approx(z.bits(np.broadcast_to(np.arange(4).reshape(1, -1, 1, 1), test.shape), test)[0], rel=1e-9)
    assert refit < 0.9 * table
    _, prior_only = tableshape.refitted_z_bits(ent, [], [test])
    assert prior_only == pytest.approx(table, rel=0.002)     # the file's tables, up to their escape columns
