"""Traced programs kept on disk, so that a NumPyro run whose programs were traced before (by any process on
this machine, from the same code, libraries and configs) neither traces nor lowers them again.

JAX's persistent compilation cache spares XLA's compilation, but every process still traces the Python
functions into jaxprs and lowers them to StableHLO: on a warm 100-step run on digits that was 9 of its
21 seconds (docs/performance.md). :mod:`jax.export` serialises the lowered program; a later process
reads it back and calls it under :func:`jax.jit`, whose lowering only embeds it, and XLA's compilation is
then a hit in the persistent cache. The numbers are those of the traced function: it is the same program.

A stored program is found by a key that covers everything it may hold: the package's source (every
``.py`` file of ``infovae``, read when this module is imported) and that of any plug-in it traces, the
platform, the versions of the libraries that trace it, what the function closes over
as its caller describes it (the configs, the architecture, the training set's size), its name, JAX's
settings that change tracing (64-bit mode, the random-number implementation, ...), its static arguments
and its arguments' tree structure, shapes and dtypes. A file that cannot be read back (from an
older JAX, or cut short) is traced again and rewritten; a folder that cannot be written only costs the
next process the tracing.
"""

import hashlib
import importlib.metadata
import inspect
from functools import cache, partial
from pathlib import Path

import jax
import optax
from jax import export

from infovae.errors import RunDirError
from infovae.files import atomic_write_bytes
from infovae.machine import jax_device
from infovae.training.backends import Hyper

__all__ = ["SOURCE_FINGERPRINT", "StoredProgram", "code_digest"]

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


@cache
def _register_named_tuples():
    """An exported program records its arguments' tree structure: the NamedTuples among them need names."""
    for cls, name in ((optax.ScaleByAdamState, "optax.ScaleByAdamState"), (Hyper, "infovae.Hyper")):
        try:
            export.register_namedtuple_serialization(cls, serialized_name=name)
        except ValueError:  # registered already, by another library
            pass


def _source_fingerprint():
    """A digest of the package's source and of the tracing libraries' versions."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in TRACERS:
        digest.update(f"{name}={importlib.metadata.version(name)}\0".encode())
    return digest.hexdigest()


# Read when the backend is imported, close to when the package's code was: files changed later (a checkout
# of another branch while a run starts) must not file the running code's programs under the new code.
SOURCE_FINGERPRINT = _source_fingerprint()


def code_digest(fn):
    """A digest of the file that defines ``fn``, for code outside this package that a program traces (a
    plug-in divergence); None where it has no file (defined in a notebook or at the prompt)."""
    try:
        source = Path(inspect.getsourcefile(fn) or "")
        return f"{fn.__module__}.{fn.__qualname__}:{hashlib.sha256(source.read_bytes()).hexdigest()}"
    except (OSError, TypeError):
        return None


def _platform():
    """The platform the programs run on, as :mod:`jax.export` names it: the default device's
    (:func:`~infovae.machine.jax_device`), which is not the default backend's where the user chose a
    CPU device on a GPU machine."""
    platform = jax_device().platform
    # The default backend's "gpu" is exported as "cuda" or "rocm".
    return export.default_export_platform() if platform == jax.default_backend() else platform


def _signature(args, static, platform):
    """The call as the program sees it: the platform, JAX's settings, the arguments' tree, shapes and
    dtypes, the static arguments."""
    leaves, treedef = jax.tree.flatten(args)
    avals = [(tuple(leaf.shape), str(leaf.dtype), bool(getattr(leaf, "weak_type", False))) for leaf in leaves]
    flags = [(name, str(getattr(jax.config, name))) for name in TRACING_FLAGS]
    return repr((platform, flags, str(treedef), avals, sorted(static.items())))


class StoredProgram:
    """``fn`` compiled with :func:`jax.jit`, its traced program kept in ``folder``. ``closure`` describes, as
    text, everything ``fn`` reads besides its arguments; two functions with the same ``name`` and ``closure``
    must compute the same program. With ``folder`` or ``closure`` None (no cache; code that cannot be
    described), it is plain :func:`jax.jit`, traced in every process."""

    def __init__(self, fn, name, closure, folder, static_argnames=()):
        self.name, self.closure = name, closure
        self.folder = None if folder is None or closure is None else Path(folder)
        self.jitted = jax.jit(fn, static_argnames=static_argnames)
        self.static_argnames = tuple(static_argnames)
        self._calls = {}

    def __call__(self, *args, **static):
        # Keywords are the static arguments: they key the program and are not passed to a stored one.
        unknown = sorted(set(static) - set(self.static_argnames))
        if unknown:
            raise TypeError(f"{self.name}: keyword arguments must be static arguments; got {unknown} (pass arrays positionally)")
        if self.folder is None:
            return self.jitted(*args, **static)
        platform = _platform()
        signature = _signature(args, static, platform)
        call = self._calls.get(signature)
        if call is None:
            exported = self._exported(signature, platform, args, static)
            call = self._calls[signature] = partial(self.jitted, **static) if exported is None else jax.jit(exported.call)
        return call(*args)

    def path(self, signature):
        key = hashlib.sha256("\0".join((SOURCE_FINGERPRINT, self.name, self.closure, signature)).encode()).hexdigest()
        return self.folder / f"{self.name}-{key[:40]}{SUFFIX}"

    def _exported(self, signature, platform, args, static):
        _register_named_tuples()
        path = self.path(signature)
        try:
            return export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # noqa: BLE001 - none stored yet, or from another JAX, or cut short: traced below
            pass
        try:
            exported = export.export(self.jitted, platforms=[platform])(*args, **static)
            data = exported.serialize()
        except Exception:  # noqa: BLE001 - a program jax.export refuses, or no flatbuffers: plain jit
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except (OSError, RunDirError):  # a read-only or full cache: the next process traces it again
            pass
        return exported
