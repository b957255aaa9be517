"""Weight soups: one model whose weights are a weighted mean of two checkpoints of one lineage.

Two runs started from the same model and trained a few thousand steps apart (say, at two perceptual
weights) stay in one basin, so the mean of their weights is a working model whose curve lies
between theirs; session 46 measured a soup on Kodak a little ahead of the straight line between its
two parents (Tools/train/RESULTS.md). Only the floating-point tensors are mixed: integer buffers
(counts, tables) are the first checkpoint's. A checkpoint's moving average is mixed with the
other's, and its raw weights with the other's raw weights, so `--raw` and the averaged weights both
stay meaningful.

The recipe a soup records is what `train.py --init SOUP.pt` would continue with: options the
parents share are kept, numeric options that differ take the same weighted mean as the weights
(the perceptual weight of a 0.3 soup of runs at 0.01 and 0.03 is 0.016), and anything else that
differs is the first checkpoint's, named in the returned notes.
"""
from __future__ import annotations

import torch

from .recipe import recipe_defaults


class SoupError(ValueError):
    """Two checkpoints that cannot be mixed, or a weight outside [0, 1]."""


def mix_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """(1 - weight) * a + weight * b for each floating-point tensor; the others are a's. Both must
    hold the same names with the same shapes."""
    if a.keys() != b.keys():
        only = sorted(set(a) ^ set(b))
        raise SoupError(f"the checkpoints hold different tensors ({', '.join(only[:4])}{' …' if len(only) > 4 else ''})")
    mixed = {}
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            raise SoupError(f"{name} is {tuple(x.shape)} in one checkpoint and {tuple(y.shape)} in the other")
        mixed[name] = torch.lerp(x, y.to(x.dtype), weight) if x.is_floating_point() else x.clone()
    return mixed


def mix_recipes(a: dict, b: dict, weight: float) -> tuple[dict, list[str]]:
    """The recipe options of two checkpoints' args, mixed as the module doc says, and a note for
    each option that differed."""
    mixed, notes = {}, []
    for name, default in recipe_defaults().items():
        va, vb = a.get(name), b.get(name)
        if va is None or vb is None or str(va) == str(vb):
            mixed[name] = va if va is not None else vb
            continue
        try:
            fa, fb = float(va), float(vb)
        except (TypeError, ValueError):
            mixed[name] = va
            notes.append(f"{name}: {va} and {vb} differ, the first checkpoint's kept")
            continue
        value = (1 - weight) * fa + weight * fb
        mixed[name] = int(round(value)) if isinstance(default, int) else value
        notes.append(f"{name}: {va} and {vb} mixed to {mixed[name]:g}")
    return mixed, notes


def soup(a: dict, b: dict, weight: float, names: tuple[str, str]) -> tuple[dict, list[str]]:
    """A train.py checkpoint mixing checkpoints `a` and `b` (dicts as torch.load gives them) with
    `weight` on b; `names` label the parents in the soup's record. Returns the checkpoint (no
    optimiser state: a run from it starts Adam fresh) and the recipe notes."""
    if not 0.0 <= weight <= 1.0:
        raise SoupError(f"the weight {weight:g} is outside [0, 1] (0 is the first checkpoint, 1 the second)")
    if a.get("config") != b.get("config"):
        raise SoupError(f"the checkpoints are different models ({a.get('config')} and {b.get('config')}); "
                        "a soup needs one architecture (psic_train/widen.py resizes one first)")
    if ("ema" in a) != ("ema" in b):
        raise SoupError("one checkpoint has a moving average of its weights and the other has not")
    recipe, notes = mix_recipes(a.get("args") or {}, b.get("args") or {}, weight)
    steps = (a.get("step", 0), b.get("step", 0))
    ckpt = {"config": a["config"], "model": mix_states(a["model"], b["model"], weight), "step": max(steps),
            "args": {**recipe, "souped_from": f"{names[0]} (step {steps[0]}) x {1 - weight:g} + "
                                              f"{names[1]} (step {steps[1]}) x {weight:g}"}}
    if "ema" in a:
        ckpt["ema"] = mix_states(a["ema"], b["ema"], weight)
    return ckpt, notes
