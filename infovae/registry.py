"""Registries: the one shape of every extension point (marginal divergences, data sets, backends,
executors).

A :class:`Registry` maps names to entries, objects with a ``name`` of one type. Code registers entries
with :meth:`Registry.register`; a registry with an entry-point group (``infovae.marginals``,
``infovae.datasets``) also takes entries from other installed packages, each named by a Python entry
point in that group whose value is the entry object (``energy = "my_package.energy:ENERGY"``) and whose
name is the entry's. Entry points are read lazily: on the first lookup of a name that is not registered,
and when every name is listed (iterating, ``len``), so that importing the library and ``infovae --help``
read no plug-in.

Entries refer to code that needs torch or JAX as ``"module:attribute"`` strings, imported when first
used (:func:`import_target`), so that registering never imports a framework. This module imports no
framework and nothing of the library but its errors.
"""

import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from infovae.errors import UserInputError, typed_first_line

__all__ = ["LazyCode", "Named", "Registry", "RegistryError", "import_target", "lazy_exports"]


class RegistryError(UserInputError):
    """An entry that cannot be registered or used: a name taken twice, a declaration that does not
    hold (a function of the wrong signature, say), or a plug-in that does not load. The message names
    the entry, and the plug-in where there is one."""


class Named(Protocol):
    """What a registry holds: anything with a ``name``."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


def import_target(target: str) -> Any:
    """The object a ``"module:attribute"`` string names (``attribute`` may be dotted), imported now.

    :raises RegistryError: if the string is not of that form or the module has no such attribute.
    :raises ImportError: if the module (or something it imports) is not installed, so that callers
        can name the extra that installs it.
    """
    module_name, sep, attribute = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not (sep and module_name and attribute):
        raise RegistryError(f"{target!r} does not name code as 'module:attribute'")
    value = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise RegistryError(f"{target!r}: {module_name} has no attribute {attribute!r}") from None
    return value


def lazy_exports(module: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` (PEP 562) of the package ``module`` (its ``__name__``) that
    import each public name from the module ``exports`` gives it (name -> module) on first use, so that
    importing the package, or one of its light modules, does not import its heavy ones."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}", name=name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


class LazyCode(NamedTuple):
    """An entry that is code imported when first used (a backend, an executor): its ``name``, its
    ``target`` ``"module:attribute"``, a one-line ``description``, and the ``extra`` of the package
    that installs what it needs (``""``: none)."""

    name: str
    target: str
    description: str
    extra: str = ""

    def load(self, kind: str) -> Any:
        """The object ``target`` names, imported now; a missing library is a one-line
        :class:`~infovae.errors.UserInputError` that names the extra installing it."""
        try:
            return import_target(self.target)
        except ImportError as error:
            hint = f": pip install 'infovae[{self.extra}]'" if self.extra else ""
            missing = error.name or "a library that is not installed"
            raise UserInputError(f"the {self.name} {kind} needs {missing}{hint}") from None


class Registry(Mapping[str, T]):
    """Entries of one kind by name, in registration order (a read-only mapping, plus :meth:`register`).

    :param kind: what an entry is, for messages (``"marginal divergence"``).
    :param entry_type: the class every entry is an instance of.
    :param group: the entry-point group plug-ins register through, or ``None``.
    :param check: called with each entry before it is registered; raises :class:`RegistryError` (or
        another :class:`~infovae.errors.UserInputError`) if the entry does not keep its contract.
    """

    def __init__(self, kind: str, entry_type: type, group: str | None = None, check: Callable[[Any], None] | None = None):
        self.kind, self.entry_type, self.group, self._check = kind, entry_type, group, check
        self._entries: dict[str, T] = {}
        # Entry points found but not loaded yet, by name (None until the group is first read).
        self._pending: dict[str, list] | None = None
        # Why a plug-in of a name could not be registered, so that a lookup of it says so.
        self._failed: dict[str, str] = {}

    def register(self, entry: T) -> T:
        """Add ``entry`` under its name (a name is registered once) and return it.

        :raises RegistryError: if the name is taken or the entry does not keep its contract.
        """
        if not isinstance(entry, self.entry_type):
            raise RegistryError(f"a {self.kind} must be a {self.entry_type.__name__}, got {type(entry).__name__}")
        name = entry.name
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            if self._entries[name] is entry:  # a plug-in module that also registers itself on import
                return entry
            raise RegistryError(f"a {self.kind} named {name!r} is registered already")
        if self._check is not None:
            self._check(entry)
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if not isinstance(name, str):
            raise KeyError(name)
        if name not in self._entries:
            self._load_plugins(name)
        if name in self._entries:
            return self._entries[name]
        if name in self._failed:
            raise RegistryError(self._failed[name])
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (reading the plug-ins of that name if it is not yet); a
        plug-in of that name that fails to load raises its :class:`RegistryError`, which says why."""
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)

    # A registry is itself, not its contents: compared and hashed by identity (a mapping would not hash).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    def lookup(self, name: str) -> T:
        """The entry ``name``; an unknown name is a :class:`RegistryError` that lists the known ones."""
        try:
            return self[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r}; the {self.kind}s are {', '.join(self)}") from None

    # -- plug-ins -----------------------------------------------------------------------------------

    def _load_plugins(self, name: str | None = None) -> None:
        """Register the plug-ins named ``name`` (all of them for ``None``) that were not loaded yet.
        A plug-in asked for by name that fails raises; one that fails while all are listed is skipped
        with a warning, so that one broken package does not hide every other name."""
        if self.group is None:
            return
        if self._pending is None:
            from importlib.metadata import entry_points

            self._pending = {}
            for point in entry_points(group=self.group):
                self._pending.setdefault(point.name, []).append(point)
        for key in [name] if name is not None else list(self._pending):
            for point in self._pending.pop(key, []):
                self._load(point, strict=name is not None)

    def _load(self, point, strict: bool) -> None:
        dist = f" of {point.dist.name} {point.dist.version}" if getattr(point, "dist", None) else ""
        where = f"plug-in {point.value!r} (entry point {point.name!r} in {self.group}{dist})"
        try:
            entry = point.load()
            if getattr(entry, "name", None) != point.name:
                raise RegistryError(
                    f"it names a {type(entry).__name__} called {getattr(entry, 'name', None)!r}, not a {self.kind} "
                    f"called {point.name!r}"
                )
            self.register(entry)
        except Exception as error:  # a third-party module may fail to import any way it likes
            message = f"{where} cannot be registered: {typed_first_line(error)}"
            self._failed.setdefault(point.name, message)
            if strict:
                raise RegistryError(message) from error
            warnings.warn(message, stacklevel=4)
