"""The one training loop: a group of trials that share shapes, from their configs to their run
folders, for every backend (a single run is a group of one).

Per chunk of steps the loop draws each trial's minibatches (its own data order), hands them to the
backend and checks every term; per evaluation it writes each trial's ``metrics.jsonl`` line, keeps the
weights of the best evaluation of ``train.monitor`` (``train.select: best``), counts evaluations
without improvement (``train.early_stopping``) and writes the checkpoint. A trial whose loss turns
non-finite stops there and is reported as failed, naming the term and the step; the others go on.
Ctrl-C or SIGTERM stops the loop after the current chunk, with a checkpoint of that step, so that a
resumed run continues exactly.
"""

import math
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from infovae.data.registry import load_splits
from infovae.diagnostics.evaluate import reports_marginal
from infovae.diagnostics.quantities import summary_name
from infovae.errors import (
    CheckpointError,
    RunDirError,
    RunInterrupted,
    TrainingDiverged,
    UserInputError,
)
from infovae.files import append_jsonl, remove_temporary_files
from infovae.training.backends import backend_class, weighted_terms
from infovae.training.checkpoint import load_checkpoint, save_checkpoint
from infovae.training.config import architecture, fit_batch_size
from infovae.training.runs import RunFolder

__all__ = [
    "MinibatchSampler",
    "Outcome",
    "Trial",
    "build_backend",
    "load_run_splits",
    "restore_backend",
    "resume_run",
    "start_run",
    "train_group",
]


class MinibatchSampler:
    """Minibatches drawn without replacement within each pass over the data (epoch)."""

    def __init__(self, num_examples, batch_size, seed):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.rng = np.random.default_rng(seed)
        self.order, self.position = self.rng.permutation(num_examples), 0

    def next(self):
        if self.position + self.batch_size > self.num_examples:
            self.order, self.position = self.rng.permutation(self.num_examples), 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "order": self.order.copy(), "position": self.position}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.order, self.position = np.asarray(state["order"]).copy(), int(state["position"])


def eval_seed(config, step):
    """The seed of an evaluation: fixed by the trial's seed and the step, apart from training's stream."""
    return config.train.seed * 1_000_003 + step


@dataclass
class Trial:
    """The host's bookkeeping of one trial of a group."""

    config: object
    folder: RunFolder
    num_train: int
    status: str = "running"  # running, stopped (early), failed
    error: str = ""
    sums: dict = field(default_factory=dict)
    count: int = 0
    # The best evaluation of train.monitor so far, signed so that lower is better.
    best_score: float = math.inf
    best_step: int = 0
    stale: int = 0
    last_step: int = 0

    def __post_init__(self):
        self.sampler = MinibatchSampler(self.num_train, self.config.train.batch_size, self.config.train.seed)

    def add(self, terms):
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def take_means(self):
        means = {f"train_{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state_dict(self):
        return {
            "status": self.status, "error": self.error, "sums": dict(self.sums), "count": self.count,
            "best_score": self.best_score, "best_step": self.best_step, "stale": self.stale, "last_step": self.last_step,
            "sampler": self.sampler.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state):
        for name in ("status", "error", "count", "best_step", "stale", "last_step"):
            setattr(self, name, state[name])
        self.sums, self.best_score = dict(state["sums"]), float(state["best_score"])
        self.sampler.load_state_dict(state["sampler"])


@dataclass
class Outcome:
    """How a trial ended: ``status`` ok or failed, the one-line ``error``, and its summary."""

    status: str
    error: str
    summary: dict


@contextmanager
def _stop_requests():
    """Ctrl-C (the first one) and SIGTERM ask the loop to stop after the current chunk; a second
    Ctrl-C stops at once. Only the main thread can receive signals; elsewhere nothing is installed."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def ask(signum, frame):
        requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _first_bad(terms):
    return next((name for name, value in terms.items() if not math.isfinite(value)), None)


def _check_monitor(config, splits):
    """That the data and objective give the quantity ``train.monitor`` watches."""
    monitor = config.train.monitor
    if config.train.select == "last" and config.train.early_stopping is None:
        return
    needs = {
        "probe_accuracy": (splits.train.labels is not None, "labelled data"),
        "nmi": (splits.train.labels is not None, "labelled data"),
        "ami": (splits.train.labels is not None, "labelled data"),
        "coverage_tv": (splits.generator is not None, "a data set with a known generator (strategies)"),
        "marginal": (reports_marginal(config.objective), "objective.marginal other than kl"),
    }
    ok, what = needs.get(monitor, (True, ""))
    if not ok:
        raise UserInputError(f"train.monitor={monitor} needs {what}")


def build_backend(configs, splits):
    """The backend of a group of configs (one backend, one architecture) on ``splits``."""
    arch = architecture(configs[0], splits.train)
    for config in configs:
        _check_monitor(config, splits)
    return backend_class(configs[0].backend)(configs, arch, splits.train)


def load_run_splits(config, folder: RunFolder):
    """The data of a run, split as its ``splits.npz`` records (a changed data set is refused)."""
    splits = load_splits(config.data, config.likelihood)
    saved = folder.read_splits()
    if any(not np.array_equal(saved[k], v) for k, v in splits.indices.items()):
        raise RunDirError(f"the data no longer splits as recorded in {folder.splits_path}; it has changed since the run began")
    return splits


def _checkpoint(step, seconds, backend, trials, backend_state=None):
    return {
        "step": step,
        "seconds": seconds,
        "backend_name": backend.name,
        "backend": backend.state_dict() if backend_state is None else backend_state,
        "trials": [t.state_dict() for t in trials],
    }


def _restore(state, backend, trials):
    try:
        if state["backend_name"] != backend.name:
            raise CheckpointError(f"the checkpoint was written by the {state['backend_name']} backend, not {backend.name}")
        if len(state["trials"]) != len(trials):
            raise CheckpointError(f"the checkpoint holds {len(state['trials'])} trials, not {len(trials)}")
        backend.load_state_dict(state["backend"])
        for trial, trial_state in zip(trials, state["trials"]):
            trial.load_state_dict(trial_state)
        return int(state["step"]), float(state["seconds"])
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"the checkpoint has the wrong structure ({type(error).__name__}: {error})") from None


def restore_backend(config, splits, folder: RunFolder):
    """A backend holding the weights of the run folder's checkpoint."""
    backend = build_backend([config], splits)
    trial = Trial(config, folder, len(splits.train))
    _restore(load_checkpoint(folder.checkpoint_path), backend, [trial])
    backend.use_selected()
    return backend


def _summary(config, record, trial, backend, seconds):
    summary = {summary_name(k): v for k, v in record.items()}
    select_best = config.train.select == "best"
    summary.update(
        steps=trial.last_step,
        selected_step=trial.best_step if select_best else trial.last_step,
        stopped_early=trial.status == "stopped",
        backend=backend.name,
        train_seconds=round(seconds, 3),
        seconds_per_step=seconds / max(trial.last_step, 1),
    )
    return summary


def _postfix(trials, records):
    if len(trials) == 1 and records:
        record = records[0]
        shown = {k: record.get(k) for k in ("loss", "nll", "probe_accuracy", "coverage_tv")}
        return {f"val_{k}": f"{v:.3g}" for k, v in shown.items() if v is not None}
    counts = {s: sum(t.status == s for t in trials) for s in ("running", "stopped", "failed")}
    return {k: v for k, v in counts.items() if v}


def train_group(backend, trials, splits, checkpoint_path, state=None, progress=None, callbacks=(), per_trial_checkpoints=False):
    """Train the group's ``trials`` (sharing ``backend``) to ``train.steps`` from ``state`` (a
    checkpoint, or ``None`` to start), writing each trial's metrics and summary to its run folder and
    the group's checkpoint to ``checkpoint_path``; with ``per_trial_checkpoints``, each finished trial's
    run folder also gets a checkpoint of its own, as a single run's.

    :returns: one :class:`Outcome` per trial.
    :raises RunInterrupted: on Ctrl-C or SIGTERM, after writing a checkpoint of the current step.
    """
    train = trials[0].config.train
    step, seconds = (0, 0.0) if state is None else _restore(state, backend, trials)
    for trial in trials:
        trial.folder.keep_metrics_up_to(step)
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
    with _stop_requests() as stop, bar:
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
                save_checkpoint(checkpoint_path, _checkpoint(step, seconds, backend, trials))
                started = time.perf_counter()
            elif stop.is_set():
                seconds += time.perf_counter() - started
                save_checkpoint(checkpoint_path, _checkpoint(step, seconds, backend, trials))
            if stop.is_set():
                raise RunInterrupted(f"interrupted at step {step}; a checkpoint of that step is kept")
    outcomes = _finish(backend, trials, splits, seconds, callbacks)
    if per_trial_checkpoints:
        for i, trial in enumerate(trials):
            if outcomes[i].status == "ok":
                save_checkpoint(
                    trial.folder.checkpoint_path, _checkpoint(step, seconds, backend, [trial], backend.trial_state(i))
                )
    return outcomes


def _evaluate(backend, trials, splits, step, callbacks):
    """Evaluate the group on the validation split; per running trial, write its metrics line and
    update its best weights and patience."""
    seeds = [eval_seed(t.config, step) for t in trials]
    metrics = backend.evaluate(splits.val, splits.train, splits.generator, seeds)
    improved = np.zeros(len(trials), bool)
    records = []
    for i, trial in enumerate(trials):
        if trial.status != "running":
            continue
        record = {"step": step, **trial.take_means(), **{name: values[i] for name, values in metrics.items()}}
        append_jsonl(trial.folder.metrics_path, record)
        records.append(record)
        for callback in callbacks:
            callback.on_evaluation(trial.folder.path, step, record)
        config = trial.config.train
        value = record.get(config.monitor)
        if value is not None and math.isfinite(value) and config.monitor_sign * value < trial.best_score:
            trial.best_score, trial.best_step, trial.stale = config.monitor_sign * value, step, 0
            improved[i] = True
        else:
            trial.stale += 1
            if config.early_stopping is not None and trial.stale >= config.early_stopping.patience:
                trial.status = "stopped"
    backend.keep_best(improved)
    return records


def _finish(backend, trials, splits, seconds, callbacks):
    """Evaluate the finished trials on the test split (their selected weights) and write their summaries."""
    finished = np.array([t.status != "failed" for t in trials])
    outcomes = [Outcome("failed", t.error, {}) for t in trials]
    if not finished.any():
        return outcomes
    seeds = [eval_seed(t.config, t.last_step) for t in trials]
    selected = np.array([t.config.train.select == "best" for t in trials])
    metrics = backend.evaluate(splits.test, splits.train, splits.generator, seeds, selected=selected)
    for i, trial in enumerate(trials):
        if not finished[i]:
            continue
        summary = _summary(trial.config, {name: values[i] for name, values in metrics.items()}, trial, backend, seconds)
        trial.folder.write_summary(summary)
        for callback in callbacks:
            callback.on_summary(trial.folder.path, summary)
        outcomes[i] = Outcome("ok", "", summary)
    return outcomes


def start_run(config, out_dir, progress=None, callbacks=()):
    """Train ``config`` into the new run folder ``out_dir`` and return the summary.

    Everything that can be checked (config, data, model size, the folder) is checked before the folder
    is created or written, so that bad input leaves nothing behind.
    """
    folder = RunFolder(out_dir)
    if not folder.is_empty():
        hint = "--resume it" if folder.has_checkpoint() and not folder.summary_path.exists() else "choose another --out"
        raise RunDirError(f"run folder {folder.path} already exists and is not empty; {hint}")
    splits = load_splits(config.data, config.likelihood)
    config = fit_batch_size(config, splits.train)
    backend = build_backend([config], splits)
    created = not folder.path.exists()
    folder.create()
    with folder.lock():
        if not folder.is_empty():
            raise RunDirError(f"run folder {folder.path} was filled by another process meanwhile; choose another --out")
        try:
            folder.write_start(config, splits)
        except BaseException:
            if created:
                shutil.rmtree(folder.path, ignore_errors=True)
            raise
        return _run_one(backend, config, folder, splits, None, progress, callbacks)


def _run_one(backend, config, folder, splits, state, progress, callbacks):
    trial = Trial(config, folder, len(splits.train))
    (outcome,) = train_group(backend, [trial], splits, folder.checkpoint_path, state, progress, callbacks)
    if outcome.status != "ok":
        raise TrainingDiverged(outcome.error)
    return outcome.summary


def resume_run(out_dir, steps=None, progress=None, callbacks=()):
    """Continue the run in ``out_dir`` from its last checkpoint, or extend a finished run to ``steps``
    (bit-equal on CPU to a run trained to ``steps`` in one go); returns the summary."""
    folder = RunFolder(out_dir)
    if not folder.holds_run():
        raise RunDirError(f"{folder.path} holds no run to resume (no config.yaml)")
    with folder.lock():
        remove_temporary_files(folder.path)
        config = folder.read_config()
        summary = folder.read_summary()
        if steps is not None and steps != config.train.steps:
            config = _extended(config, steps, summary, folder)
        elif summary is not None:
            raise RunDirError(
                f"the run in {folder.path} has finished already (it has a summary.json); pass train.steps=N to extend it"
            )
        splits = load_run_splits(config, folder)
        backend = build_backend([config], splits)
        state = load_checkpoint(folder.checkpoint_path) if folder.has_checkpoint() else None
        if steps is not None:
            folder.write_start(config, splits)
            folder.summary_path.unlink(missing_ok=True)
        return _run_one(backend, config, folder, splits, state, progress, callbacks)


def _extended(config, steps, summary, folder):
    done = summary["steps"] if summary else None
    if steps < config.train.steps:
        raise UserInputError(f"train.steps={steps} is fewer than the run's {config.train.steps}; a run can only be extended")
    if summary is not None and summary.get("stopped_early"):
        raise UserInputError(f"the run in {folder.path} stopped early at step {done} (train.early_stopping); it is not extended")
    return config.model_copy(update={"train": config.train.model_copy(update={"steps": steps})})
