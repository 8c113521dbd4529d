"""Seconds per training step of the Pyro and NumPyro backends on the same config, over a whole run, and
their ratio with its uncertainty.

    python benchmarks/pyro_step.py                                   # MNIST standard VAE, 600 steps
    python benchmarks/pyro_step.py --steps 3000 --config examples/mnist/infovae_mmd.yaml
    python benchmarks/pyro_step.py --profile                         # where a Pyro step's time goes
    python benchmarks/pyro_step.py --cases pyro pyro-eager torch numpyro   # also unrecorded, and by hand
    python benchmarks/pyro_step.py --cases pyro pyro:GOMP_SPINCOUNT=1000 numpyro   # a case's environment
    python benchmarks/pyro_step.py --steps 3000 --device cuda        # on a GPU (JAX picks its own device)

Each case runs in a fresh process of its own (so that neither one's threads nor its memory slow the
other), through the backend's own ``train_steps`` as the training loop calls it, on the minibatches the
loop would draw. A case's first chunk (the NumPyro backend compiles there, the Pyro backend records its
objective's terms) is timed apart. The processes then take their steps **in turns**, one block of
``--block`` steps each per turn, the order reversed every other turn, each waiting (asleep) while the
others step: the machine's speed, which drifts on a shared host by a third within minutes, is then the
same for the blocks of one turn, and the ratio of two cases is read from blocks taken side by side.

The report gives each case's mean milliseconds per step over the run (what a user waits for) and its
median block, then each case's ratio to the NumPyro step: the ratio of the two means over all turns,
with a 95% interval from resampling the turns (a bootstrap of 2000 draws: the ratio's noise between
turns, not a systematic difference between the processes), and the median of the turns' own ratios.
``--rounds`` repeats the whole measurement in fresh processes. ``pyro-eager`` is the Pyro backend with
its objective's terms computed in Python at every step (``TracedTerms.eager``) instead of replayed from
their recording: the same numbers, the step before the recording. ``CASE:NAME=VALUE`` runs a case with
an environment variable set (``:`` between several), ``pyro:GOMP_SPINCOUNT=1000`` say; the reference of
the ratios is the case ``numpyro``, as it is named. ``torch`` is the MNIST standard VAE's step written
by hand in plain PyTorch (``benchmarks/torch_floor.py``, whatever ``--config`` says): the floor under
the Pyro step; ``torch-compiled`` the same with ``torch.compile`` of its loss (compiled in its first
chunk).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import child  # beside this script, so on its path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "examples" / "mnist" / "standard_vae.yaml"
BACKENDS = ("pyro", "pyro-eager", "numpyro", "torch", "torch-compiled")


def _measure(config_path, backend, block, profile, device):
    """Runs in the child process: takes the first chunk (and with ``profile`` one block more, under
    cProfile, untimed), prints a JSON line, then takes one block of steps for each line read from stdin and
    prints its seconds per step and when it started and ended (``time.monotonic``, one clock for all the
    processes), until stdin closes."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout goes to stderr, out of the replies' way
    if backend.startswith("torch"):
        take, chunk = _floor_stepper(compiled=backend == "torch-compiled"), 1
    else:
        take, chunk = _backend_stepper(config_path, backend, device)
        chunk = min(chunk, block)

    start = time.perf_counter()
    take(chunk, chunk)
    first = time.perf_counter() - start
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(take, block, chunk)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    print(json.dumps({"first_chunk": first, "chunk": chunk}), file=replies, flush=True)
    for line in sys.stdin:
        began, start = time.monotonic(), time.perf_counter()
        take(int(line), chunk)
        seconds = (time.perf_counter() - start) / int(line)
        print(json.dumps({"seconds": seconds, "span": [began, time.monotonic()]}), file=replies, flush=True)


def _backend_stepper(config_path, backend, device):
    from infovae.data.registry import load_splits
    from infovae.training.config import load_config
    from infovae.training.loop import build_backend

    overrides = {"backend": backend.removesuffix("-eager")}
    if backend != "numpyro":  # JAX picks its own device
        overrides["train.device"] = device
    config = load_config(config_path, overrides)
    splits = load_splits(config.data, config.likelihood)
    model = build_backend([config], splits)
    if backend == "pyro-eager":
        model.terms = model.terms.eager
    return child.stepper(model, splits.train, config), model.chunk_size


def _floor_stepper(compiled):
    import torch_floor  # beside this script; sets OMP_WAIT_POLICY as `import infovae` does

    step = torch_floor.make_step(compiled)

    def take(n, chunk):
        for _ in range(n):
            step()

    return take


class _Case:
    """One case's process: started, it has taken its first chunk; ``block(n)`` has it take ``n`` steps."""

    def __init__(self, label, config, block, profile, device):
        backend, *assignments = label.split(":")
        if backend not in BACKENDS:
            raise SystemExit(f"case {label!r}: the backend must be one of {', '.join(BACKENDS)}")
        if not all("=" in a[1:] for a in assignments):
            raise SystemExit(f"case {label!r}: an environment variable is set as :NAME=VALUE")
        env = dict(os.environ, **dict(a.split("=", 1) for a in assignments))
        command = [sys.executable, __file__, "--child", backend, "--config", str(config), "--block", str(block)]
        command += ["--device", device] + (["--profile"] if profile else [])
        self.label, self.errors = label, tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True, cwd=ROOT, env=env
        )
        self.first = self._reply()

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:  # the process ended: its last words are on its stderr
            self.errors.seek(0)
            lines = self.errors.read().strip().splitlines()
            raise SystemExit(f"{self.label}: {lines[-1] if lines else self.process.wait()}")
        return json.loads(line)

    def block(self, steps):
        try:
            self.process.stdin.write(f"{steps}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it ended while it waited: _reply says why
        return self._reply()

    def close(self, show_errors):
        try:
            self.process.stdin.close()
        except BrokenPipeError:  # the unsent request of a process that had ended
            pass
        self.process.wait()
        if show_errors:
            self.errors.seek(0)
            print(self.errors.read(), file=sys.stderr)
        self.errors.close()


def measure(config, cases, steps, block, profile=False, device="cpu"):
    """Each case's first chunk (seconds) and seconds per step of each block, ``steps`` steps in all per
    case, the blocks taken in turns: ``{case: {"first_chunk": s, "steps": n, "blocks": [s, ...], "spans":
    [[start, end], ...]}}`` (``time.monotonic`` at each block's start and end)."""
    if len(set(cases)) < len(cases):
        raise SystemExit(f"a case is named twice in {' '.join(cases)}")
    started = []
    try:
        for label in cases:  # one after the other: each compiles or records alone
            started.append(_Case(label, config, block, profile, device))
        turns = max(1, (steps - max(case.first["chunk"] for case in started)) // block)
        replies = {case.label: [] for case in started}
        for turn in range(turns):
            for case in started if turn % 2 == 0 else started[::-1]:
                replies[case.label].append(case.block(block))
    finally:
        for case in started:
            case.close(show_errors=profile)
    return {
        case.label: {
            "first_chunk": case.first["first_chunk"],
            "steps": case.first["chunk"] + block * turns,
            "blocks": [r["seconds"] for r in replies[case.label]],
            "spans": [r["span"] for r in replies[case.label]],
        }
        for case in started
    }


def paired_ratio(numerator, denominator, draws=2000, seed=0):
    """The ratio of two cases' mean step times over blocks taken in the same turns, a 95% interval from
    resampling the turns, and the median of the turns' own ratios."""
    import numpy as np

    a, b = np.asarray(numerator), np.asarray(denominator)
    resampled = np.random.default_rng(seed).integers(0, len(a), (draws, len(a)))
    low, high = np.quantile(a[resampled].sum(1) / b[resampled].sum(1), [0.025, 0.975])
    return {"ratio": float(a.sum() / b.sum()), "low": float(low), "high": float(high), "median_turn": float(np.median(a / b))}


def _row(index, label, r):
    mean, median = statistics.fmean(r["blocks"]), statistics.median(r["blocks"])
    return f"| {index + 1} | {label} | {r['first_chunk']:.2f} | {1000 * mean:.2f} | {1000 * median:.2f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--steps", type=int, default=600, help="steps per run (the issue's target: 3000)")
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=1, help="repetitions in fresh processes")
    parser.add_argument(
        "--cases", nargs="+", default=["pyro", "numpyro"], help=f"{', '.join(BACKENDS)}, each optionally :NAME=VALUE"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one block of each case")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the Pyro backend's torch device")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _measure(args.config, args.child, args.block, args.profile, args.device)
    rounds = [measure(args.config, args.cases, args.steps, args.block, args.profile, args.device) for _ in range(args.rounds)]
    where = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    timed = len(rounds[0][args.cases[0]]["blocks"]) * args.block
    print(f"config: {where}; {timed} steps timed after each case's first chunk", end=", ")
    print(f"in blocks of {args.block} taken in turns; Pyro on {args.device}")
    print("| round | case | first chunk (s) | mean ms/step | median block ms/step |")
    print("|---|---|---|---|---|")
    for i, result in enumerate(rounds):
        for label, r in result.items():
            print(_row(i, label, r))
    ratios = []
    if "numpyro" in args.cases:
        print("\n| round | case | / numpyro (mean step) | 95% interval | median of the turns' ratios |")
        print("|---|---|---|---|---|")
        for i, result in enumerate(rounds):
            for label, r in result.items():
                if label != "numpyro":
                    ratio = paired_ratio(r["blocks"], result["numpyro"]["blocks"])
                    ratios.append({"round": i + 1, "case": label, **ratio})
                    interval = f"{ratio['low']:.2f} – {ratio['high']:.2f}"
                    print(f"| {i + 1} | {label} | {ratio['ratio']:.2f} | {interval} | {ratio['median_turn']:.2f} |")
    if args.json:
        figures = {"config": str(args.config), "block": args.block, "device": args.device, "rounds": rounds, "ratios": ratios}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
