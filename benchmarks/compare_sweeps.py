"""Two runs of the same sweep, trial by trial: how far apart their test numbers are, and their wall times.

    infovae sweep examples/regime_study/discrete.yaml train.steps=3000 train.eval_every=250 \
        --executor vectorized --out runs/compare/vectorized
    infovae sweep examples/regime_study/discrete.yaml train.steps=3000 train.eval_every=250 \
        --executor local --workers 2 --out runs/compare/local
    python benchmarks/compare_sweeps.py runs/compare/vectorized runs/compare/local

For each summary quantity it prints the largest and the median absolute difference over the trials both
sweeps finished; per setting, the largest difference of the means over seeds and in how many settings it
exceeds the seeds' standard deviation (what reproducing the sweep's table means); and each sweep's wall
time (first trial's start to last trial's end, from the files it wrote). Writes nothing.
"""

import argparse
from pathlib import Path

import numpy as np

import infovae

QUANTITIES = (
    "test_loss",
    "test_recon",
    "test_kl",
    "mi",
    "marginal_kl",
    "nll",
    "probe_accuracy",
    "nmi",
    "coverage_tv",
    "latent_perplexity",
)


def compare(first, second):
    """``{quantity: (max abs difference, median abs difference, trials)}`` over the trials both finished."""
    a, b = (infovae.open_sweep(d).results for d in (first, second))
    a, b = (r[r["status"] == "ok"].set_index("trial") for r in (a, b))
    common = a.index.intersection(b.index)
    out = {}
    for quantity in QUANTITIES:
        if quantity in a and quantity in b:
            diff = (a.loc[common, quantity].astype(float) - b.loc[common, quantity].astype(float)).abs().dropna()
            if len(diff):
                out[quantity] = (float(diff.max()), float(np.median(diff)), len(diff))
    return out


def compare_tables(first, second):
    """``{quantity: (largest difference of means, settings where it exceeds the larger sd, settings)}``."""
    a, b = (infovae.open_sweep(d).by_setting for d in (first, second))
    out = {}
    for quantity in QUANTITIES:
        mean, sd = f"{quantity}_mean", f"{quantity}_std"
        if mean in a and mean in b:
            diff = (a[mean].astype(float) - b[mean].astype(float)).abs()
            spread = np.maximum(a[sd].astype(float), b[sd].astype(float))
            out[quantity] = (float(diff.max()), int((diff > spread).sum()), len(diff))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    print("| quantity | largest difference | median difference | trials |\n|---|---|---|---|")
    for quantity, (largest, median, n) in compare(args.first, args.second).items():
        print(f"| {quantity} | {largest:.2g} | {median:.2g} | {n} |")
    print("\n| quantity | largest difference of means | settings beyond the seeds' sd |\n|---|---|---|")
    for quantity, (largest, beyond, n) in compare_tables(args.first, args.second).items():
        print(f"| {quantity} | {largest:.2g} | {beyond} of {n} |")
    for folder in (args.first, args.second):
        print(f"\n{folder}: {infovae.open_sweep(folder).wall_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
