"""Checkpoints in a format that cannot run code: one NumPy ``.npz`` archive read with
``allow_pickle=False``, holding the arrays and, as a JSON string, the structure around them.

A checkpoint is a tree of dicts, lists and tuples whose leaves are numbers, strings, booleans, ``None``
and arrays (NumPy, torch or JAX; read back as NumPy). The JSON records the format version, so that a
file from another version is refused with a message, never misread. Files are written atomically.

Checkpoints of infovae 0.1 were pickles, which can run any code when loaded: they are never loaded.
``infovae convert-checkpoint DIR`` converts one that you trust.
"""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from infovae.errors import CheckpointError, first_line, typed_first_line
from infovae.files import FolderLock, atomic_write_bytes, npz_refusal, short_repr

__all__ = ["CHECKPOINT", "FORMAT", "LEGACY_CHECKPOINT", "convert_legacy_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT, LEGACY_CHECKPOINT = "checkpoint.npz", "checkpoint.pkl"
FORMAT = "infovae-checkpoint"
VERSION = 2
_META = "__tree__"


def _to_array(value):
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _flatten(tree, arrays):
    """The JSON-able skeleton of ``tree``, its arrays appended to ``arrays`` and referenced by index."""
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return tree
    if isinstance(tree, dict):
        if all(isinstance(k, str) for k in tree):
            return {"dict": {k: _flatten(v, arrays) for k, v in tree.items()}}
        return {"items": [[_flatten(k, arrays), _flatten(v, arrays)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return {"tuple" if isinstance(tree, tuple) else "list": [_flatten(v, arrays) for v in tree]}
    if isinstance(tree, np.generic):
        return tree.item()
    array = _to_array(tree)
    if array.dtype == object:
        raise TypeError(f"a checkpoint cannot hold an object array ({type(tree).__name__})")
    arrays.append(array)
    return {"array": len(arrays) - 1}


def _unflatten(node, arrays, path):
    if node is None or isinstance(node, (bool, str, int, float)):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"unexpected entry at {path or 'the top'}")
    ((kind, body),) = node.items()
    if kind == "array":
        return arrays[f"a{int(body)}"]
    if kind == "dict":
        return {k: _unflatten(v, arrays, f"{path}.{k}") for k, v in body.items()}
    if kind == "items":
        return {_unflatten(k, arrays, path): _unflatten(v, arrays, f"{path}[{i}]") for i, (k, v) in enumerate(body)}
    if kind in ("list", "tuple"):
        values = [_unflatten(v, arrays, f"{path}[{i}]") for i, v in enumerate(body)]
        return tuple(values) if kind == "tuple" else values
    raise ValueError(f"unknown entry {kind!r} at {path or 'the top'}")


def save_checkpoint(path: str | Path, tree: Any) -> None:
    """Write ``tree`` to ``path`` atomically."""
    arrays: list[np.ndarray] = []
    skeleton = _flatten(tree, arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "tree": skeleton})
    buffer = io.BytesIO()
    entries: dict[str, Any] = {_META: np.array(meta), **{f"a{i}": a for i, a in enumerate(arrays)}}
    np.savez(buffer, **entries)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> Any:
    """The tree :func:`save_checkpoint` wrote to ``path``, its arrays as NumPy arrays.

    :raises CheckpointError: naming the file, if it is missing, damaged, a legacy pickle, or of
        another format or version.
    """
    path = Path(path)
    legacy = path.with_name(LEGACY_CHECKPOINT)
    try:
        exists, legacy_exists = path.exists(), legacy.exists()
    except OSError as error:  # a name the system refuses to look up
        raise CheckpointError(f"checkpoint {path} cannot be read: {error.strerror or error}") from None
    if not exists:
        if legacy_exists:
            raise CheckpointError(
                f"{legacy} is a pickled checkpoint of infovae 0.1; pickles can run code, so it is never loaded. "
                f"If you trust it, convert it: infovae convert-checkpoint {path.parent} --trust"
            )
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive[_META][()]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("not an infovae checkpoint")
            if meta.get("version") != VERSION:
                raise ValueError(f"format version {meta.get('version')!r}; this infovae reads version {VERSION}")
            arrays = {name: archive[name] for name in archive.files if name != _META}
        return _unflatten(meta["tree"], arrays, "")
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, TypeError, OverflowError) as error:
        # NumPy blames pickles for any file that is not a zip or .npy, and suggests loading it unsafely.
        first = npz_refusal(path, error) if isinstance(error, ValueError) else first_line(error)
        raise CheckpointError(f"checkpoint {path} cannot be read: {first}") from None
    except RecursionError:  # a structure nested thousands deep: no checkpoint of this library
        raise CheckpointError(f"checkpoint {path} cannot be read: its structure is nested too deeply") from None
    except MemoryError:  # an array header that claims more memory than there is
        raise CheckpointError(f"checkpoint {path} cannot be read: it claims an array too large for memory") from None


# What every pickled checkpoint of infovae 0.1 holds, and resume reads (beside the sampler's or trials' state).
LEGACY_KEYS = ("step", "seconds", "backend_name", "backend")


def _legacy_structure_problem(state: Any) -> str | None:
    """Why an unpickled object is not an infovae 0.1 checkpoint (a dict of :data:`LEGACY_KEYS`, with a
    backend's name and a whole step), or ``None`` when it has that structure."""
    if not isinstance(state, dict):
        return f"it holds {type(state).__name__}, not a dict"
    missing = [key for key in LEGACY_KEYS if key not in state]
    if missing:
        return f"it has no {', '.join(map(repr, missing))}"
    if not isinstance(state["backend_name"], str):
        return f"its backend_name is {type(state['backend_name']).__name__}, not a name"
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"its step is {short_repr(step)}, not a count of steps"
    return None


def convert_legacy_checkpoint(folder: str | Path) -> Path:
    """Convert a trusted run folder's pickled ``checkpoint.pkl`` into ``checkpoint.npz``, holding the
    folder's lock; a folder that has a ``checkpoint.npz`` already is refused (it is never overwritten).

    This unpickles the file, which runs whatever code it holds: only for files you trust.
    """
    import pickle

    folder = Path(folder)
    legacy = folder / LEGACY_CHECKPOINT
    try:
        found = legacy.is_file()
    except OSError as error:
        raise CheckpointError(f"{folder} cannot be read: {error.strerror or error}") from None
    if not found:
        raise CheckpointError(f"{folder} has no {LEGACY_CHECKPOINT} to convert")
    with FolderLock(folder):  # no run may write the folder meanwhile
        if (folder / CHECKPOINT).exists():
            raise CheckpointError(f"{folder} already has a {CHECKPOINT} (it may be newer); nothing was converted")
        try:
            with open(legacy, "rb") as f:
                state = pickle.load(f)  # noqa: S301  (the user vouched for this file)
        except Exception as error:  # a damaged file: unpickling raises whatever its bytes lead to
            raise CheckpointError(f"{legacy} cannot be unpickled ({typed_first_line(error)})") from None
        problem = _legacy_structure_problem(state)
        if problem:
            raise CheckpointError(f"{legacy} is not an infovae 0.1 checkpoint ({problem}); nothing was converted")
        try:
            save_checkpoint(folder / CHECKPOINT, state)
        except (TypeError, ValueError, RecursionError) as error:
            raise CheckpointError(f"{legacy} holds something a checkpoint cannot store ({typed_first_line(error)})") from None
    return folder / CHECKPOINT
