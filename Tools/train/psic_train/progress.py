"""Training progress display: one line rewritten in place on a terminal, plain lines otherwise.

On a TTY the line is redrawn after every step (at most 5 times a second) from the statistics of
the last `window` steps; messages (eval results, warnings) are printed above it. When the output
is a file or a pipe (a background run's stdout.log), a plain line is printed every `log_every`
steps instead, from the statistics of the steps since the previous one.
"""
from __future__ import annotations

import collections
import math
import shutil
import sys
import time


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s"


def summarize(window: list[dict], levels: int) -> dict:
    """Means over a list of per-step statistics (keys absent in some steps are averaged over the
    steps that have them)."""
    def mean(k):
        vals = [s[k] for s in window if k in s]
        return sum(vals) / len(vals) if vals else None
    n = max(1, len(window))
    out = {"loss": mean("loss"), "bpp": mean("bpp"), "psnr_full": psnr(mean("mse_full")),
           "psnr_sampled": psnr(mean("mse_sampled")) if mean("mse_sampled") is not None else None,
           "bpp_levels": [sum(s["bpp_levels"][i] for s in window) / n for i in range(levels)],
           "s_per_step": mean("seconds")}
    for k in ("grad_norm", "clipped", "adv_g", "d_loss", "d_real", "d_fake"):
        if (v := mean(k)) is not None:
            out[k] = v
    if "grad_norm" in out:
        # per level drawn (None where the window drew it never): says which levels the clip reweights
        by_level = [[s["grad_norm"] for s in window if s.get("level") == i + 1 and "grad_norm" in s] for i in range(levels)]
        out["grad_norm_levels"] = [sum(v) / len(v) if v else None for v in by_level]
    return out


class Progress:
    def __init__(self, levels: int, step: int, log_every: int, max_steps: int | None = None,
                 hours: float | None = None, stream=None, tty: bool | None = None, window: int | None = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.L = levels
        self.log_every = log_every
        self.max_steps = max_steps
        self.deadline = time.time() + hours * 3600 if hours is not None else None
        self.recent = collections.deque(maxlen=window or max(log_every, 10))
        self.start_step = step
        self.drawn = 0.0
        self.line_len = 0

    # -- numbers ---------------------------------------------------------------------------
    def eta(self, step: int, s_per_step: float | None) -> float | None:
        """Seconds until --steps or --hours stops the run, whichever comes first (None if neither)."""
        candidates = []
        if self.max_steps is not None and s_per_step:
            candidates.append(max(0, self.max_steps - step) * s_per_step)
        if self.deadline is not None:
            candidates.append(max(0.0, self.deadline - time.time()))
        return min(candidates) if candidates else None

    def text(self, step: int, summary: dict, compact: bool) -> str:
        sps = summary["s_per_step"]
        eta = self.eta(step, sps)
        total = f"/{self.max_steps}" if self.max_steps is not None else ""
        head = f"step {step:7d}{total}"
        if compact:
            parts = [head, f"{sps:.2f} s/step" if sps else "", f"ETA {fmt_duration(eta)}" if eta is not None else "",
                     f"loss {summary['loss']:.3f}", f"bpp {summary['bpp']:.3f}",
                     f"PSNR {summary['psnr_full']:.2f}/" + (f"{summary['psnr_sampled']:.2f}"
                                                           if summary["psnr_sampled"] is not None else "-") + " dB",
                     "L " + " ".join(f"{b:.3f}" for b in summary["bpp_levels"])]
        else:
            parts = [head, f"loss {summary['loss']:.3f}", f"bpp {summary['bpp']:.3f}",
                     f"PSNR full {summary['psnr_full']:.2f} dB, sampled {summary['psnr_sampled'] or 0:.2f} dB",
                     "levels " + " ".join(f"{b:.3f}" for b in summary["bpp_levels"]),
                     f"{sps:.2f} s/step" + (f", ETA {fmt_duration(eta)}" if eta is not None else "")]
        if "adv_g" in summary:
            parts.append(f"adv G {summary['adv_g']:.3f} D {summary.get('d_loss', float('nan')):.3f}")
        return " | ".join(p for p in parts if p)

    # -- output ----------------------------------------------------------------------------
    def update(self, step: int, stats: dict):
        """Called after every step with that step's statistics."""
        self.recent.append(stats)
        if self.tty and (time.time() - self.drawn > 0.2 or step == self.max_steps):
            self._draw(self.text(step, summarize(list(self.recent), self.L), compact=True))

    def log(self, step: int, summary: dict):
        """Called every log_every steps with the summary of the steps since the previous call."""
        if not self.tty:
            print(self.text(step, summary, compact=False), file=self.stream, flush=True)

    def message(self, msg: str):
        if self.tty and self.line_len:
            self.stream.write("\r" + " " * self.line_len + "\r")
            self.line_len = 0
            self.drawn = 0.0  # redraw the progress line at the next step
        print(msg, file=self.stream, flush=True)

    def close(self):
        if self.tty and self.line_len:
            self.stream.write("\n")
            self.stream.flush()
            self.line_len = 0

    def _draw(self, line: str):
        width = shutil.get_terminal_size((160, 24)).columns - 1
        line = line[:width]
        pad = max(0, self.line_len - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.line_len = len(line)
        self.drawn = time.time()
