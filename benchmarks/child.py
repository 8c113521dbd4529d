"""Run a benchmark's measurement in a fresh Python process, and take training steps there as the loop does:
the scripts beside this one import it."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(script, arguments, profile=False, env=None):
    """``python script --child ARGUMENTS`` in the repository's root; returns the JSON object its last line
    of output holds. With ``profile``, what it wrote to stderr (a profile) is passed on. A child that
    fails ends this process with its last line of stderr."""
    command = [sys.executable, str(script), "--child", *map(str, arguments)] + (["--profile"] if profile else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{arguments[0]}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    if profile:
        print(done.stderr, file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stepper(model, train_data, config):
    """``take(n, chunk)``: ``n`` optimisation steps of the backend ``model`` on the minibatches the training
    loop would draw from ``train_data``, handed to its ``train_steps`` at most ``chunk`` at a time
    (default: the backend's chunk size)."""
    import numpy as np

    from infovae.training.loop import MinibatchSampler

    sampler = MinibatchSampler(len(train_data), config.train.batch_size, config.train.seed)
    active = np.ones(1, bool)

    def take(n, chunk=model.chunk_size):
        while n > 0:
            size = min(chunk, n)
            model.train_steps(np.stack([sampler.next() for _ in range(size)])[None], active)
            n -= size

    return take
