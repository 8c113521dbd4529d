"""The library's files, read and written so that nothing in them can be turned against the user and a
crash loses nothing: bounded YAML, atomic writes, JSON lines that survive a torn last line, one writer
per folder, and names from elsewhere kept inside their folder.
"""

import json
import os
import re
import stat
import uuid
import warnings
from pathlib import Path
from typing import Any

import yaml

from infovae.errors import ConfigError, RunDirError, first_line

__all__ = [
    "LOCK",
    "MAX_JSONL_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "DuplicateKeyError",
    "FolderLock",
    "UniqueKeyLoader",
    "append_jsonl",
    "atomic_write_bytes",
    "atomic_write_text",
    "bracket_depth",
    "count_values",
    "inside",
    "load_yaml",
    "npz_refusal",
    "read_json",
    "read_jsonl",
    "remove_temporary_files",
    "safe_load",
    "short_repr",
    "write_document",
    "write_json",
]

# A config or sweep file is a few kilobytes; these bounds stop a crafted one (an alias bomb, a huge
# file) before it costs time or memory, whatever it expands to.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000
# Brackets nested deeper than this ("[[[[..."): PyYAML would scan the whole file before its parser,
# which recurses, gives up; a config nests a few levels.
MAX_YAML_DEPTH = 100
LOCK = ".lock"
# The library's bookkeeping (summaries, outcomes, trial records, metrics) is kilobytes to megabytes and
# nests a few levels; these bounds turn a damaged or crafted file into one line instead of a hang.
MAX_JSON_BYTES = 16 << 20
MAX_JSONL_BYTES = 1 << 30
MAX_JSON_DEPTH = 100


def short_repr(value, limit=80):
    """``repr(value)`` cut to ``limit`` characters, for messages that quote what the user gave."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def count_values(obj, budget):
    """Walk ``obj`` as a YAML expansion would (shared references counted each time), up to ``budget``."""
    stack, seen = [obj], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            return seen
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return seen


def bracket_depth(text):
    """How deep ``[`` and ``{`` nest in ``text``, counted as if none were quoted (an upper bound)."""
    depth = deepest = 0
    for char in re.findall(r"[\[\]{}]", text):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping that names one key twice (plain PyYAML keeps the last silently)."""

    def __init__(self, key, first, node):
        self.key = key
        super().__init__(None, None, f"duplicate key {short_repr(key)} (first at line {first.line + 1})", node.start_mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping naming one key twice is a :class:`DuplicateKeyError`
    (merge keys, ``<<: *base``, may still be overridden, as YAML defines)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the safe loader refuses it with its own message
                    continue
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, first, key_node)
        return super().construct_mapping(node, deep=deep)


def safe_load(text):
    """``yaml.safe_load``, refusing duplicate keys (:class:`UniqueKeyLoader`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


ZIP_MAGIC, NPY_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x93NUMPY", b"\x80"


def npz_refusal(path, error):
    """Why ``np.load(path, allow_pickle=False)`` refused ``path``, on one line.

    NumPy says a file "contains pickled data" for any file that is neither a zip (.npz) nor a .npy, so
    the file's first bytes decide whether pickles are to blame. Where they are, NumPy's advice to load
    the file unsafely is not passed on.
    """
    first = first_line(error)
    if "pickle" not in first and "Object arrays" not in first:
        return first
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError:
        head = ZIP_MAGIC  # it cannot be read again: keep NumPy's reason
    if head.startswith(PICKLE_MAGIC):
        return "it is not an .npz (zip) file but a pickle, which can run code when loaded; it is never loaded"
    if not head.startswith((ZIP_MAGIC, NPY_MAGIC)):
        return "it is not an .npz (zip) file"
    return "it holds pickled data (an object array), which can run code when loaded; it is never loaded"


def load_yaml(path, what="config file"):
    """Read a YAML file with PyYAML's safe loader, within :data:`MAX_YAML_BYTES` and
    :data:`MAX_YAML_VALUES`; any problem is a :class:`~infovae.errors.ConfigError` naming the file."""
    path = Path(path)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as error:  # a name the system refuses to look up (too long, a loop of links)
        raise ConfigError(f"{what} {short_repr(str(path))} cannot be opened: {error.strerror or error}") from None
    if is_dir:
        raise ConfigError(f"{what} {str(path)!r} is a directory, not a YAML file")
    if not is_file:
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {size} bytes is too large for a {what} (at most {MAX_YAML_BYTES})")
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    if bracket_depth(text) > MAX_YAML_DEPTH:
        raise ConfigError(f"{path}: nested too deeply to be a {what} (brackets more than {MAX_YAML_DEPTH} deep)")
    try:
        raw = safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or 'cannot be parsed'}") from None
    except RecursionError:  # PyYAML parses nesting recursively: "[[[[..." a few thousand deep
        raise ConfigError(f"{path}: nested too deeply to be a {what}") from None
    except ValueError as error:  # a value PyYAML cannot build, e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: holds a value that cannot be read ({first_line(error)})") from None
    if count_values(raw, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise ConfigError(f"{path}: expands to more than {MAX_YAML_VALUES} values (aliases?); a {what} is far smaller")
    return raw


def atomic_write_bytes(path, data):
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``:
    a crash mid-write leaves the previous file whole."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        # Created as open() would create it (mode 0o666 less the umask), unlike mkstemp's private 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise RunDirError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:  # a full disk, a folder gone read-only: the previous file is whole
        Path(tmp).unlink(missing_ok=True)
        raise RunDirError(f"cannot write {path}: {error.strerror or error}; the previous file is kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())


def write_document(path, text):
    """Write a document for people (a report's markdown) atomically as UTF-8, the bytes of a folder's
    name that are not UTF-8 shown as ``\\xNN`` escapes: Python keeps such bytes as lone surrogates
    (``os.fsdecode``), which no UTF-8 file can hold, and a report names its folder. (Files read back
    by the library keep :func:`atomic_write_text`'s strict encoding: an escaped name would read back as
    another name.)"""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (from a JSON escape, say)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    atomic_write_text(path, text)


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_temporary_files(folder):
    """Delete the ``.NAME.*.tmp`` files that a process killed mid-write left in ``folder``."""
    for path in Path(folder).glob(".*.tmp"):
        path.unlink(missing_ok=True)


def append_jsonl(path, record):
    """Append one JSON line and flush it to disk (a write that fails is one line,
    :class:`~infovae.errors.RunDirError`; a line cut short by it is dropped when the file is read)."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise RunDirError(f"cannot write {path}: {error.strerror or error}") from None


def _read_bounded_text(path, limit):
    """The text of the regular file ``path`` (a link followed), refused in one line
    (:class:`~infovae.errors.RunDirError`) if it is a device, a folder or a pipe, or larger than ``limit``."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise RunDirError(f"{path} is not a regular file (a folder, a device or a pipe); the folder is damaged")
        if info.st_size > limit:
            raise RunDirError(
                f"{path}: {info.st_size} bytes is more than the {limit} a file of this library holds; it is damaged"
            )
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as error:
        raise RunDirError(f"{path} cannot be read: {error.strerror or error}") from None
    if len(data) > limit:  # it grew while being read
        raise RunDirError(f"{path} is larger than the {limit} bytes a file of this library holds; it is damaged")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not a text file; the file is damaged") from None


def _loads(text, where):
    """``json.loads(text)``, refusing nesting deeper than :data:`MAX_JSON_DEPTH` before parsing."""
    if bracket_depth(text) > MAX_JSON_DEPTH:
        raise RunDirError(f"{where} is nested more than {MAX_JSON_DEPTH} deep; the file is damaged")
    try:
        return json.loads(text)
    except RecursionError:
        raise RunDirError(f"{where} is nested too deeply; the file is damaged") from None
    except ValueError as error:  # not JSON, or a number of thousands of digits
        raise RunDirError(f"{where} is not JSON ({first_line(error)}); the file is damaged") from None


def read_json(path):
    """The JSON document in the file ``path``, within :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`;
    a missing file is :class:`FileNotFoundError`, any other problem one line
    (:class:`~infovae.errors.RunDirError`)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(path)
    return _loads(_read_bounded_text(path, MAX_JSON_BYTES), str(path))


def read_jsonl(path):
    """The records of a JSON-lines file (within :data:`MAX_JSONL_BYTES`, each line within
    :data:`MAX_JSON_DEPTH`). A last line cut short by a crash is dropped with a warning;
    a bad line anywhere else means the file is damaged (:class:`~infovae.errors.RunDirError`)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    lines = _read_bounded_text(path, MAX_JSONL_BYTES).split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _loads(line, f"{path}: line {number}")
        except RunDirError:
            if all(not rest.strip() for rest in lines[number:]) and bracket_depth(line) <= MAX_JSON_DEPTH:
                warnings.warn(f"{path}: dropped a last line cut short by a crash (line {number})", stacklevel=2)
                break
            raise
        # A line cut short is never whole JSON, so a whole line that is not an object is damage.
        if not isinstance(record, dict):
            raise RunDirError(f"{path}: line {number} is not a JSON object; the file is damaged")
        records.append(record)
    return records


def inside(folder, name):
    """``folder / name`` for a relative ``name`` from elsewhere (a remote result, a file listing), after
    checking that it stays inside ``folder``."""
    folder = Path(folder).resolve()
    target = (folder / name).resolve()
    if Path(name).is_absolute() or not target.is_relative_to(folder):
        raise RunDirError(f"refused to write {name!r}: it is outside {folder}")
    if target == folder:
        raise RunDirError(f"refused to write {name!r}: it names the folder {folder} itself, not a file in it")
    return target


class FolderLock:
    """One writer per run or sweep folder: an advisory lock on ``FOLDER/.lock``, held while the
    process works there and released by the operating system if it dies.

    ``what`` names the folder in the message a second writer gets.
    """

    def __init__(self, folder, what="run folder"):
        # Here, not at the top: filelock imports asyncio, a tenth of a second of every command's start.
        from filelock import FileLock

        self.folder, self.what = Path(folder), what
        self._lock = FileLock(self.folder / LOCK, timeout=0)

    def acquire(self):
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise RunDirError(f"{self.what} {self.folder} is in use by another process") from None
        except OSError as error:  # the lock file cannot be made: a read-only or vanished folder
            raise RunDirError(f"cannot lock the {self.what} {self.folder}: {error.strerror or error}") from None
        return self

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
