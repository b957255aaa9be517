"""Bjøntegaard delta rate (VCEG-M33): average rate difference of a test curve against an anchor at
equal quality, over the quality range both curves cover.

Two interpolations of log(rate) as a function of quality:
- "cubic": least-squares cubic polynomial through all points (the original method; with four
  points it is the exact interpolating cubic);
- "pchip": piecewise-cubic Hermite interpolation (monotone, as in later VCEG/JVET practice).
The integral of each over [max(min q), min(max q)] is divided by the range width; the BD-rate is
exp(mean test - mean anchor) - 1 in percent. Negative = the test needs fewer bits (better).
Works for metrics where lower is better too (e.g. Butteraugli): only the sign of the quality axis
changes, not the rate difference at equal quality.
"""
from __future__ import annotations

import math

import numpy as np


def _prepare(rate, quality):
    r = np.asarray(rate, np.float64)
    q = np.asarray(quality, np.float64)
    ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[ok], q[ok]
    order = np.argsort(q)
    return np.log(r[order]), q[order]


def _integral(logr, q, lo, hi, method):
    if method == "cubic":
        p = np.polyfit(q, logr, 3)
        P = np.polyint(p)
        return np.polyval(P, hi) - np.polyval(P, lo)
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator
        # PCHIP needs strictly increasing x; merge equal qualities by averaging their log-rates.
        uq, inv = np.unique(q, return_inverse=True)
        ur = np.bincount(inv, weights=logr) / np.bincount(inv)
        return float(PchipInterpolator(uq, ur).integrate(lo, hi))
    raise ValueError(method)


def bd_rate(rate_anchor, q_anchor, rate_test, q_test, method: str = "cubic") -> float:
    """BD-rate of test vs anchor in percent; NaN when the quality ranges do not overlap or a
    curve has fewer than 4 usable points."""
    la, qa = _prepare(rate_anchor, q_anchor)
    lt, qt = _prepare(rate_test, q_test)
    if len(qa) < 4 or len(qt) < 4:
        return float("nan")
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if not hi > lo:
        return float("nan")
    ia = _integral(la, qa, lo, hi, method) / (hi - lo)
    it = _integral(lt, qt, lo, hi, method) / (hi - lo)
    return (math.exp(it - ia) - 1.0) * 100.0


def overlap(q_anchor, q_test) -> tuple[float, float] | None:
    qa, qt = np.asarray(q_anchor, float), np.asarray(q_test, float)
    lo, hi = max(np.nanmin(qa), np.nanmin(qt)), min(np.nanmax(qa), np.nanmax(qt))
    return (lo, hi) if hi > lo else None


def curve_bd_rate(anchor_rows, test_rows, metric: str, method: str = "cubic") -> float:
    """`bd_rate` of two aggregated curves (rows with "bpp" and the metric); NaN when either curve
    lacks the metric at some point."""
    if not anchor_rows or not test_rows or any(metric not in r for r in (*anchor_rows, *test_rows)):
        return float("nan")
    return bd_rate([r["bpp"] for r in anchor_rows], [r[metric] for r in anchor_rows],
                   [r["bpp"] for r in test_rows], [r[metric] for r in test_rows], method)
