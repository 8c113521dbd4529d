"""Where a run's numbers go while it trains: callbacks and TensorBoard event files."""

import json

import pytest

import infovae
from infovae.errors import UserInputError
from infovae.training.callbacks import Callback, make_callbacks

TINY = {
    "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "train": {"steps": 20, "batch_size": 32, "eval_every": 10, "eval_examples": 60},
}


class Recorder(Callback):
    def __init__(self):
        self.evaluations, self.summaries = [], []

    def on_evaluation(self, run_dir, step, record):
        self.evaluations.append((step, record))

    def on_summary(self, run_dir, summary):
        self.summaries.append(summary)


def test_callbacks_see_every_evaluation_and_the_summary_and_tensorboard_gets_them(tmp_path):
    recorder = Recorder()
    run = infovae.train(TINY, out=tmp_path / "run", progress=False, callbacks=[recorder, "tensorboard"])
    lines = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [step for step, _ in recorder.evaluations] == [10, 20]
    assert [record for _, record in recorder.evaluations] == lines
    assert recorder.summaries == [run.summary]
    (events,) = (run.dir / "tensorboard").glob("events.out.tfevents.*")
    values = scalars(events)
    assert values["val/loss"] == [(10, pytest.approx(lines[0]["loss"])), (20, pytest.approx(lines[1]["loss"]))]
    assert values["train/loss"][0] == (10, pytest.approx(lines[0]["train_loss"]))
    assert values["test/loss"] == [(20, pytest.approx(run.summary["test_loss"]))]


def scalars(path):
    """``{tag: [(step, value), ...]}`` from a TensorBoard event file (TFRecord framing of Event protos)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    data, out, offset = path.read_bytes(), {}, 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = Event.FromString(data[offset + 12 : offset + 12 + length])
        offset += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_a_callback_without_the_interface_is_refused():
    with pytest.raises(UserInputError, match="on_evaluation and on_summary"):
        make_callbacks([object()])
    with pytest.raises(UserInputError):
        make_callbacks(["wandb"])
