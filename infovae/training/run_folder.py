"""A run folder: its files, named in one place, and one writer at a time.

A run folder holds:

- ``config.yaml``: the resolved config;
- ``splits.npz``: the indices of the train / validation / test examples, and ``data_sha256``: a digest
  of the data's arrays (:func:`data_digest`), so that a resumed run refuses data whose content changed
  (a folder of an earlier version has none: its data is checked by the indices alone);
- ``metrics.jsonl``: one JSON object per evaluation (``step``, the training terms' running means
  ``train_*``, every quantity of :mod:`infovae.diagnostics.quantities` on the validation split, and
  ``unix_seconds``: the wall-clock time the evaluation ended, in seconds since 1970-01-01 UTC);
- ``checkpoint.npz``: everything needed to continue, written atomically after each evaluation (and on
  Ctrl-C or SIGTERM), in a format that cannot run code (:mod:`infovae.training.checkpoint`);
- ``summary.json``: the final evaluation on the test split, with ``steps``, ``selected_step`` and
  ``stopped_early``;
- ``.lock``: held by the process that writes the folder.
"""

import hashlib
import json
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from infovae.data.base import DataSplits
from infovae.data.registry import DataSection
from infovae.diagnostics.quantities import QUANTITIES, upgrade_record
from infovae.errors import ConfigError, RunDirError, first_line
from infovae.files import (
    LOCK,
    FolderLock,
    atomic_write_bytes,
    atomic_write_text,
    load_yaml,
    read_json,
    read_jsonl,
    remove_temporary_files,
    short_repr,
    write_json,
)
from infovae.training.checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from infovae.training.config import RunConfig, parse_config

__all__ = ["CONFIG", "METRICS", "SPLITS", "SUMMARY", "RunFolder", "data_digest"]

CONFIG, SPLITS, METRICS, SUMMARY = "config.yaml", "splits.npz", "metrics.jsonl", "summary.json"
# The entry of ``splits.npz`` that holds :func:`data_digest` of the data the run started with.
_DATA_DIGEST = "data_sha256"


# The entries of a summary or metrics record that are not numbers.
_TEXT_ENTRIES = {"backend"}
_WHOLE_ENTRIES = ("step", "steps", "selected_step")


def _check_values(record: dict[str, Any], where: str) -> None:
    """That each entry of a summary or metrics record has the type the library writes (numbers, or null
    where a quantity does not apply), so that damage is one line here rather than a traceback later."""
    for key, value in record.items():
        if key in _TEXT_ENTRIES:
            ok = isinstance(value, str)
        elif key in _WHOLE_ENTRIES:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif key in QUANTITIES or key.startswith(("train_", "test_")):
            ok = value is None or isinstance(value, (int, float))
        else:  # an entry of a later version or a plug-in: not this reader's to judge
            continue
        if not ok:
            raise RunDirError(f"{where}: {key} is {short_repr(value)}, not what a run writes there; the file is damaged")


def data_digest(splits: DataSplits) -> str:
    """The SHA-256 of the data's arrays, split by split (``x``, ``y``, ``labels``, each with its type and
    shape): a changed value anywhere gives another digest. Hashing runs at over 1 GB/s, so the 16 MB of
    the MNIST data cost about 10 ms."""
    digest = hashlib.sha256()
    for part in (splits.train, splits.val, splits.test):
        for array in (part.x, part.y, part.labels):
            if array is None:
                digest.update(b"none;")
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape};".encode())
            digest.update(array.data)
    return digest.hexdigest()


class RunFolder:
    """The files of one run folder, named in one place."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG)
    splits_path = property(lambda self: self.path / SPLITS)
    metrics_path = property(lambda self: self.path / METRICS)
    checkpoint_path = property(lambda self: self.path / CHECKPOINT)
    summary_path = property(lambda self: self.path / SUMMARY)

    def lock(self) -> FolderLock:
        return FolderLock(self.path, "run folder")

    def is_empty(self) -> bool:
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a folder for a run")
        return not self.path.exists() or all(p.name == LOCK for p in self.path.iterdir())

    def holds_run(self) -> bool:
        return self.config_path.is_file()

    def create(self) -> list[Path]:
        """Make the folder (and its parents), refusing a path that is a file or cannot be written; returns
        the folders this call made, the run's own first, then its parents upwards."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a folder for a run")
        made = []
        # Each part of the path as written (`..` included), from the top, so that only a folder whose
        # mkdir succeeded here is counted as made, and nothing that existed or another process made.
        for folder in [*reversed(self.path.parents), self.path]:
            if folder.is_dir():  # not even tried: a read-only or foreign ancestor may refuse mkdir otherwise
                continue
            try:
                folder.mkdir()
            except (FileExistsError, NotADirectoryError):
                if folder.is_dir():  # another process made it meanwhile
                    continue
                raise RunDirError(f"cannot make the folder {self.path}: a part of its path is a file") from None
            except OSError as error:
                raise RunDirError(f"cannot make the folder {self.path}: {error.strerror or error}") from None
            made.append(folder)
        return made[::-1]

    def write_start(self, config: RunConfig, splits: DataSplits) -> None:
        """``config.yaml`` and ``splits.npz`` of a new run."""
        atomic_write_text(self.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
        buffer = BytesIO()
        arrays: dict[str, Any] = {**splits.indices, _DATA_DIGEST: np.array(data_digest(splits))}
        np.savez(buffer, **arrays)
        atomic_write_bytes(self.splits_path, buffer.getvalue())

    def read_config(self) -> RunConfig:
        if not self.holds_run():
            raise RunDirError(f"{self.path} holds no run (no {CONFIG})")
        try:
            return parse_config(load_yaml(self.config_path, "run config"))
        except ConfigError as error:
            raise RunDirError(f"{self.config_path} is not a valid run config: {first_line(error)}") from None

    def read_splits(self) -> dict[str, np.ndarray]:
        """The split indices ``train``, ``val`` and ``test``, and ``data_sha256`` (0-d text) where the run recorded it."""
        try:
            with np.load(self.splits_path, allow_pickle=False) as saved:
                indices = {k: saved[k] for k in ("train", "val", "test")}
                recorded = {_DATA_DIGEST: saved[_DATA_DIGEST]} if _DATA_DIGEST in saved else {}
                return {**indices, **recorded}
        except FileNotFoundError:
            raise RunDirError(f"{self.path} has no {SPLITS}") from None
        except (OSError, ValueError, KeyError, EOFError, MemoryError) as error:
            raise RunDirError(
                f"{self.splits_path} is not a valid splits file ({type(error).__name__}); the run folder is damaged"
            ) from None

    def check_data(self, splits: DataSplits, data: DataSection) -> None:
        """That ``splits`` (of the config's ``data``) are the data the run started with: split as
        ``splits.npz`` records, and with the digest of its arrays recorded there (a folder of an earlier
        version has none: its data is checked by the split alone). A changed data set is a
        :class:`~infovae.errors.RunDirError` naming its file."""
        saved = self.read_splits()
        if any(not np.array_equal(saved[k], v) for k, v in splits.indices.items()):
            raise RunDirError(f"the data no longer splits as recorded in {self.splits_path}; it has changed since the run began")
        if _DATA_DIGEST in saved and str(saved[_DATA_DIGEST]) != data_digest(splits):
            source = getattr(data, "path", None) or f"the {data.kind} data"
            raise RunDirError(
                f"{source}: its content has changed since the run in {self.path} began "
                f"(its digest differs from the one in {SPLITS}); restore the data, or start a new run"
            )

    def read_metrics(self) -> list[dict[str, Any]]:
        """The evaluations in ``metrics.jsonl`` (a last line cut short by a crash dropped with a warning),
        with names of earlier versions mapped to today's; ``[]`` before the first."""
        records = [upgrade_record(r, "metrics") for r in read_jsonl(self.metrics_path)]
        for number, record in enumerate(records, 1):
            _check_values(record, f"{self.metrics_path}: evaluation {number}")
        return records

    def keep_metrics_up_to(self, step: int) -> None:
        """Drop evaluations after ``step`` (written after the checkpoint a resumed run starts from) and
        a last line cut short by a crash."""
        records = read_jsonl(self.metrics_path)
        if any(not isinstance(r.get("step"), int) for r in records):
            raise RunDirError(f"{self.metrics_path} has a record without a step; the run folder is damaged")
        records = [r for r in records if r["step"] <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def read_summary(self) -> dict[str, Any] | None:
        try:
            summary = read_json(self.summary_path)
        except FileNotFoundError:
            return None
        if not isinstance(summary, dict):
            raise RunDirError(f"{self.summary_path} is not a summary (a JSON object); the run folder is damaged")
        summary = upgrade_record(summary, "summary")
        _check_values(summary, str(self.summary_path))
        return summary

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def clear_unstarted(self) -> None:
        """Empty the folder of a run that never wrote a checkpoint, to start it over: its ``config.yaml``,
        ``splits.npz``, ``metrics.jsonl`` and temporary files go, the folder and its lock stay. A file a run
        does not write is never deleted: the run is refused (:class:`~infovae.errors.RunDirError`) instead."""
        if not self.path.exists():
            return
        if self.path.is_symlink() or not self.path.is_dir():
            raise RunDirError(f"{self.path} is not a folder of its own (a file or a link); it is left as it is")
        remove_temporary_files(self.path)
        foreign = sorted(p.name for p in self.path.iterdir() if p.name not in (CONFIG, SPLITS, METRICS, LOCK))
        if foreign:
            raise RunDirError(
                f"{self.path} has no checkpoint to resume from and holds files a run does not write "
                f"({', '.join(foreign[:3])}); move them away to start it over"
            )
        for name in (CONFIG, SPLITS, METRICS):
            (self.path / name).unlink(missing_ok=True)

    def has_records(self) -> bool:
        """Whether the run has written an evaluation or its summary (what a restart from step 0 would lose)."""
        return self.summary_path.exists() or bool(read_jsonl(self.metrics_path))

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists() or (self.path / LEGACY_CHECKPOINT).exists()
