"""Seconds per training step of the Pyro and NumPyro backends on the same config, over a whole run.

    python benchmarks/pyro_step.py                                   # MNIST standard VAE, 600 steps
    python benchmarks/pyro_step.py --steps 3000 --config examples/mnist/infovae_mmd.yaml
    python benchmarks/pyro_step.py --profile                         # where a Pyro step's time goes
    python benchmarks/pyro_step.py --backends pyro pyro-eager numpyro   # also the Pyro step unrecorded
    python benchmarks/pyro_step.py --steps 3000 --device cuda        # on a GPU (JAX picks its own device)

Each backend runs in a fresh process (so that neither one's threads nor its memory slow the other),
through the backend's own ``train_steps`` as the training loop calls it, on the minibatches the loop
would draw. The NumPyro backend's first chunk, which compiles the program, is timed apart. Steps are
timed in blocks of ``--block`` steps; the report gives the mean over the run (what a user waits for)
and the median block (less sensitive to other jobs on a shared machine), and the ratio of the two
backends' means. The processes run one after the other, ``--rounds`` times alternating, and the ratio
of each round is reported: on a loaded machine compare those, not the absolute times. ``pyro-eager`` is
the Pyro backend with its objective's terms computed in Python at every step
(``TracedTerms.eager``) instead of replayed from their recording: the same numbers, the step before
the recording.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import child  # beside this script, so on its path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "examples" / "mnist" / "standard_vae.yaml"


def _measure(config_path, backend, steps, block, profile, device):
    """Runs in the child process: prints one JSON line of timings."""
    from infovae.data.registry import load_splits
    from infovae.training.config import load_config
    from infovae.training.loop import build_backend

    overrides = {"backend": backend.removesuffix("-eager"), "train.steps": steps}
    if backend != "numpyro":  # JAX picks its own device
        overrides["train.device"] = device
    config = load_config(config_path, overrides)
    splits = load_splits(config.data, config.likelihood)
    model = build_backend([config], splits)
    if backend == "pyro-eager":
        model.terms = model.terms.eager
    take = child.stepper(model, splits.train, config)
    chunk = min(model.chunk_size, block)

    start = time.perf_counter()
    take(chunk, chunk)  # the NumPyro backend compiles here; the Pyro backend records its objective's terms
    first = time.perf_counter() - start
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        take(block, chunk)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    blocks = []
    for _ in range(max(1, (steps - chunk) // block)):
        start = time.perf_counter()
        take(block, chunk)
        blocks.append((time.perf_counter() - start) / block)
    print(json.dumps({"backend": backend, "first_chunk": first, "steps": chunk + block * len(blocks), "blocks": blocks}))


def run_child(config, backend, steps, block, profile, env=None, device="cpu"):
    """One backend's timings, measured in a fresh process (``env``: its environment, default this
    one's)."""
    arguments = [backend, "--config", config, "--steps", steps, "--block", block, "--device", device]
    return child.run_child(__file__, arguments, profile, env)


def _row(index, backend, r):
    mean, median = statistics.fmean(r["blocks"]), statistics.median(r["blocks"])
    return f"| {index + 1} | {backend} | {r['first_chunk']:.2f} | {mean:.4f} | {median:.4f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--steps", type=int, default=600, help="steps per run (the issue's target: 3000)")
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the two backends")
    parser.add_argument("--backends", nargs="+", default=["pyro", "numpyro"], choices=["pyro", "pyro-eager", "numpyro"])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one block of each backend")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the Pyro backend's torch device")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _measure(args.config, args.child, args.steps, args.block, args.profile, args.device)
    rounds = []
    for i in range(args.rounds):
        rounds.append({})
        for backend in args.backends:
            r = rounds[-1][backend] = run_child(args.config, backend, args.steps, args.block, args.profile, device=args.device)
            print(_row(i, backend, r), file=sys.stderr)  # kept if a later run is cut off
    where = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    print(f"config: {where}, {args.steps} steps, Pyro on {args.device}")
    print("| round | backend | first chunk (s) | mean s/step | median block s/step |")
    print("|---|---|---|---|---|")
    for i, result in enumerate(rounds):
        for backend, r in result.items():
            print(_row(i, backend, r))
    for pyro in ("pyro", "pyro-eager"):
        if {pyro, "numpyro"} <= set(args.backends):
            ratios = [statistics.fmean(r[pyro]["blocks"]) / statistics.fmean(r["numpyro"]["blocks"]) for r in rounds]
            print(f"{pyro} / numpyro mean step, per round: " + ", ".join(f"{x:.2f}" for x in ratios))
    if args.json:
        figures = {"config": str(args.config), "steps": args.steps, "device": args.device, "rounds": rounds}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
