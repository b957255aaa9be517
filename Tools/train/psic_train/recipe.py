"""The training recipe: the options that define what a run trains on and towards (batch shape,
detail draws M, the objective's weights). A run continued from a checkpoint (train.py --resume,
--init CHECKPOINT.pt) or from a model file (--init MODEL.safetensors, whose training metadata
holds the recipe since session 21) keeps its recipe unless an option is given: a resume must
never silently change what is trained."""
from __future__ import annotations

from .objective import ObjectiveConfig
from .trainable import PARTS

# 2 crops of 256² rather than 8 of 128² (the same pixels per step): on 128² crops z is 2×2 and the
# hyperprior learns mostly from padding; the A/B of session 20 (Tools/train/RESULTS.md) gave -2.5 %
# PSNR BD-rate on the whole held-out photos within 1600 steps. 256 is also the largest crop that
# every photo of ../shared/data/train (sides 256-640 px) can give.
DEFAULT_BATCH, DEFAULT_CROP, DEFAULT_SAMPLES = 2, 256, 2


def recipe_defaults() -> dict:
    """Each recipe option with its default."""
    return {"batch": DEFAULT_BATCH, "crop": DEFAULT_CROP, "samples": DEFAULT_SAMPLES, **vars(ObjectiveConfig())}


def scope_defaults() -> dict:
    """What a run trains, evaluates and keeps, each option with its default: the part (train.py
    --trainable, psic_train/trainable.py), the learning rate (--lr), the entropy model's
    learning-rate scale (--entropy-lr-scale), the decay of the weights' moving average (--ema), the
    weights every evaluation and export reads, the steps between evaluations (--eval-every) and how
    many evaluated checkpoints it keeps (--keep-evaluated). Before session 47 a resume took --lr
    and --eval-every at their defaults unless given (1e-4 and 1000), whatever the run had used.
    Not part of the recipe a model file records (the exported function does not depend on them),
    but carried over on --resume and --init CHECKPOINT.pt like it: checkpoints from before session
    34 hold no part or scale and trained everything at one rate, which those defaults are; every
    checkpoint holds its decay, and those from before session 43 no count, which kept none; the
    perceptual term and the adversarial settings (LOSS_TERM_SCOPE) likewise."""
    return {"trainable": "all", "lr": 1e-4, "entropy_lr_scale": 1.0, "ema": 0.999, "eval_every": 1000,
            "keep_evaluated": 0, **LOSS_TERM_SCOPE}


# The perceptual term's kind and the adversarial stage's settings: carried over on --resume and --init
# CHECKPOINT.pt like the rest of the scope (before session 49 a resume without them went back to
# MS-SSIM and dropped the adversarial term, carrying the discriminator along untrained), but not
# recorded in a model file: LPIPS needs weights files and the discriminator is not exported.
LOSS_TERM_SCOPE = {"perceptual": "msssim", "adversarial_weight": 0.0, "adversarial_start": 0, "disc_lr": 1e-4}


def fill_recipe(args, stored: dict | None) -> dict[str, str]:
    """Fills each recipe option not given on the command line from `stored` (the recipe a
    checkpoint or model file was trained with; values may be strings) or else its default, so that
    a resume never silently changes the recipe. Returns where each value came from: "given",
    "the checkpoint's" or "default"."""
    return fill_options(args, stored, recipe_defaults())


class UnknownPart(ValueError):
    """A checkpoint names a trainable part this train.py does not know (a newer tool wrote it)."""

    def __init__(self, part: str):
        super().__init__(f"the checkpoint trained {part!r}, which this train.py does not know; "
                         f"give --trainable ({', '.join(PARTS)})")
        self.part = part


def fill_scope(args, stored: dict | None) -> tuple[dict[str, str], str]:
    """`fill_options` over `scope_defaults()`, then the part the checkpoint's Adam state was saved
    over: its own part, or the default for checkpoints from before parts existed. Raises
    `UnknownPart` when the part the run would train came from the checkpoint and is not one of
    psic_train.trainable.PARTS (argparse's choices already check a given one)."""
    sources = fill_options(args, stored, scope_defaults())
    if args.trainable not in PARTS:
        raise UnknownPart(args.trainable)
    stored_part = (stored or {}).get("trainable")
    return sources, stored_part if stored_part in PARTS else scope_defaults()["trainable"]


def fill_options(args, stored: dict | None, defaults: dict) -> dict[str, str]:
    """`fill_recipe` over any options: each of `defaults` not given (None in `args`) is taken from
    `stored`, converted to its default's type, or else is the default. Returns each one's source."""
    stored = stored or {}
    sources = {}
    for name, default in defaults.items():
        if getattr(args, name) is not None:
            sources[name] = "given"
        elif stored.get(name) not in (None, "None"):
            setattr(args, name, type(default)(stored[name]))
            sources[name] = "the checkpoint's"
        else:
            setattr(args, name, default)
            sources[name] = "default"
    return sources

