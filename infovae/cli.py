"""The ``infovae`` command line: ``train``, ``sweep``, ``report`` and ``schema``.

Bad input (a missing file, invalid YAML, an unknown key, a value out of range, bad data) is reported on
one line naming the problem, with exit code 2 and no traceback, and never overwrites an existing run.
"""

import sys
from datetime import datetime
from pathlib import Path

import click

__all__ = ["cli", "main"]


class UserError(click.ClickException):
    """Bad input: reported on one line with exit code 2."""

    exit_code = 2


def _fail_on_bad_input(fn, *args, **kwargs):
    """Run ``fn``, turning the library's input errors into :class:`UserError`."""
    from infovae.training.checkpoint import CheckpointError

    try:
        return fn(*args, **kwargs)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        raise UserError(str(error)) from None


def _default_out(config_path):
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config_path).stem}-{stamp}"


SUMMARY_KEYS = (
    "test_loss", "test_recon", "test_kl", "mi", "marginal_kl", "jsd", "nll", "latent_perplexity",
    "active_units", "probe_accuracy", "bayes_accuracy", "nmi", "coverage_tv",
)  # fmt: skip


def _print_summary(summary, out_dir):
    width = max(len(k) for k in SUMMARY_KEYS)
    for key in SUMMARY_KEYS:
        value = summary.get(key)
        if value is not None:
            click.echo(f"  {key:<{width}}  {value:.4g}" if isinstance(value, float) else f"  {key:<{width}}  {value}")
    click.echo(f"run directory: {out_dir}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.pass_context
def cli(ctx):
    """Train conditional VAEs with InfoVAE objectives, sweep their weights, and report what the latent learned."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


PATH = click.Path(path_type=Path)


@cli.command()
@click.argument("config", required=False, type=PATH)
@click.argument("overrides", nargs=-1)
@click.option("--backend", type=click.Choice(["pyro", "numpyro"]), help="Overrides the config's backend.")
@click.option("--out", type=PATH, help="New run directory (default: runs/CONFIG-TIMESTAMP).")
@click.option("--resume", type=PATH, help="Continue the run in this directory from its last checkpoint.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
def train(config, overrides, backend, out, resume, progress):
    """Train one CVAE from CONFIG (YAML), with key.path=value OVERRIDES.

    Writes config.yaml, metrics.jsonl, checkpoints and summary.json to the run directory.
    """
    from infovae.training.config import load_config
    from infovae.training.loop import TrainingDiverged, resume_run, start_run

    try:
        if resume is not None:
            if config is not None or overrides or backend or out:
                raise UserError("--resume takes the run directory alone: its config is the one it was started with")
            summary = _fail_on_bad_input(resume_run, resume, progress=progress)
            out_dir = resume
        else:
            if config is None:
                raise UserError("give a CONFIG file, or --resume DIR")
            extra = list(overrides) + ([f"backend={backend}"] if backend else [])
            run_config = _fail_on_bad_input(load_config, config, extra)
            out_dir = out or _default_out(config)
            summary = _fail_on_bad_input(start_run, run_config, out_dir, progress=progress)
    except TrainingDiverged as error:
        raise click.ClickException(str(error)) from None
    _print_summary(summary, out_dir)


@cli.command()
@click.argument("sweep_file", type=PATH)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where trials run.")
@click.option("--workers", type=click.IntRange(min=1), help="Trials at a time (local executor; default: the cores).")
@click.option("--address", help="Ray cluster address (default: start a local Ray).")
@click.option("--out", type=PATH, help="Sweep directory (default: runs/SWEEP_FILE-NAME); re-running resumes.")
@click.option("--retry-failed", is_flag=True, help="Run failed trials again.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
def sweep(sweep_file, executor, workers, address, out, retry_failed, progress):
    """Run every trial of SWEEP_FILE; finished trials are skipped, failed ones recorded.

    Writes results.csv (one row per trial), results_by_setting.csv and results.md (mean and spread
    over seeds) and prints the table.
    """
    from infovae.sweeps import run_sweep

    if address and executor != "ray":
        raise UserError("--address needs --executor ray")
    result = _fail_on_bad_input(
        run_sweep, sweep_file, out, executor=executor, workers=workers, address=address, retry_failed=retry_failed, progress=progress
    )
    click.echo(result.table)
    if result.failed:
        click.echo(f"{len(result.failed)} of {len(result.rows)} trials failed; see {result.path / 'results.md'}")
    click.echo(f"sweep directory: {result.path}")


@cli.command()
@click.argument("directory", type=PATH)
def report(directory):
    """PNG figures and report.md for a run or a sweep DIRECTORY."""
    from infovae.diagnostics.report import write_report

    path = _fail_on_bad_input(write_report, directory)
    click.echo(f"report: {path}")


@cli.command()
def schema():
    """Print every config key with its default and meaning."""
    from infovae.training.config import describe_schema

    click.echo(describe_schema())


def main(argv=None):
    """Entry point: bad input is one line on stderr and exit code 2; no traceback."""
    try:
        code = cli.main(args=argv, prog_name="infovae", standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"infovae: error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("infovae: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
