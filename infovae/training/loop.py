"""A training run from a config to a run directory, the same for every backend, and its resumption.

A run directory holds:

- ``config.yaml``: the resolved config;
- ``splits.npz``: the indices of the train / val / test examples;
- ``metrics.jsonl``: one JSON object per evaluation (step, running training terms ``train_*``, and every
  loss term and diagnostic on the validation split);
- ``checkpoint.pkl``: everything needed to continue, written atomically after each evaluation;
- ``summary.json``: the final evaluation on the test split.
"""

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from infovae.core.architecture import CVAEConfig
from infovae.data.loading import load_splits
from infovae.diagnostics.evaluate import evaluate
from infovae.training.backend import make_backend
from infovae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_json
from infovae.training.config import ConfigError, parse_config

__all__ = ["RunDirError", "TrainedRun", "TrainingDiverged", "architecture", "open_run", "resume_run", "start_run"]

CONFIG, SPLITS, METRICS, CHECKPOINT, SUMMARY = "config.yaml", "splits.npz", "metrics.jsonl", "checkpoint.pkl", "summary.json"
TEST_TERMS = ("loss", "recon", "kl", "marginal")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (it exists, or holds no run to resume)."""


class TrainingDiverged(RuntimeError):
    """A non-finite training term; the run directory keeps its last good checkpoint."""


class MinibatchSampler:
    """Minibatches drawn without replacement within each pass over the data (epoch)."""

    def __init__(self, num_examples, batch_size, seed):
        self.num_examples, self.batch_size = num_examples, min(batch_size, num_examples)
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
        self.order, self.position = state["order"].copy(), state["position"]


def architecture(config, train):
    """The CVAE's shape for ``config`` on the training split ``train``."""
    m = config.model
    return CVAEConfig(
        x_dim=train.x_dim,
        y_dim=train.y_dim,
        num_classes=max(train.num_classes, 2),
        latent=m.latent,
        latent_size=m.latent_size,
        prior=m.prior,
        likelihood=config.likelihood,
        hidden=m.hidden,
    )


class _RunningMeans:
    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, terms):
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def means(self):
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}


def _eval_seed(config, step):
    return config.train.seed * 1_000_003 + step


def start_run(config, out_dir, progress=None):
    """Train ``config`` into the new directory ``out_dir`` and return the summary."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        hint = "--resume it" if (out_dir / CHECKPOINT).exists() and not (out_dir / SUMMARY).exists() else "choose another --out"
        raise RunDirError(f"run directory {out_dir} already exists and is not empty; {hint}")
    splits = load_splits(config.data, config.likelihood)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    np.savez(out_dir / SPLITS, **splits.indices)
    return _train(config, splits, out_dir, None, progress)


def resume_run(out_dir, progress=None):
    """Continue the run in ``out_dir`` from its last checkpoint and return the summary."""
    out_dir = Path(out_dir)
    if not (out_dir / CONFIG).is_file():
        raise RunDirError(f"{out_dir} holds no run to resume (no {CONFIG})")
    config = _read_config(out_dir)
    if (out_dir / SUMMARY).exists():
        raise RunDirError(f"the run in {out_dir} has finished already (it has a {SUMMARY})")
    state = load_checkpoint(out_dir / CHECKPOINT) if (out_dir / CHECKPOINT).exists() else None
    splits = load_splits(config.data, config.likelihood)
    with np.load(out_dir / SPLITS) as saved:
        if any(not np.array_equal(saved[k], v) for k, v in splits.indices.items()):
            raise RunDirError(f"the data no longer splits as recorded in {out_dir / SPLITS}; it has changed since the run began")
    return _train(config, splits, out_dir, state, progress)


@dataclass
class TrainedRun:
    """A run directory read back: its config, data, trained backend and records."""

    path: Path
    config: object
    splits: object
    backend: object
    metrics: list
    summary: dict | None


def _read_config(out_dir):
    if not (out_dir / CONFIG).is_file():
        raise RunDirError(f"{out_dir} holds no run (no {CONFIG})")
    try:
        return parse_config(yaml.safe_load((out_dir / CONFIG).read_text()))
    except (ConfigError, yaml.YAMLError) as error:
        raise RunDirError(f"{out_dir / CONFIG} is not a valid run config: {error}") from None


def open_run(run_dir):
    """Read a run directory back, with the backend holding the weights of its last checkpoint."""
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT)
    splits = load_splits(config.data, config.likelihood)
    backend = make_backend(config, architecture(config, splits.train), len(splits.train))
    backend.load_state_dict(state["backend"])
    metrics_path, summary_path = run_dir / METRICS, run_dir / SUMMARY
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()] if metrics_path.exists() else []
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return TrainedRun(run_dir, config, splits, backend, records, summary)


def _keep_metrics_up_to(path, step):
    """Drop evaluations after ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))


def _append_line(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _train(config, splits, out_dir, state, progress):
    train_cfg = config.train
    arch = architecture(config, splits.train)
    backend = make_backend(config, arch, len(splits.train))
    sampler = MinibatchSampler(len(splits.train), train_cfg.batch_size, train_cfg.seed)
    step, seconds = 0, 0.0
    if state is not None:
        if state["backend_name"] != backend.name:
            raise CheckpointError(f"the checkpoint was written by the {state['backend_name']} backend, not {backend.name}")
        backend.load_state_dict(state["backend"])
        sampler.load_state_dict(state["sampler"])
        step, seconds = state["step"], state["seconds"]
    _keep_metrics_up_to(out_dir / METRICS, step)

    window = _RunningMeans()
    bar = tqdm(total=train_cfg.steps, initial=step, desc=f"{config.backend}", disable=None if progress is None else not progress, dynamic_ncols=True)
    started = time.perf_counter()
    while step < train_cfg.steps:
        # Steps up to the next evaluation, at most a chunk of them, in one call to the backend.
        next_eval = min(train_cfg.steps, (step // train_cfg.eval_every + 1) * train_cfg.eval_every)
        batches = [sampler.next() for _ in range(min(backend.chunk_size, next_eval - step))]
        terms = backend.train_steps(
            np.stack([splits.train.x[b] for b in batches]), np.stack([splits.train.y[b] for b in batches])
        )
        for i in range(len(batches)):
            current = {name: float(values[i]) for name, values in terms.items()}
            bad = [name for name, value in current.items() if not math.isfinite(value)]
            if bad:
                bar.close()
                last = step - step % train_cfg.eval_every
                kept = f"the last good checkpoint (step {last}) is kept in {out_dir}" if last else "no checkpoint was written yet"
                raise TrainingDiverged(f"step {step + 1}: the {bad[0]} term is {current[bad[0]]}; training stopped, {kept}")
            step += 1
            window.add(current)
        bar.update(len(batches))
        bar.set_postfix({k: f"{v:.3g}" for k, v in window.means().items()}, refresh=False)
        if step == next_eval:
            seconds += time.perf_counter() - started
            record = {"step": step, **{f"train_{k}": v for k, v in window.means().items()}}
            record.update(evaluate(backend, splits.train, splits.val, splits.generator, train_cfg, _eval_seed(config, step)))
            _append_line(out_dir / METRICS, record)
            save_checkpoint(
                out_dir / CHECKPOINT,
                {
                    "step": step,
                    "seconds": seconds,
                    "backend_name": backend.name,
                    "backend": backend.state_dict(),
                    "sampler": sampler.state_dict(),
                },
            )
            window = _RunningMeans()
            started = time.perf_counter()
    bar.close()

    final = evaluate(backend, splits.train, splits.test, splits.generator, train_cfg, _eval_seed(config, step))
    summary = {f"test_{k}" if k in TEST_TERMS else k: v for k, v in final.items()}
    summary.update(steps=step, backend=backend.name, train_seconds=round(seconds, 3), seconds_per_step=seconds / max(step, 1))
    write_json(out_dir / SUMMARY, summary)
    return summary
