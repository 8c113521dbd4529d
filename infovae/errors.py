"""The library's errors, in one family.

:class:`UserInputError` and its subclasses mean *bad input*: a file, a config, data, a run or sweep
folder, a model/guide pair or an argument that cannot be used as given. Their message names the
problem in one line, and the command line reports exactly these as that line with exit code 2.
Any other exception is a bug (in the library or in code it calls) and keeps its traceback.

Each is also a :class:`ValueError`, as Python's own convention for bad arguments has it, so that
``except ValueError`` keeps working for code written against earlier versions.
"""

__all__ = [
    "CheckpointError",
    "CombinationError",
    "ConfigError",
    "DataError",
    "InfoVAEError",
    "RunDirError",
    "RunInterrupted",
    "TrainingDiverged",
    "UnsupportedModelError",
    "UserInputError",
    "first_line",
    "typed_first_line",
]


class InfoVAEError(Exception):
    """Base of every error the library raises on purpose."""


class UserInputError(InfoVAEError, ValueError):
    """Bad input; the message names what and why, on one line."""


class ConfigError(UserInputError):
    """A run config or sweep file that cannot be used; the message names the key."""


class CombinationError(ConfigError):
    """A run config whose keys are each valid but do not fit together (``objective.marginal: mmd`` with a
    discrete latent): a sweep records a trial with such a config as failed, where it refuses one with an
    unknown key or a bad value before any trial runs."""


class DataError(UserInputError):
    """Data that cannot be used: a missing or malformed file, arrays that do not fit the model."""


class RunDirError(UserInputError):
    """A run or sweep folder that cannot be used as asked (in use, not empty, holds no run)."""


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read back safely (missing, damaged, foreign or of other shapes)."""


class UnsupportedModelError(UserInputError):
    """A model/guide pair that does not have the shape :class:`InfoVAE_ELBO` supports (either backend)."""


class TrainingDiverged(InfoVAEError, RuntimeError):
    """A non-finite training term; the run folder keeps its last good checkpoint."""


class RunInterrupted(InfoVAEError, KeyboardInterrupt):
    """Training stopped on request (Ctrl-C, SIGTERM); a checkpoint of the current step was written."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message that is not blank, stripped (its type's name when it has
    none): what a one-line report of another library's error quotes."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def typed_first_line(error: BaseException) -> str:
    """``Type: first line`` of ``error`` (:func:`first_line`), or its type's name alone when it has no
    message: a report that must say what kind of error it was (an outcome, a failed import)."""
    name = type(error).__name__
    return f"{name}: {first_line(error)}" if str(error).strip() else name
