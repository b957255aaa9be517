"""Tests of ship.py on small synthetic exports: what it installs, and each check that stops it."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ship  # noqa: E402
from psic_train.modelfile import fingerprint  # noqa: E402

CURVE = [(0.02, 21.5), (0.07, 23.4), (0.15, 25.2), (0.29, 27.0), (0.45, 28.6), (0.57, 30.2), (0.69, 31.7),
         (0.82, 33.1)]
PNG = b"\x89PNG not really, but the bytes are what ship.py compares"


def kodak(rate_scale: float, seeds=(0, 1, 2), ms_ssim_shift: float = 0.0) -> dict:
    mean = []
    for i, (b, q) in enumerate(CURVE):
        m = 0.80 + 0.02 * i + ms_ssim_shift
        mean.append({"level": i + 1, "bpp": b * rate_scale, "psnr": q, "ms_ssim": m,
                     "psnr_seeds": [q + 0.01 * s for s in seeds],
                     "ms_ssim_seeds": [m + 0.001 * s for s in seeds]})
    return {"mean": mean, "sample_seeds": list(seeds), "sample_seed": seeds[0]}


def write_model(folder: Path, value: float, step: int, rate_scale: float = 1.0, golden_fp: str | None = None,
                ms_ssim_shift: float = 0.0):
    """A model file, its report and a golden folder, as export.py would leave them in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"g_a.0.weight": np.full((2, 3), value, np.float32), "ep.0.0.bias": np.arange(4, dtype=np.int32)}
    fp = fingerprint(tensors)
    model = folder / "psic-conv.safetensors"
    save_file(tensors, str(model), metadata={"psic": json.dumps({"fingerprint": fp})})
    report = {"fingerprint": fp, "step": step, "model_file": str(model), "checkpoint": "/tmp/exp/step.pt",
              "golden": ["image_8x8.png"], "kodak": kodak(rate_scale, ms_ssim_shift=ms_ssim_shift)}
    (folder / "psic-conv.report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    golden = folder / "golden"
    golden.mkdir(exist_ok=True)
    (golden / "image_8x8.png").write_bytes(PNG)
    save_file({"y": np.zeros(3, np.float32) + value}, str(golden / "image_8x8.safetensors"),
              metadata={"golden": json.dumps({"model_fingerprint": golden_fp or fp})})
    return model, fp


@pytest.fixture
def repo(tmp_path):
    """A repository with a shipped model (step 100) and its golden vectors."""
    root = tmp_path / "repo"
    model, fp = write_model(tmp_path / "old", 1.0, 100)
    (root / "Models").mkdir(parents=True)
    (root / "Tests" / "Golden").mkdir(parents=True)
    (root / "Models" / "psic-conv.safetensors").write_bytes(model.read_bytes())
    report = json.loads((tmp_path / "old" / "psic-conv.report.json").read_text())
    report["model_file"] = "Models/psic-conv.safetensors"
    (root / "Models" / "psic-conv.report.json").write_text(json.dumps(report))
    for f in (tmp_path / "old" / "golden").iterdir():
        (root / "Tests" / "Golden" / f.name).write_bytes(f.read_bytes())
    return root


def run(capsys, *argv):
    code = ship.main(list(map(str, argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ships_a_better_export(repo, tmp_path, capsys):
    model, fp = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    code, out, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 0, err
    assert (repo / "Models" / "psic-conv.safetensors").read_bytes() == model.read_bytes()
    report = json.loads((repo / "Models" / "psic-conv.report.json").read_text())
    assert report["fingerprint"] == fp and report["step"] == 200
    assert report["model_file"] == "Models/psic-conv.safetensors"
    assert report["checkpoint"] == "/tmp/exp/step.pt"          # what the exporter read, left as written
    vec = repo / "Tests" / "Golden" / "image_8x8.safetensors"
    assert vec.read_bytes() == (tmp_path / "exp" / "golden" / "image_8x8.safetensors").read_bytes()
    assert "seeds 0, 1, 2: PSNR BD-rate -2." in out            # 2 % fewer bits at equal quality
    assert "levels span 0.020–0.804 bpp: the issue's ≤ 0.1 to ≥ 0.8 bpp met" in out
    assert f"| 200 | `{fp}` | 0.020 / 21.50 | 0.441 / 28.60 | 0.804 / 33.10 | −2." in out
    assert not list(repo.rglob(".psic-conv*")), "no temporary file left behind"


def test_refuses_a_worse_export_unless_forced(repo, tmp_path, capsys):
    model, fp = write_model(tmp_path / "exp", 2.0, 200, rate_scale=1.01)
    before = snapshot(repo)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "worse than the limit" in err
    assert snapshot(repo) == before
    code, out, _ = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo, "--force")
    assert code == 0 and "because of --force" in out
    assert "levels span 0.020–0.828 bpp" in out and "bpp met" in out
    assert json.loads((repo / "Models" / "psic-conv.report.json").read_text())["fingerprint"] == fp


def test_refuses_an_export_that_pays_for_psnr_with_ms_ssim(repo, tmp_path, capsys):
    # 2 % fewer bits at the same PSNR, but MS-SSIM lower by 0.003 at every level
    model, fp = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98, ms_ssim_shift=-0.003)
    before = snapshot(repo)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "mean MS-SSIM BD-rate +" in err and "PSNR BD-rate" not in err
    # the range is met: the refusal does not suggest the range's fix
    assert "not shipped (--force to ship anyway)" in err and "--lambda-max" not in err
    assert snapshot(repo) == before
    code, out, _ = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo,
                       "--max-msssim-bd-rate", 100)
    assert code == 0, out
    assert json.loads((repo / "Models" / "psic-conv.report.json").read_text())["fingerprint"] == fp


def test_refuses_an_export_whose_levels_leave_the_issues_rate_range(repo, tmp_path, capsys):
    # 5 % fewer bits at equal quality everywhere, but the top level falls to 0.779 bpp
    model, fp = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.95)
    before = snapshot(repo)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "levels span 0.019–0.779 bpp" in err and "NOT met: not shipped" in err
    assert "--lambda-max" in err
    assert snapshot(repo) == before
    code, out, _ = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo, "--force")
    assert code == 0 and "NOT met: shipped because of --force" in out


def test_dry_run_writes_nothing(repo, tmp_path, capsys):
    model, _ = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    before = snapshot(repo)
    code, out, _ = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo, "--dry-run")
    assert code == 0 and "nothing written" in out
    assert snapshot(repo) == before


def test_refuses_a_model_whose_tensors_do_not_match_its_fingerprint(repo, tmp_path, capsys):
    model, fp = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    save_file({"g_a.0.weight": np.zeros((2, 3), np.float32)}, str(model),
              metadata={"psic": json.dumps({"fingerprint": fp})})
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "damaged or was edited" in err


def test_refuses_golden_vectors_of_another_model(repo, tmp_path, capsys):
    model, _ = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98, golden_fp="0123456789abcdef")
    before = snapshot(repo)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "made with model 0123456789abcdef" in err
    assert snapshot(repo) == before


def test_refuses_golden_vectors_of_other_test_images(repo, tmp_path, capsys):
    model, _ = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    (tmp_path / "exp" / "golden" / "image_8x8.png").write_bytes(PNG + b"!")
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 2 and "differs from" in err


def test_refuses_a_report_of_another_model_and_the_shipped_model_itself(repo, tmp_path, capsys):
    model, _ = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo,
                       "--report", repo / "Models" / "psic-conv.report.json")
    assert code == 2 and "not this file" in err
    code, _, err = run(capsys, repo / "Models" / "psic-conv.safetensors", "--golden", repo / "Tests" / "Golden",
                       "--repo", repo)
    assert code == 2 and "already the shipped model" in err


def test_a_copy_failing_part_way_changes_nothing(repo, tmp_path, capsys, monkeypatch):
    model, _ = write_model(tmp_path / "exp", 2.0, 200, rate_scale=0.98)
    before = snapshot(repo)
    real_stage, calls = ship.stage, []

    def stage_then_fail(src, dest, data=None):
        calls.append(dest.name)
        if dest.suffix == ".safetensors" and dest.parent.name == "Golden":   # the last file: disk full
            raise OSError(28, "No space left on device")
        return real_stage(src, dest, data)

    monkeypatch.setattr(ship, "stage", stage_then_fail)
    code, _, err = run(capsys, model, "--golden", tmp_path / "exp" / "golden", "--repo", repo)
    assert code == 1 and "No space left on device" in err and "nothing was changed" in err
    assert calls == ["psic-conv.safetensors", "psic-conv.report.json", "image_8x8.safetensors"]
    assert snapshot(repo) == before, "model, report and vectors all still the shipped ones, no staged file left"
