"""Run a benchmark's measurement in a fresh Python process: the scripts beside this one import it."""

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
