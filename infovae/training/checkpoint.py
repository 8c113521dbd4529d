"""Files of a run directory written atomically: a crash mid-write leaves the previous file whole."""

import json
import os
import pickle
import tempfile
from pathlib import Path

__all__ = ["CheckpointError", "atomic_write_bytes", "atomic_write_text", "load_checkpoint", "save_checkpoint", "write_json"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back."""


def atomic_write_bytes(path, data):
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path, state):
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as error:  # a truncated or foreign file: say which, not how pickle failed
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from None
