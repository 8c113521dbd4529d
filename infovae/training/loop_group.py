"""The one training loop: a group of trials that share shapes, trained together to their run folders,
for every backend (a single run is a group of one).

Per chunk of steps the loop draws each trial's minibatches (its own data order), hands them to the
backend and checks every term; per evaluation it writes each trial's ``metrics.jsonl`` line, keeps the
weights of the best evaluation of ``train.monitor`` (``train.select: best``), counts evaluations
without improvement (``train.early_stopping``) and writes the checkpoint. The evaluation at the end of a
run whose ``train.steps`` is not a multiple of ``train.eval_every`` is the run's alone: it may select the
last weights, but it is not kept as the best, counts no patience and restarts no running means, and a run
extended past it drops it, so that an extended run evaluates and selects as one trained to its steps in
one go. A trial whose loss turns
non-finite stops there and is reported as failed, naming the term and the step; the others go on.
Ctrl-C or SIGTERM stops the loop after the current chunk, with a checkpoint of that step, so that a
resumed run continues exactly.
"""

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from infovae.data.base import DataSplits
from infovae.diagnostics.quantities import summary_name
from infovae.errors import RunInterrupted, TrainingDiverged
from infovae.files import append_jsonl
from infovae.training.backends import Backend, weighted_terms
from infovae.training.checkpoint import save_checkpoint
from infovae.training.loop_checkpoint import group_state, restore_group
from infovae.training.loop_progress import Outcome, TrialProgress
from infovae.training.loop_sampling import eval_seed
from infovae.training.loop_signals import stop_requests

__all__ = ["train_group"]


def _first_bad(terms):
    return next((name for name, value in terms.items() if not math.isfinite(value)), None)


def _summary(config, record, trial, backend, seconds, group_size):
    """``seconds``: the trial's share of its group's training time (:func:`_time_shares`)."""
    summary = {summary_name(k): v for k, v in record.items()}
    summary.update(
        steps=trial.last_step,
        selected_step=trial.best_step if _selects_best(config, trial) else trial.last_step,
        stopped_early=trial.status == "stopped",
        backend=backend.name,
        train_seconds=round(seconds, 3),
        seconds_per_step=seconds / max(trial.last_step, 1),
        trials_sharing_time=group_size,
    )
    return summary


def _selects_best(config, trial):
    """Whether a finished trial's selected weights are its kept best ones rather than its last."""
    return config.train.select == "best" and not trial.end_is_best


def _time_shares(trials, seconds):
    """Each trial's share of the group's training time ``seconds``, in proportion to the steps it trained:
    one step of a group advances every running trial at once, so the time of a step is theirs together,
    and a trial's ``seconds_per_step`` is what its own steps cost, not what the whole group's did."""
    steps = np.array([t.last_step for t in trials], dtype=float)
    return seconds * steps / max(steps.sum(), 1.0)


def _postfix(trials, records):
    if len(trials) == 1 and records:
        record = records[0]
        shown = {k: record.get(k) for k in ("loss", "nll", "probe_accuracy", "coverage_tv")}
        return {f"val_{k}": f"{v:.3g}" for k, v in shown.items() if v is not None}
    counts = {s: sum(t.status == s for t in trials) for s in ("running", "stopped", "failed")}
    return {k: v for k, v in counts.items() if v}


def train_group(
    backend: Backend,
    trials: Sequence[TrialProgress],
    splits: DataSplits,
    checkpoint_path: str | Path,
    state: dict[str, Any] | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    per_trial_checkpoints: bool = False,
) -> list[Outcome]:
    """Train the group's ``trials`` (sharing ``backend``) to ``train.steps`` from ``state`` (a
    checkpoint, or ``None`` to start), writing each trial's metrics and summary to its run folder and
    the group's checkpoint to ``checkpoint_path``; with ``per_trial_checkpoints``, each finished trial's
    run folder also gets a checkpoint of its own, as a single run's.

    :returns: one :class:`Outcome` per trial.
    :raises RunInterrupted: on Ctrl-C or SIGTERM, after writing a checkpoint of the current step.
    """
    train = trials[0].config.train
    step, seconds = (0, 0.0) if state is None else restore_group(state, backend, trials)
    for trial in trials:
        trial.folder.keep_metrics_up_to(_kept_evaluations(step, train))
    total = train.steps * len(trials)
    bar = tqdm(
        total=total,
        initial=step * len(trials),
        desc=backend.name,
        unit="step",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    with stop_requests() as stop, bar:
        while step < train.steps and any(t.status == "running" for t in trials):
            next_eval = min(train.steps, (step // train.eval_every + 1) * train.eval_every)
            n = min(backend.chunk_size, next_eval - step)
            active = np.array([t.status == "running" for t in trials])
            indices = np.stack([np.stack([t.sampler.next() for _ in range(n)]) for t in trials])
            terms = backend.train_steps(indices, active)
            for i, trial in enumerate(trials):
                if not active[i]:
                    continue
                own = weighted_terms(trial.config)
                for s in range(len(terms["loss"][i])):
                    current = {name: float(values[i, s]) for name, values in terms.items() if name in own}
                    bad = _first_bad(current)
                    if bad is not None:
                        trial.status = "failed"
                        last = trial.last_step - trial.last_step % train.eval_every
                        kept = f"the last good checkpoint (step {last}) is kept" if last else "no checkpoint was written yet"
                        trial.error = f"step {step + s + 1}: the {bad} term is {current[bad]}; training stopped, {kept}"
                        break
                    trial.add(current)
                    trial.last_step = step + s + 1
            step += n
            bar.update(int(active.sum()) * n)
            if len(trials) == 1 and trials[0].status == "failed":
                raise TrainingDiverged(f"{trials[0].error} in {trials[0].folder.path}")
            if step == next_eval:
                seconds += time.perf_counter() - started
                records = _evaluate(backend, trials, splits, step, callbacks)
                bar.set_postfix(_postfix(trials, records), refresh=False)
                save_checkpoint(checkpoint_path, group_state(step, seconds, backend, trials))
                started = time.perf_counter()
            elif stop.is_set():
                seconds += time.perf_counter() - started
                save_checkpoint(checkpoint_path, group_state(step, seconds, backend, trials))
            if stop.is_set():
                raise RunInterrupted(f"interrupted at step {step}; a checkpoint of that step is kept")
    if per_trial_checkpoints:
        # Before any summary, so that a finished trial always has a checkpoint of its own to report or extend.
        for i, trial in enumerate(trials):
            if trial.status != "failed":
                save_checkpoint(
                    trial.folder.checkpoint_path, group_state(step, seconds, backend, [trial], backend.trial_state(i))
                )
    return _finish(backend, trials, splits, seconds, callbacks)


def _kept_evaluations(step, train):
    """The last step whose evaluation a run continuing from ``step`` keeps in ``metrics.jsonl``: all up to
    ``step``, but that of a shorter run's end off the ``eval_every`` grid when the run is extended past it
    (a run trained to ``train.steps`` in one go has none there; an interrupted run has none off the grid)."""
    return step if step == train.steps else step - step % train.eval_every


def _evaluate(backend, trials, splits, step, callbacks):
    """Evaluate the group on the validation split; per running trial, write its metrics line and
    update its best weights and patience, or, at the run's end off the ``eval_every`` grid, only
    whether the last weights beat the best (module docstring)."""
    seeds = [eval_seed(t.config, step) for t in trials]
    metrics = backend.evaluate(splits.val, splits.train, splits.generator, seeds)
    on_grid = step % trials[0].config.train.eval_every == 0
    improved = np.zeros(len(trials), bool)
    records = []
    for i, trial in enumerate(trials):
        if trial.status != "running":
            continue
        # Off the grid the running means go on: an extended run's next evaluation averages the same steps.
        means = trial.take_means() if on_grid else trial.means()
        record = {"step": step, **means, **{name: values[i] for name, values in metrics.items()}}
        record["unix_seconds"] = round(time.time(), 3)  # when the evaluation ended (wall clock, UTC)
        append_jsonl(trial.folder.metrics_path, record)
        records.append(record)
        for callback in callbacks:
            callback.on_evaluation(trial.folder.path, step, record)
        beats_best = _beats_best(trial, record)
        trial.end_is_best = beats_best and not on_grid
        if on_grid:
            improved[i] = beats_best
            _update_best_and_patience(trial, step, record, beats_best)
    backend.keep_best(improved)
    return records


def _beats_best(trial, record):
    value = record.get(trial.config.train.monitor)
    return value is not None and math.isfinite(value) and trial.config.train.monitor_sign * value < trial.best_score


def _update_best_and_patience(trial, step, record, beats_best):
    """Keep an evaluation on the grid that ``beats_best`` as the best, or count it towards early stopping."""
    train = trial.config.train
    if beats_best:
        trial.best_score, trial.best_step, trial.stale = train.monitor_sign * record[train.monitor], step, 0
    else:
        trial.stale += 1
        if train.early_stopping is not None and trial.stale >= train.early_stopping.patience:
            trial.status = "stopped"


def _finish(backend, trials, splits, seconds, callbacks):
    """Evaluate the finished trials on the test split (their selected weights) and write their summaries."""
    finished = np.array([t.status != "failed" for t in trials])
    outcomes = [Outcome("failed", t.error, {}) for t in trials]
    if not finished.any():
        return outcomes
    seeds = [eval_seed(t.config, t.last_step) for t in trials]
    selected = np.array([_selects_best(t.config, t) for t in trials])
    metrics = backend.evaluate(splits.test, splits.train, splits.generator, seeds, selected=selected)
    shares = _time_shares(trials, seconds)
    for i, trial in enumerate(trials):
        if not finished[i]:
            continue
        record = {name: values[i] for name, values in metrics.items()}
        summary = _summary(trial.config, record, trial, backend, float(shares[i]), len(trials))
        trial.folder.write_summary(summary)
        for callback in callbacks:
            callback.on_summary(trial.folder.path, summary)
        outcomes[i] = Outcome("ok", "", summary)
    return outcomes
