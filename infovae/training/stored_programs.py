"""Traced programs kept on disk, so that a NumPyro run whose programs were traced before (by any process on
this machine, from the same code, libraries and configs) neither traces nor lowers them again.

JAX's persistent compilation cache spares XLA's compilation, but every process still traces the Python
functions into jaxprs and lowers them to StableHLO: on a warm 100-step run on digits that was 9 of its
21 seconds (docs/performance.md). :mod:`jax.export` serialises the lowered program; a later process
reads it back and calls it under :func:`jax.jit`, whose lowering only embeds it, and XLA's compilation is
then a hit in the persistent cache. The numbers are those of the traced function: it is the same program.

A stored program is found by a key that covers everything it may hold: the package's source (every
``.py`` file of ``infovae``), the versions of the libraries that trace it, what the function closes over
as its caller describes it (the configs, the architecture, the training set's size), its name, JAX's
settings that change tracing (64-bit mode, the random-number implementation, ...), its static arguments
and its arguments' tree structure, shapes and dtypes. A file that cannot be read back (from an
older JAX, or cut short) is traced again and rewritten; a folder that cannot be written only costs the
next process the tracing.
"""

import functools
import hashlib
import importlib.metadata
from pathlib import Path

import jax
import optax
from jax import export

from infovae.errors import RunDirError
from infovae.files import atomic_write_bytes
from infovae.training.backends import Hyper

__all__ = ["StoredProgram", "source_fingerprint"]

# The libraries whose versions change what tracing gives, and JAX's settings that do.
TRACERS = ("jax", "jaxlib", "numpyro", "flax", "optax")
TRACING_FLAGS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
)
SUFFIX = ".jaxexport"


@functools.cache
def _register_named_tuples():
    """An exported program records its arguments' tree structure: the NamedTuples among them need names."""
    for cls, name in ((optax.ScaleByAdamState, "optax.ScaleByAdamState"), (Hyper, "infovae.Hyper")):
        try:
            export.register_namedtuple_serialization(cls, serialized_name=name)
        except ValueError:  # registered already, by another library
            pass


@functools.cache
def source_fingerprint():
    """A digest of the package's source and of the tracing libraries' versions."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in TRACERS:
        digest.update(f"{name}={importlib.metadata.version(name)}\0".encode())
    return digest.hexdigest()


def _signature(args, static):
    """The call as the program sees it: JAX's settings, the arguments' tree, shapes and dtypes, the static ones."""
    leaves, treedef = jax.tree.flatten(args)
    avals = [(tuple(leaf.shape), str(leaf.dtype), bool(getattr(leaf, "weak_type", False))) for leaf in leaves]
    flags = [(name, str(getattr(jax.config, name))) for name in TRACING_FLAGS]
    return repr((flags, str(treedef), avals, sorted(static.items())))


class StoredProgram:
    """``fn`` compiled with :func:`jax.jit`, its traced program kept in ``folder`` (None: traced in every
    process, as plain :func:`jax.jit`). ``closure`` describes, as text, everything ``fn`` reads besides its
    arguments; two functions with the same ``name`` and ``closure`` must compute the same program."""

    def __init__(self, fn, name, closure, folder, static_argnames=()):
        self.name, self.closure = name, closure
        self.folder = None if folder is None else Path(folder)
        self.jitted = jax.jit(fn, static_argnames=static_argnames)
        self._calls = {}

    def __call__(self, *args, **static):
        if self.folder is None:
            return self.jitted(*args, **static)
        signature = _signature(args, static)
        call = self._calls.get(signature)
        if call is None:
            call = self._calls[signature] = jax.jit(self._exported(signature, args, static).call)
        return call(*args)

    def path(self, signature):
        key = hashlib.sha256("\0".join((source_fingerprint(), self.name, self.closure, signature)).encode()).hexdigest()
        return self.folder / f"{self.name}-{key[:40]}{SUFFIX}"

    def _exported(self, signature, args, static):
        _register_named_tuples()
        path = self.path(signature)
        try:
            return export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # noqa: BLE001 - none stored yet, or from another JAX, or cut short: traced below
            pass
        exported = export.export(self.jitted)(*args, **static)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, exported.serialize())
        except (OSError, RunDirError):  # a read-only or full cache: the next process traces it again
            pass
        return exported
