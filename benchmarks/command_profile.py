"""Where a command's wall time goes: interpreter start, imports (per package), data, network
construction, compilation, training, evaluation, writing, and the rest.

    python benchmarks/command_profile.py                 # --help, schema, 100-step runs on each backend
    python benchmarks/command_profile.py --long          # and 3000-step runs (minutes on two CPU cores)
    python benchmarks/command_profile.py --markdown docs/performance-table.md
    python benchmarks/command_profile.py --long --device cuda   # on a GPU: the Pyro runs on cuda too

Each command runs as ``infovae ...`` in a fresh interpreter under ``python -X importtime``, with the
training loop's functions wrapped by timers (nothing in the library changes): ``load_splits`` is
*data*, ``build_backend`` *construction*, the backend's ``train_steps`` *training* and ``evaluate``
*evaluation*, checkpoints, metric lines and run-folder files *writing*. Imports made inside a phase
are taken out of it and counted under *imports*; JAX's tracing, lowering and compilation (from its
monitoring events, including reads of the persistent cache) are taken out of the phase they happened
in and counted under *compilation*. *Interpreter start* is the time from spawning the process to its
first line of Python, less the imports made before it; *other* is what remains of the wall time.

The NumPyro runs use the persistent compilation cache as a user's would (warm after the first run);
``--cold`` points it at an empty folder instead. Times depend on the machine's load: run it on a quiet
machine, or compare the columns of one table rather than absolute numbers between tables.
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

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "data": {"kind": "digits"},
    "model": {"latent": "gaussian", "latent_size": 8, "hidden": 128},
    "objective": {"beta": 1.0, "marginal": "mmd", "marginal_weight": 10.0},
    "train": {"batch_size": 128, "seed": 0},
}
PHASES = ("data", "construction", "compilation", "training", "evaluation", "writing")
# Packages whose import time is shown apart; the others are summed.
PACKAGES = ("torch", "pyro", "jax", "jaxlib", "numpyro", "flax", "optax", "sklearn", "scipy", "numpy", "pydantic", "infovae")

# The driver's marks on stderr (a library's own lines may begin with "##" too).
MARKS = ("##start ", "##begin ", "##end ", "##compiled ", "##done ", "##result ")

DRIVER = r"""
import json, sys, time
sys.stderr.write(f"##start {time.time()!r}\n"); sys.stderr.flush()
phases, compile_time, stack = {}, {}, []

def mark(text):
    sys.stderr.write(f"##{text} {time.perf_counter()!r}\n"); sys.stderr.flush()

def timed(name, fn):
    def wrapper(*args, **kwargs):
        stack.append(name); mark("begin " + name)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
            mark("end " + name); stack.pop()
    return wrapper

def on_jax_event(event, duration, **kwargs):
    # Tracing, lowering, and XLA's compilation, whose event includes reading a program back from the
    # persistent cache (JAX's cache_retrieval_time_sec event times that read again, inside it). Marked
    # when it ends, with its length: the imports it made (JAX imports some of its own modules on the
    # first lowering) are told apart by the parser.
    if event.startswith("/jax/core/compile/"):
        phase = stack[-1] if stack else "other"
        compile_time[phase] = compile_time.get(phase, 0.0) + duration
        mark(f"compiled {phase} {duration!r}")

if "--" in sys.argv:
    from infovae.training import loop_group, loop_runs, run_folder

    build = loop_runs.build_backend
    def build_backend(configs, splits):
        if configs[0].backend == "numpyro":
            import jax.monitoring
            jax.monitoring.register_event_duration_secs_listener(on_jax_event)
        backend = build(configs, splits)
        backend.train_steps = timed("training", backend.train_steps)
        backend.evaluate = timed("evaluation", backend.evaluate)
        return backend
    loop_runs.build_backend = timed("construction", build_backend)
    loop_runs.load_splits = timed("data", loop_runs.load_splits)
    loop_group.save_checkpoint = timed("writing", loop_group.save_checkpoint)
    loop_group.append_jsonl = timed("writing", loop_group.append_jsonl)
    for method in ("write_start", "write_summary"):
        setattr(run_folder.RunFolder, method, timed("writing", getattr(run_folder.RunFolder, method)))
from infovae.cli import main
try:
    main([a for a in sys.argv[1:] if a != "--"])
except SystemExit as done:
    code = done.code
mark("done")
sys.stderr.write("##result " + json.dumps({"code": code, "phases": phases, "compile": compile_time}) + "\n")
"""


def _parse(stderr, spawned, finished):
    """The profile of one command from its stderr (``-X importtime`` lines and the driver's marks)."""
    started, result, window = None, None, []
    imports = {"before start": 0.0, "outside phases": 0.0}
    per_package, in_phase, in_compilation = {}, {}, {}
    # The imports since the driver's last mark, and that mark's time. Those made during a compilation
    # event (JAX imports some of its modules, and SciPy's LAPACK, on a first lowering) are counted as
    # imports, not twice: all of them but what fits between the mark and the event's start.
    since_mark, last_mark = 0.0, None
    for line in stderr.splitlines():
        if line.startswith(MARKS):
            fields = line.split()
            if fields[0] == "##compiled" and last_mark is not None:
                phase, duration, end = fields[1], float(fields[2]), float(fields[3])
                before = max(0.0, end - duration - last_mark)
                in_compilation[phase] = in_compilation.get(phase, 0.0) + min(duration, max(0.0, since_mark - before))
            # ##start holds the wall clock and ##result none; the other marks hold perf_counter's time.
            since_mark, last_mark = 0.0, (None if fields[0] in ("##start", "##result") else float(fields[-1]))
        if line.startswith("##start "):
            started = float(line.split()[1])
        elif line.startswith("##begin "):
            window.append(line.split()[1])
        elif line.startswith("##end "):
            window.pop()
        elif line.startswith("##result "):
            result = json.loads(line[len("##result ") :])
        elif line.startswith("import time:") and "cumulative" not in line:
            self_us, _, name = line.split("|")
            seconds, module = int(self_us.split(":")[1]) / 1e6, name.strip()
            root = module.split(".")[0]
            key = root if root in PACKAGES else "other"
            per_package[key] = per_package.get(key, 0.0) + seconds
            since_mark += seconds
            if started is None:
                imports["before start"] += seconds
            elif window:
                in_phase[window[-1]] = in_phase.get(window[-1], 0.0) + seconds
            else:
                imports["outside phases"] += seconds
    if result is None:
        raise RuntimeError("the command did not finish:\n" + stderr[-2000:])
    total = finished - spawned
    row = {"code": result["code"], "total": total, "interpreter start": started - spawned - imports["before start"]}
    compiled = {phase: seconds - in_compilation.get(phase, 0.0) for phase, seconds in result["compile"].items()}
    row["compilation"] = sum(compiled.values())
    for phase in PHASES:
        if phase == "compilation":
            continue
        row[phase] = result["phases"].get(phase, 0.0) - in_phase.get(phase, 0.0) - compiled.get(phase, 0.0)
    row["imports"] = sum(per_package.values())
    row["imports by package"] = dict(sorted(per_package.items(), key=lambda kv: -kv[1]))
    row["other"] = total - row["interpreter start"] - row["imports"] - sum(row[p] for p in PHASES)
    return row


def profile(argv, env, cwd, phases):
    command = [sys.executable, "-X", "importtime", "-c", DRIVER, *(["--"] if phases else []), *map(str, argv)]
    spawned = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    finished = time.time()
    return _parse(done.stderr, spawned, finished)


def _commands(folder, long, default, device):
    commands = [("infovae --help", ["--help"], False), ("infovae schema", ["schema"], False)]
    runs = [(f"{steps} steps (digits)", {**CONFIG, "train": {**CONFIG["train"], "steps": steps}}) for steps in (100, 3000)]
    # Every setting at its default: what a new user's first run pays for its evaluations.
    runs = runs[: 2 if long else 1] + ([("default config", {})] if default else [])
    for what, base in runs:
        for backend in ("pyro", "numpyro"):
            # The default eval_every: what a user's run pays for its evaluations.
            path = folder / f"{backend}-{len(commands)}.yaml"
            config = {**base, "backend": backend}
            if backend == "pyro":  # JAX picks its own device
                config["train"] = {**base.get("train", {}), "device": device}
            path.write_text(json.dumps(config))  # JSON is YAML
            argv = ["train", path, "--out", folder / f"run-{backend}-{len(commands)}", "--no-progress"]
            commands.append((f"train, {backend}, {what}", argv, True))
    return commands


COLUMNS = ("total", "interpreter start", "imports", *PHASES, "other")


def markdown(rows):
    lines = ["| command | " + " | ".join(COLUMNS) + " | largest imports |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name, row in rows.items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(row["imports by package"].items())[:3])
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in COLUMNS) + f" | {top} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="also profile 3000-step runs")
    parser.add_argument("--default", action="store_true", help="also profile runs of the default config (2000 steps, strategies)")
    parser.add_argument("--cold", action="store_true", help="an empty JAX compilation cache for the NumPyro runs")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command; the median of each column is shown")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the Pyro backend's torch device")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        if args.cold:
            env["INFOVAE_JAX_CACHE"] = str(folder / "jax-cache")
        rows = {}
        for name, argv, phases in _commands(folder, args.long, args.default, args.device):
            runs = []
            for repeat in range(args.repeats):
                if phases:  # a fresh run folder each time
                    argv = [*argv[:3], folder / f"{argv[3].name}-{repeat}", *argv[4:]]
                runs.append(profile(argv, env, folder, phases))
                if runs[-1]["code"] not in (0, None):
                    raise SystemExit(f"{name}: exit code {runs[-1]['code']}")
            row = {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
            row["imports by package"] = runs[len(runs) // 2]["imports by package"]
            rows[name] = row
            print(markdown({name: row}).splitlines()[-1], file=sys.stderr)  # kept if a later command is cut off
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
