"""The benchmark suite: one command, each measurement in a fresh process, side by side in one run.

    python benchmarks/run.py            # the full suite (about 25 minutes on two CPU cores)
    python benchmarks/run.py --smoke    # tiny sizes, to prove it runs (CI)

It times a training step of every implementation in :mod:`steps` at each batch size and latent kind
(warm-up, then the median of repeats pooled over three rounds of fresh processes), the dense matmul throughput
of the machine, and the MMD term
as the batch grows; and it records each step's peak resident memory. It writes ``benchmark.json``
(raw figures and the ratios the library is held to) and ``benchmark.md`` (the table for the README)
and prints the JSON file's path last.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCHES = (64, 256, 1024, 4096)
MMD_SIZES = (256, 1024, 4096, 8192, 16384)
# The exact MMD at 16384 draws needs more memory than this machine's 24 GB for its backward pass.
EXACT_MMD_LIMIT = 8192
# Each step is timed in this many fresh processes, one round over all cases after another.
ROUNDS = 3
IMPLEMENTATIONS = ("pyro_infovae", "pyro_baseline", "torch_manual", "numpyro_infovae", "jax_manual", "jax_networks")


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn, warmup, repeats, inner):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times), times


def measure_step(case):
    import steps

    if case["device"] == "cuda":
        import torch

        torch.set_default_device("cuda")
    step = steps.BUILDERS[case["impl"]](case["latent"], case["batch"], case["hidden"])
    before = _rss_mb()
    median, times = _time(step, case["warmup"], case["repeats"], case["inner"])
    out = {"median_s": median, "times_s": times, "peak_rss_mb": _peak_rss_mb(), "step_rss_mb": _peak_rss_mb() - before}
    if hasattr(step, "cost_analysis"):
        out["xla"] = step.cost_analysis()
    return out


def measure_matmul(case):
    """Dense float32 matmul FLOP/s of this machine, in JAX (the backend the throughput target is for):
    square, and at the shape of the decoder's hidden layer in the largest step (all latent values'
    rows stacked: ``[K * batch, hidden] @ [hidden, hidden]``)."""
    import jax
    import jax.numpy as jnp

    def flops_per_s(m, k, n):
        a = jax.random.normal(jax.random.PRNGKey(0), (m, k), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (k, n), jnp.float32)
        matmul = jax.jit(jnp.matmul)
        median, _ = _time(lambda: matmul(a, b).block_until_ready(), 2, case["repeats"], 3)
        return 2 * m * k * n / median

    n = case["size"]
    return {
        "flops_per_s": flops_per_s(n, n, n),
        "size": n,
        "layer_flops_per_s": flops_per_s(*case["layer"]),
        "layer": case["layer"],
    }


def measure_mmd(case):
    """Forward and backward of the MMD term alone, exact and with random features, in PyTorch."""
    import torch

    from infovae.objectives import mmd

    out = {}
    for n in case["sizes"]:
        x, y = torch.randn(n, 8, requires_grad=True), torch.randn(n, 8)
        for name, features in (("exact", None), ("features", 16)):
            if features is None and n > EXACT_MMD_LIMIT:
                continue

            def run():
                mmd(x, y, num_features=features).backward()

            out[f"{name}_{n}"] = _time(run, 1, case["repeats"], 1)[0]
    return out


MEASURES = {"step": measure_step, "matmul": measure_matmul, "mmd": measure_mmd}


def run_case(case):
    """One measurement in a fresh Python process."""
    done = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(case)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _device():
    import jax

    gpu = [d for d in jax.devices() if d.platform == "gpu"]
    if gpu:
        return f"gpu: {gpu[0].device_kind}"
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"cpu: {model} ({os.cpu_count()} cores)"


def _round_medians(entry, rounds):
    """The median step time of each round (its times are stored round after round)."""
    times = entry["times_s"]
    size = len(times) // rounds
    return [statistics.median(times[r * size : (r + 1) * size]) for r in range(rounds)]


def _paired_ratio(a, b, rounds):
    """Median over rounds of the ratio within a round: two implementations timed back to back share the
    machine's speed of the moment, which drifts between rounds on a shared host."""
    return round(statistics.median(x / y for x, y in zip(_round_medians(a, rounds), _round_medians(b, rounds))), 3)


def summarise(results, batches, largest, hidden):
    import steps

    step = results["steps"]
    t = lambda impl, latent, b: step[f"{impl}/{latent}/{b}"]["median_s"]  # noqa: E731

    def paired(a, b, latent):
        return {str(n): _paired_ratio(step[f"{a}/{latent}/{n}"], step[f"{b}/{latent}/{n}"], results["rounds"]) for n in batches}

    ratios = {
        "pyro_vs_traceenum": paired("pyro_infovae", "pyro_baseline", "discrete"),
        "pyro_vs_torch": paired("pyro_infovae", "torch_manual", "discrete"),
        "numpyro_vs_jax": paired("numpyro_infovae", "jax_manual", "discrete"),
        "numpyro_speedup_vs_pyro": paired("pyro_infovae", "numpyro_infovae", "discrete"),
        "gaussian_pyro_vs_trace": paired("pyro_infovae", "pyro_baseline", "gaussian"),
        "gaussian_pyro_vs_torch": paired("pyro_infovae", "torch_manual", "gaussian"),
        "gaussian_numpyro_vs_jax": paired("numpyro_infovae", "jax_manual", "gaussian"),
        "gaussian_numpyro_speedup_vs_pyro": paired("pyro_infovae", "numpyro_infovae", "gaussian"),
    }
    flops = steps.model_flops(steps.arch("discrete", hidden), largest)
    achieved = flops / t("numpyro_infovae", "discrete", largest)
    ratios["matmul_fraction"] = {str(largest): round(achieved / results["matmul"]["flops_per_s"], 4)}
    # What a single matmul of the network's own (skinny) shape reaches on this machine.
    ratios["layer_matmul_fraction"] = {
        str(largest): round(results["matmul"]["layer_flops_per_s"] / results["matmul"]["flops_per_s"], 4)
    }
    # The same for the networks alone: the ceiling of the fraction that the objective's other work leaves.
    ratios["networks_matmul_fraction"] = {
        str(largest): round(flops / t("jax_networks", "discrete", largest) / results["matmul"]["flops_per_s"], 4)
    }
    mmd = results["mmd"]
    ratios["mmd_fraction"] = {
        str(b): round(mmd[f"{'exact' if b <= 256 else 'features'}_{b}"] / t("pyro_infovae", "gaussian", b), 4)
        for b in batches
        if f"features_{b}" in mmd
    }
    ratios["mmd_exact_fraction"] = {
        str(b): round(mmd[f"exact_{b}"] / t("pyro_infovae", "gaussian", b), 4) for b in batches if f"exact_{b}" in mmd
    }
    ratios["achieved_flops_per_s"] = achieved
    return ratios


def markdown(results, ratios, batches):
    step = results["steps"]
    lines = [
        f"Device: {results['device']}. Median step time in milliseconds (peak resident memory of the step's process in MB).",
        "",
        "| latent | batch | " + " | ".join(IMPLEMENTATIONS) + " |",
        "|---|---|" + "---|" * len(IMPLEMENTATIONS),
    ]
    for latent in ("discrete", "gaussian"):
        for b in batches:
            cells = [
                f"{1000 * step[f'{i}/{latent}/{b}']['median_s']:.2f} ({step[f'{i}/{latent}/{b}']['peak_rss_mb']:.0f})"
                for i in IMPLEMENTATIONS
            ]
            lines.append(f"| {latent} | {b} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio (medians) | " + " | ".join(str(b) for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for key, values in ratios.items():
        if isinstance(values, dict):
            lines.append(f"| {key} | " + " | ".join(str(values.get(str(b), "–")) for b in batches) + " |")
    mmd = results["mmd"]
    sizes = sorted({int(k.split("_")[1]) for k in mmd})
    lines += [
        "",
        "MMD term alone, forward and backward (ms):",
        "",
        "| draws | " + " | ".join(map(str, sizes)) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name in ("exact", "features"):
        lines.append(
            f"| {name} | " + " | ".join(f"{1000 * mmd[f'{name}_{n}']:.1f}" if f"{name}_{n}" in mmd else "–" for n in sizes) + " |"
        )
    matmul, largest = results["matmul"], step[f"numpyro_infovae/discrete/{max(batches)}"]
    lines += [
        "",
        f"Dense matmul: {matmul['flops_per_s'] / 1e9:.1f} GFLOP/s square ({matmul['size']}²), "
        f"{matmul['layer_flops_per_s'] / 1e9:.1f} GFLOP/s at the decoder layer's shape {'×'.join(map(str, matmul['layer']))}; "
        f"the largest NumPyro step achieves {ratios['achieved_flops_per_s'] / 1e9:.2f} GFLOP/s.",
    ]
    if largest.get("xla", {}).get("flops"):
        xla = largest["xla"]
        lines.append(
            f"XLA's cost analysis of that step: {xla['flops'] / 1e9:.2f} GFLOP and {xla['bytes_accessed'] / 1e9:.2f} GB moved "
            f"({xla['flops'] / xla['bytes_accessed']:.1f} FLOP per byte)."
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one repeat, to prove the suite runs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for benchmark.json and benchmark.md")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where the PyTorch steps run (JAX picks its own)"
    )
    parser.add_argument(
        "--tables-from",
        type=Path,
        metavar="JSON",
        help="re-make the ratios and tables from a benchmark.json's raw figures (from another machine, say)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(MEASURES[case["kind"]](case)))
        return
    results = json.loads(args.tables_from.read_text())["raw"] if args.tables_from else measure_all(args)
    batches = sorted({int(key.split("/")[-1]) for key in results["steps"]})
    ratios = summarise(results, batches, max(batches), results["hidden"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps({**ratios, "device": results["device"], "raw": results}, indent=2) + "\n")
    table = markdown(results, ratios, batches)
    (args.out / "benchmark.md").write_text(table + "\n")
    print(table)
    print(args.out / "benchmark.json")


def measure_all(args):
    """Every measurement of the suite, each in a fresh process: the raw figures."""
    import steps

    batches, hidden = ((32,), 16) if args.smoke else (BATCHES, steps.HIDDEN)
    rounds, repeats, inner, warmup = (1, 1, 1, 1) if args.smoke else (ROUNDS, 3, 3, 3)
    results = {"device": _device(), "smoke": args.smoke, "rounds": rounds, "hidden": hidden, "steps": {}}
    cases = [(impl, latent, b) for latent in ("discrete", "gaussian") for b in batches for impl in IMPLEMENTATIONS]
    # Rounds over all cases, rather than all repeats of one case in a row: on a machine whose speed drifts
    # over minutes (a shared host) the implementations compared are then timed back to back in each
    # round, and the ratios are taken within rounds (see _paired_ratio).
    measured = {}
    for r in range(rounds):
        for i, (impl, latent, b) in enumerate(cases, 1):
            case = dict(
                kind="step",
                impl=impl,
                latent=latent,
                batch=b,
                hidden=hidden,
                warmup=warmup,
                repeats=repeats,
                inner=inner,
                device=args.device,
            )
            one = run_case(case)
            measured.setdefault(f"{impl}/{latent}/{b}", []).append(one)
            print(
                f"[round {r + 1}/{rounds}, {i}/{len(cases)}] {impl:16s} {latent:8s} batch {b:5d}: "
                f"{1000 * one['median_s']:.2f} ms",
                file=sys.stderr,
            )
    for key, runs in measured.items():
        times = [t for one in runs for t in one["times_s"]]
        results["steps"][key] = {
            **runs[-1],
            "median_s": statistics.median(times),
            "times_s": times,
            "peak_rss_mb": max(one["peak_rss_mb"] for one in runs),
            "step_rss_mb": max(one["step_rss_mb"] for one in runs),
        }
    layer = [steps.LATENT_SIZE["discrete"] * max(batches), hidden, hidden]
    results["matmul"] = run_case(dict(kind="matmul", size=256 if args.smoke else 2048, layer=layer, repeats=repeats))
    results["mmd"] = run_case(
        dict(kind="mmd", sizes=[b for b in batches] if args.smoke else list(MMD_SIZES), repeats=1 if args.smoke else 3)
    )
    return results


if __name__ == "__main__":
    main()
