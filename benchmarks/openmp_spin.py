"""The Pyro step under libgomp's spin counts, on a quiet machine and beside busy processes.

    python benchmarks/openmp_spin.py                         # spin counts 0, 1000, 10000; 3 rounds
    python benchmarks/openmp_spin.py --counts 0 1000 --rounds 4 --steps 600

torch's OpenMP threads wait for work between parallel operations; ``import infovae`` makes them sleep
at once (``OMP_WAIT_POLICY=PASSIVE``, spin count 0), and ``GOMP_SPINCOUNT=N`` lets them spin about N
iterations first (libgomp counts about 100,000 a millisecond). Each spin count is a case of
``benchmarks/pyro_step.py``'s Pyro backend (MNIST standard VAE) in a process of its own, the cases taking
their blocks of steps in turns (so that a drift of the machine's speed is shared by all of them), once
with nothing else running ("quiet") and once beside one busy-looping process per core ("loaded"), in
fresh processes each round. The table gives each case's mean milliseconds per step in each round and
their median.
"""

import argparse
import os
import statistics
import subprocess
import sys

from pyro_step import DEFAULT_CONFIG, measure  # beside this script, so on its path


def _mean_step_ms(counts, steps, loaded):
    """Each spin count's mean milliseconds per step, the counts' processes taking turns."""
    os.environ.pop("OMP_WAIT_POLICY", None)  # as a user who set nothing: infovae sets PASSIVE
    os.environ.pop("GOMP_SPINCOUNT", None)
    cases = {count: f"pyro:GOMP_SPINCOUNT={count}" if count else "pyro" for count in counts}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)] if loaded else []
    try:
        result = measure(DEFAULT_CONFIG, list(cases.values()), steps, block=100)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    return {count: 1000 * statistics.fmean(result[label]["blocks"]) for count, label in cases.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts", type=int, nargs="+", default=[0, 1000, 10000], help="GOMP_SPINCOUNT values (0: sleep at once)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600, help="steps per case")
    args = parser.parse_args()
    results = {(count, loaded): [] for count in args.counts for loaded in (False, True)}
    for _ in range(args.rounds):
        for loaded in (False, True):
            for count, ms in _mean_step_ms(args.counts, args.steps, loaded).items():
                results[count, loaded].append(ms)
    print(f"mean ms per Pyro step, {args.steps} steps, {args.rounds} rounds; loaded: beside {os.cpu_count()} busy processes")
    print("| spin count | quiet, per round | quiet, median | loaded, per round | loaded, median |")
    print("|---|---|---|---|---|")
    for count in args.counts:
        quiet, loaded = results[count, False], results[count, True]
        cells = [", ".join(f"{x:.1f}" for x in quiet), f"{statistics.median(quiet):.1f}"]
        cells += [", ".join(f"{x:.1f}" for x in loaded), f"{statistics.median(loaded):.1f}"]
        print(f"| {count or '0 (the default)'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
