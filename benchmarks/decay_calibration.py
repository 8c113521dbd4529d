"""Calibration and power of ``infovae.diagnostics.decay_test``, measured on simulated curves.

Flat curves (no decay) with stationary AR(1) noise of coefficient -0.3 to 0.8 and 6 to 200 evaluations in
the late half: how often the test calls them decayed (one-sided, nominal 5%) and how often the 95% interval
covers the true decay, 0. Then the power against a fall of 2.5 and 3 noise standard deviations over the
late half. The numbers quoted in ``infovae/diagnostics/decay.py`` and the README come from
``python benchmarks/decay_calibration.py --curves 6000 --seed 1`` (about five minutes on one core; the
Monte-Carlo standard error of a rate near 5% is then 0.3 points, of a coverage near 95% 0.3 points); the
default, 2000 curves a cell, takes about two minutes (standard errors 0.5 points).

    python benchmarks/decay_calibration.py [--curves 2000] [--seed 0]
"""

import argparse
import time

import numpy as np

from infovae.diagnostics import decay_test

LATE_EVALUATIONS = (6, 7, 8, 10, 15, 30, 60, 120, 200)
COEFFICIENTS = (-0.3, 0.0, 0.2, 0.5, 0.8)
POWER = ((2.5, 0.0), (3.0, 0.0), (3.0, 0.5))


def ar1(rng, curves, length, phi):
    """``[curves, length]`` stationary AR(1) noise of unit variance."""
    eps = rng.standard_normal((curves, length))
    out = np.empty_like(eps)
    out[:, 0] = eps[:, 0]
    for t in range(1, length):
        out[:, t] = phi * out[:, t - 1] + np.sqrt(1 - phi**2) * eps[:, t]
    return out


def late_fall(length, size):
    """Flat, then a linear fall by ``size`` over the late half of the evaluations."""
    t = np.arange(length, dtype=float)
    middle = (length - 1) / 2
    return -size * np.clip((t - middle) / middle, 0.0, None)


def measure(curves, fall):
    results = [decay_test(curve) for curve in curves]
    rejected = np.mean([r["p_value"] < 0.05 for r in results])
    covered = np.mean([r["low"] <= fall <= r["high"] for r in results])
    return float(rejected), float(covered), results[0]["n"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=2000, help="simulated curves per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.time()
    print(f"flat curves, {args.curves} per cell: rate called decayed (nominal 0.05) / 95% interval coverage of 0")
    print("late n | " + " | ".join(f"phi = {phi:4.1f}  " for phi in COEFFICIENTS))
    worst_rate, worst_coverage = 0.0, 1.0
    for n in LATE_EVALUATIONS:
        length = 2 * n - 1  # evaluations at steps 0..2n-2: the late half holds the last n
        cells = []
        for phi in COEFFICIENTS:
            rate, coverage, late = measure(0.5 + 0.02 * ar1(rng, args.curves, length, phi), 0.0)
            assert late == n, (late, n)
            if phi >= 0:
                worst_rate, worst_coverage = max(worst_rate, rate), min(worst_coverage, coverage)
            cells.append(f"{rate:.3f} / {coverage:.3f}")
        print(f"{n:6d} | " + " | ".join(cells), flush=True)
    print(f"worst over AR(1) 0-0.8: rate {worst_rate:.3f}, coverage {worst_coverage:.3f}")
    print("\npower: rate called decayed when the late half falls by `fall` noise sd")
    print("late n | " + " | ".join(f"fall {fall} sd, phi {phi}" for fall, phi in POWER))
    for n in LATE_EVALUATIONS:
        length = 2 * n - 1
        cells = []
        for fall, phi in POWER:
            sd = 0.02
            rate, _, _ = measure(0.5 + late_fall(length, fall * sd) + sd * ar1(rng, args.curves // 2, length, phi), fall * sd)
            cells.append(f"{rate:.3f}")
        print(f"{n:6d} | " + " | ".join(f"{c:>20}" for c in cells), flush=True)
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
