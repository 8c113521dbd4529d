"""What an evaluation costs against the training between two evaluations, per backend.

    python benchmarks/evaluation.py                         # the default config, both backends
    python benchmarks/evaluation.py --config my.yaml --repeats 9
    python benchmarks/evaluation.py --backends pyro --profile   # where a Pyro evaluation's time goes

Each backend runs in a fresh process. It builds the config's backend as the training loop does, takes a
first chunk of steps (the NumPyro backend compiles there), then times ``train.eval_every`` steps on the
loop's minibatches; then it evaluates on the validation split as the loop does. The first evaluation
(which makes the held-out set, and for the NumPyro backend compiles or reads back its program) is timed
apart; of ``--repeats`` more, each with its own seed, the median is reported. The share is that median
over the time of the ``eval_every`` steps between two evaluations: what evaluating adds to training
(issue #25's target: about 10%). ``--rounds`` alternates the backends, for a machine whose speed drifts.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import child  # beside this script, so on its path


def _measure(config_path, backend, repeats, profile):
    """Runs in the child process: prints one JSON line of timings."""
    import numpy as np

    from infovae.data.registry import load_splits
    from infovae.training.config import load_config, parse_config
    from infovae.training.loop import build_backend

    config = load_config(config_path, {"backend": backend}) if config_path else parse_config({"backend": backend})
    splits = load_splits(config.data, config.likelihood)
    model = build_backend([config], splits)
    train = child.stepper(model, splits.train, config)

    def evaluate(seed):
        start = time.perf_counter()
        model.evaluate(splits.val, splits.train, splits.generator, np.array([seed]))
        return time.perf_counter() - start

    train(model.chunk_size)
    start = time.perf_counter()
    train(config.train.eval_every)
    training = time.perf_counter() - start
    first = evaluate(0)
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    evaluations = [evaluate(seed) for seed in range(1, repeats + 1)]
    if profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    print(json.dumps({"steps": config.train.eval_every, "training": training, "first": first, "evaluations": evaluations}))


def _run_child(config, backend, repeats, profile):
    return child.run_child(__file__, [backend, "--repeats", repeats, *(["--config", config] if config else [])], profile)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a run config (default: the default config)")
    parser.add_argument("--repeats", type=int, default=7, help="evaluations timed after the first")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the backends")
    parser.add_argument("--backends", nargs="+", default=["pyro", "numpyro"], choices=["pyro", "numpyro"])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the timed evaluations")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _measure(args.config, args.child, args.repeats, args.profile)
    rounds = [{b: _run_child(args.config, b, args.repeats, args.profile) for b in args.backends} for _ in range(args.rounds)]
    print(f"config: {args.config or 'the default config'}; median of {args.repeats} evaluations on the validation split")
    print("| round | backend | first evaluation (s) | evaluation (s) | steps between evaluations | their time (s) | share |")
    print("|---|---|---|---|---|---|---|")
    for i, result in enumerate(rounds):
        for backend, r in result.items():
            median = statistics.median(r["evaluations"])
            print(
                f"| {i + 1} | {backend} | {r['first']:.3f} | {median:.3f} | {r['steps']} | {r['training']:.2f} "
                f"| {median / r['training']:.1%} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"config": str(args.config), "repeats": args.repeats, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
