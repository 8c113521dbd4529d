"""The training engine's public names in one place: the group loop (:mod:`~infovae.training.loop_group`),
single runs started, resumed and read back (:mod:`~infovae.training.loop_runs`), and the pieces they are
made of: minibatches (:mod:`~infovae.training.loop_sampling`), each trial's bookkeeping
(:mod:`~infovae.training.loop_progress`), stop requests (:mod:`~infovae.training.loop_signals`) and the
group's checkpoint (:mod:`~infovae.training.loop_checkpoint`).
"""

from infovae.training.loop_group import train_group
from infovae.training.loop_progress import Outcome, TrialProgress
from infovae.training.loop_runs import build_backend, load_run_splits, restore_backend, resume_run, start_run
from infovae.training.loop_sampling import MinibatchSampler

__all__ = [
    "MinibatchSampler",
    "Outcome",
    "TrialProgress",
    "build_backend",
    "load_run_splits",
    "restore_backend",
    "resume_run",
    "start_run",
    "train_group",
]
