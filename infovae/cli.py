"""The ``infovae`` command line (also ``python -m infovae``): ``train``, ``sweep``, ``report``,
``schema`` and ``convert-checkpoint``.

Bad input (:class:`~infovae.errors.UserInputError`: a missing file, invalid YAML, an unknown key, a
value out of range, bad data, a folder in use) is reported on one line naming the problem, with exit
code 2 and no traceback, and never overwrites an existing run. A run that diverges or is interrupted
says so on one line (exit codes 1 and 130). Anything else is a bug and keeps its traceback.
"""

import os
import sys
from pathlib import Path

import click

from infovae.errors import RunInterrupted, TrainingDiverged, UserInputError, first_line
from infovae.files import short_repr

__all__ = ["cli", "main"]


class _Failure(click.ClickException):
    """A one-line failure with its own exit code."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def _print_summary(summary, out_dir):
    from infovae.diagnostics.quantities import SUMMARY_KEYS

    width = max(len(k) for k in SUMMARY_KEYS)
    for key in SUMMARY_KEYS + ("steps", "selected_step"):
        value = summary.get(key)
        if value is not None:
            click.echo(f"  {key:<{width}}  {value:.4g}" if isinstance(value, float) else f"  {key:<{width}}  {value}")
    click.echo(f"run folder: {out_dir}")


def _backends():
    from infovae.training.backends import BACKENDS

    return list(BACKENDS)


def _executors():
    from infovae.sweeps.executors import EXECUTORS

    return list(EXECUTORS)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.pass_context
def cli(ctx):
    """Train conditional VAEs with InfoVAE objectives, sweep their weights, and report what the latent learned."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


class _Path(click.Path):
    """A path the operating system can look up. A name it refuses outright (too long, a loop of
    links, a folder it may not search) is a usage error on one line, not a traceback later; a path
    that does not exist yet is fine. An empty one is refused: it would name the current folder."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("an empty path (write . for the current folder)", param, ctx)
        path = super().convert(value, param, ctx)
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as error:
            self.fail(f"{short_repr(str(value))}: {error.strerror or error}", param, ctx)
        return path


PATH = _Path(path_type=Path)
# A folder the command makes or reads: an existing file there is refused at once.
FOLDER = _Path(path_type=Path, file_okay=False)


@cli.command()
@click.argument("config", required=False, type=PATH)
@click.argument("overrides", nargs=-1)
@click.option("--backend", type=click.Choice(_backends()), help="Overrides the config's backend.")
@click.option("--out", type=FOLDER, help="New run folder (default: runs/CONFIG-TIMESTAMP-ID).")
@click.option(
    "--resume",
    type=FOLDER,
    help="Continue the run in this folder from its last checkpoint; with train.steps=N, extend a finished run to N steps.",
)
@click.option("--tensorboard", is_flag=True, help="Also write the metrics as TensorBoard event files (RUN/tensorboard).")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
def train(config, overrides, backend, out, resume, tensorboard, progress):
    """Train one CVAE from CONFIG (YAML), with key.path=value OVERRIDES.

    Writes config.yaml, metrics.jsonl, checkpoints and summary.json to the run folder.
    """
    from infovae import api

    callbacks = ["tensorboard"] if tensorboard else []
    if resume is not None:
        if config is not None and "=" in str(config):
            overrides, config = (str(config),) + overrides, None
        if config is not None or backend or out:
            raise UserInputError("--resume takes the run folder alone, and optionally train.steps=N to extend it")
        run = api.resume(resume, progress=progress, callbacks=callbacks, **dict(_pair(o) for o in overrides))
    else:
        if config is None:
            raise UserInputError("give a CONFIG file, or --resume DIR")
        extra = dict(_pair(o) for o in overrides) | ({"backend": backend} if backend else {})
        run = api.train(config, out=out, progress=progress, callbacks=callbacks, **extra)
    _print_summary(run.summary, run.dir)


def _pair(item):
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserInputError(f"override {item!r} must look like key.path=value")
    from infovae.training.config import _parse_value

    try:
        return key, _parse_value(value)
    except ValueError as error:  # YAML that PyYAML reads but cannot build: an integer of 5000 digits, say
        raise UserInputError(f"override {short_repr(item)}: the value cannot be read ({first_line(error)})") from None


@cli.command()
@click.argument("sweep_file", type=PATH)
@click.argument("overrides", nargs=-1)
@click.option("--executor", type=click.Choice(_executors()), default="local", show_default=True, help="Where trials run.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes at a time: trials (local executor; default: the cores) or chunks of trials (vectorized executor on "
    "a CPU; default: the cores for long chunks, else 1).",
)
@click.option(
    "--trials-per-program",
    type=click.IntRange(min=1),
    help="Largest group of trials one compiled program trains (vectorized executor; default: sized to the device).",
)
@click.option("--address", help="Ray cluster address (default: start a local Ray).")
@click.option("--out", type=FOLDER, help="Sweep folder (default: runs/SWEEP_FILE); re-running resumes.")
@click.option("--retry-failed", is_flag=True, help="Run failed trials again (interrupted ones always resume).")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
def sweep(sweep_file, overrides, executor, workers, trials_per_program, address, out, retry_failed, progress):
    """Run every trial of SWEEP_FILE, with key.path=value OVERRIDES set on every trial; finished trials
    are skipped, failed ones recorded.

    Writes results.csv (one row per trial), results_by_setting.csv and results.md (mean and spread
    over seeds) and prints the table.
    """
    from infovae import api

    if address and executor != "ray":
        raise UserInputError("--address needs --executor ray")
    result = api.sweep(
        sweep_file, out=out, executor=executor, workers=workers, trials_per_program=trials_per_program, address=address,
        retry_failed=retry_failed, progress=progress, overrides=dict(_pair(o) for o in overrides),
    )  # fmt: skip
    click.echo(result.table)
    if len(result.failed):
        click.echo(f"{len(result.failed)} of {len(result.results)} trials failed; see {result.dir / 'results.md'}")
    click.echo(f"sweep folder: {result.dir}")


@cli.command()
@click.argument("directory", type=PATH)
@click.option(
    "--draws", type=click.IntRange(min=1), default=100, show_default=True, help="Draws per example in report/inference.nc."
)
@click.option(
    "--examples", type=click.IntRange(min=1), default=500, show_default=True, help="Test examples in report/inference.nc."
)
def report(directory, draws, examples):
    """PNG figures and report.md for a run or a sweep DIRECTORY."""
    from infovae import api

    paths = api.report(directory, draws=draws, examples=examples)
    click.echo(f"report: {paths['report']}")


@cli.command()
def schema():
    """Print every config key with its default, allowed values and meaning."""
    from infovae.training.config import describe_schema

    click.echo(describe_schema())


@cli.command("convert-checkpoint")
@click.argument("directory", type=PATH)
@click.option("--trust", is_flag=True, help="Confirm that you trust the file: unpickling it runs any code it holds.")
def convert_checkpoint(directory, trust):
    """Convert the pickled checkpoint.pkl of an infovae 0.1 run in DIRECTORY to checkpoint.npz."""
    from infovae.training.checkpoint import convert_legacy_checkpoint

    if not trust:
        raise UserInputError("unpickling a checkpoint runs any code it holds; pass --trust if you trust this file")
    click.echo(f"wrote {convert_legacy_checkpoint(directory)}")


def main(argv=None):
    """Entry point: bad input is one line on stderr and exit code 2; no traceback."""
    try:
        code = cli.main(args=argv, prog_name="infovae", standalone_mode=False)
    except UserInputError as error:
        _fail(first_line(error), 2)
    except TrainingDiverged as error:
        _fail(str(error), 1)
    except (RunInterrupted, KeyboardInterrupt, click.Abort) as error:
        # Click turns any KeyboardInterrupt, RunInterrupted included, into Abort "from" it: the
        # message saying where the run or sweep stopped and how to resume it is on its cause.
        cause = error.__cause__ if isinstance(error, click.Abort) else error
        _fail(str(cause) if isinstance(cause, RunInterrupted) and str(cause) else "interrupted", 130)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message, code):
    click.echo(f"infovae: error: {message}", err=True)
    sys.exit(code)
