"""Sweep throughput and single-run overhead: the process executor against the vectorised one.

    python benchmarks/sweeps.py                          # 16 trials x 300 steps, both executors (CPU)
    python benchmarks/sweeps.py --trials 8 56 --steps 300
    python benchmarks/sweeps.py --trials 8 56 700 --steps 5000 --executors vectorized   # on a GPU
    python benchmarks/sweeps.py --smoke                  # tiny sizes, to prove it runs (CI)

Each sweep is the regime study's setting (``examples/regime_study/base_strategies.yaml``: the
``strategies`` data, a discrete latent of 8 values, hidden width 128, batch 256) over a grid of the
objective's weights and seeds, every trial with the NumPyro backend, run end to end by the command
line in a fresh process with an empty compiled-program cache (a fresh machine); ``--warm`` runs each
again with the cache the first run filled. It reports wall time and trial-steps per second.

Single-run overhead is ``infovae train --backend numpyro``'s wall time divided by the pure step time
(measured in-process after compilation) times the steps. Writes ``sweeps.json`` and ``sweeps.md``
and prints the JSON file's path last.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "examples" / "regime_study" / "base_strategies.yaml"
# The full regime grid (140 settings); a sweep of N trials takes the first N / seeds of them.
BETAS, GAMMAS, DELTAS = (2.0, 1.0, 0.5, 0.1, 0.0), (0.0, 0.1, 0.5, 1.0, 10.0, 100.0, 1000.0), (0.0, 0.01, 0.1, 1.0)


def _settings(n):
    """``(settings, seeds)`` for ``n`` trials: 2 seeds up to 56 trials, 5 above (the full grid's)."""
    seeds = 2 if n <= 56 else 5
    if n % seeds:
        raise SystemExit(f"--trials {n} must be a multiple of {seeds}")
    grid = [
        {"objective.beta": b, "objective.marginal_weight": g, "objective.jsd_weight": d}
        for b, g, d in itertools.product(BETAS, GAMMAS, DELTAS)
    ]
    return grid[: n // seeds], list(range(seeds))


def _sweep_file(folder, n, steps, smoke):
    base = yaml.safe_load(BASE.read_text())
    base["backend"] = "numpyro"
    base["train"].update(steps=steps, eval_every=max(1, steps // 3))
    if smoke:
        base["data"].update(num_examples=400, horizon=4)
        base["model"]["hidden"] = 16
        base["train"].update(batch_size=32, eval_examples=50)
    base["objective"]["marginal"] = "kl"
    settings, seeds = _settings(n)
    path = folder / f"sweep{n}.yaml"
    path.write_text(yaml.safe_dump({"base": base, "list": settings, "seeds": seeds}))
    return path


def _run(argv, env):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "infovae", *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def measure_sweep(n, steps, executor, workers, smoke, warm):
    with tempfile.TemporaryDirectory(prefix="infovae-bench-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "INFOVAE_JAX_CACHE": str(scratch / "cache")}
        sweep = _sweep_file(scratch, n, steps, smoke)
        argv = ["sweep", str(sweep), "--executor", executor, "--no-progress"]
        if executor == "local":
            argv += ["--workers", str(workers)]
        cold = _run(argv + ["--out", str(scratch / "cold")], env)
        out = {"trials": n, "steps": steps, "executor": executor, "cold_s": cold, "trial_steps_per_s": n * steps / cold}
        if warm:
            out["warm_s"] = _run(argv + ["--out", str(scratch / "warm")], env)
        return out


def measure_single_run(steps, smoke):
    """Wall time of one ``infovae train --backend numpyro`` against its pure step time."""
    import numpy as np

    from infovae.data.registry import load_splits
    from infovae.training.config import load_config
    from infovae.training.loop import MinibatchSampler, build_backend

    overrides = {"backend": "numpyro", "train.steps": steps, "train.eval_every": max(1, steps // 3)}
    if smoke:
        overrides.update(
            {"data.num_examples": 400, "data.horizon": 4, "model.hidden": 16, "train.batch_size": 32, "train.eval_examples": 50}
        )
    config = load_config(BASE, overrides)
    splits = load_splits(config.data, config.likelihood)
    backend = build_backend([config], splits)
    sampler = MinibatchSampler(len(splits.train), config.train.batch_size, 0)
    chunk = min(backend.chunk_size, steps)

    def run_chunk():
        backend.train_steps(np.stack([sampler.next() for _ in range(chunk)])[None], np.ones(1, bool))

    run_chunk()  # compile
    start = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        run_chunk()
    step_s = (time.perf_counter() - start) / (repeats * chunk)
    with tempfile.TemporaryDirectory(prefix="infovae-bench-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "INFOVAE_JAX_CACHE": str(scratch / "cache")}
        (scratch / "c.yaml").write_text(yaml.safe_dump(config.to_dict()))
        argv = ["train", str(scratch / "c.yaml"), "--no-progress"]
        cold = _run(argv + ["--out", str(scratch / "cold")], env)
        warm = _run(argv + ["--out", str(scratch / "warm")], env)
    return {
        "steps": steps,
        "step_s": step_s,
        "cold_s": cold,
        "warm_s": warm,
        "cold_overhead": cold / (step_s * steps),
        "warm_overhead": warm / (step_s * steps),
    }


def _device():
    from infovae.machine import jax_device

    device = jax_device()
    return f"{device.platform}: {getattr(device, 'device_kind', '')} ({os.cpu_count()} cores)"


def tables(result):
    lines = [
        f"Device: {result['device']}. Sweeps of the regime study's setting, NumPyro backend, end to end from the command line.",
        "",
    ]
    lines += [
        "| trials | steps | executor | wall, cold cache (s) | wall, warm cache (s) | trial-steps per second |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["sweeps"]:
        warm = f"{s['warm_s']:.1f}" if "warm_s" in s else "–"
        lines.append(
            f"| {s['trials']} | {s['steps']} | {s['executor']} | {s['cold_s']:.1f} | {warm} | {s['trial_steps_per_s']:.0f} |"
        )
    ratios = result.get("speedups", {})
    if ratios:
        lines += ["", "| trials | vectorized speed-up over local processes (cold) |", "|---|---|"]
        lines += [f"| {n} | {r:.2f}x |" for n, r in ratios.items()]
    single = result.get("single_run")
    if single:
        lines += [
            "",
            f"Single run, {single['steps']} steps: pure step {1000 * single['step_s']:.2f} ms; wall "
            f"{single['cold_s']:.1f} s with a cold "
            f"cache ({single['cold_overhead']:.1f}x the pure training time), {single['warm_s']:.1f} s warm "
            f"({single['warm_overhead']:.1f}x).",
        ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[16])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--executors", nargs="+", default=["local", "vectorized"], choices=["local", "vectorized"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local executor's processes")
    parser.add_argument("--warm", action="store_true", help="also run each sweep again with a filled cache")
    parser.add_argument("--single-run-steps", type=int, default=3000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.steps, args.single_run_steps = [4], 6, 6
    result = {"device": _device(), "sweeps": [], "command": " ".join(sys.argv)}
    for n in args.trials:
        for executor in args.executors:
            print(f"{n} trials, {executor} ...", file=sys.stderr, flush=True)
            result["sweeps"].append(measure_sweep(n, args.steps, executor, args.workers, args.smoke, args.warm))
    by = {(s["trials"], s["executor"]): s for s in result["sweeps"]}
    result["speedups"] = {
        str(n): by[(n, "local")]["cold_s"] / by[(n, "vectorized")]["cold_s"]
        for n in args.trials
        if (n, "local") in by and (n, "vectorized") in by
    }
    print("single run ...", file=sys.stderr, flush=True)
    result["single_run"] = measure_single_run(args.single_run_steps, args.smoke)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sweeps_smoke" if args.smoke else "sweeps"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(tables(result))
    print(tables(result))
    print(args.out / f"{name}.json")


if __name__ == "__main__":
    main()
