"""Files the library reads and writes: a torn last line, litter left by a kill, names that leave their
folder, a batch larger than the data, one writer per folder."""

import os
import warnings
from pathlib import Path

import pytest
import yaml

from infovae.errors import RunDirError, UserInputError
from infovae.files import FolderLock, write_document

from .matrix import TINY, copy_run, snapshot

# -- files the library reads and writes -----------------------------------------------------------------


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_on_resume_and_report(runs, tmp_path):
    """(7) A crash mid-append leaves half a line; --resume and the readers drop it with a warning."""
    from infovae.training.loop import resume_run
    from infovae.training.runs import open_run

    run = copy_run(runs, tmp_path / "run", finished=False)
    whole = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(whole + '{"step": 6, "train_loss": 1.2')
    with pytest.warns(UserWarning, match="cut short by a crash"):
        assert [r["step"] for r in open_run(run).records] == [2, 4]
    with pytest.warns(UserWarning, match="cut short by a crash"):
        summary = resume_run(run, progress=False)
    assert summary["steps"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the resumed run rewrote the file whole
        records = open_run(run).records
    assert [r["step"] for r in records] == [2, 4, 6]
    assert (run / "metrics.jsonl").read_text().startswith(whole)


def test_temporary_files_left_by_a_kill_are_removed_on_resume(runs, tmp_path):
    """(8) A process killed mid-write leaves ``.NAME.XXXXXXXX.tmp``; resuming removes them."""
    from infovae.training.loop import resume_run

    run = copy_run(runs, tmp_path / "run", finished=False)
    litter = [run / ".checkpoint.npz.0badf00d.tmp", run / ".summary.json.deadbeef.tmp"]
    for path in litter:
        path.write_bytes(b"half a file")
    assert resume_run(run, progress=False)["steps"] == 6
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/tmp/infovae-evil-absolute", "link/evil", ".", "a/.."])
def test_ray_results_cannot_write_outside_their_trial_folder(tmp_path, name):
    """(8) A Ray task's files come back by name; a name that leaves the trial folder is refused."""
    from infovae.sweeps.executors import _unpack

    trial, outside = tmp_path / "trial", tmp_path / "outside"
    trial.mkdir()
    outside.mkdir()
    (trial / "link").symlink_to(outside)
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match="refused to write"):
        _unpack({name: b"evil"}, trial)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/infovae-evil-absolute").exists()


def test_ray_results_inside_their_folder_are_written(tmp_path):
    from infovae.sweeps.executors import _pack, _unpack

    files = {"run/metrics.jsonl": b"{}\n", "outcome.json": b"{}", "run/deeper/x": b"x"}
    _unpack(files, tmp_path)
    assert _pack(tmp_path) == files


def test_batch_size_larger_than_the_data_is_refused_or_clamped_and_recorded(tmp_path):
    """(8) batch_size above the training examples: either one line of error, or the batch used is the
    one config.yaml records (never a silent clamp with the request kept)."""
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run
    from infovae.training.runs import open_run

    config = parse_config({**TINY, "train": {**TINY["train"], "batch_size": 10_000, "steps": 2}})
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            start_run(config, tmp_path / "run", progress=False)
    except UserInputError as error:
        assert "batch_size" in str(error) and "\n" not in str(error)
        assert not (tmp_path / "run").exists()
        return
    run = open_run(tmp_path / "run")
    num_train = len(run.splits.train)
    assert num_train < 10_000
    assert run.config.train.batch_size == num_train
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["batch_size"] == num_train


def test_a_folder_lock_admits_one_writer(tmp_path):
    """(2) The second writer of a folder is refused on one line; the lock is free once released; a lock
    that cannot be made is a one-line error, not a traceback."""
    first = FolderLock(tmp_path, "run folder").acquire()
    with pytest.raises(RunDirError, match="in use by another process"):
        FolderLock(tmp_path, "run folder").acquire()
    first.release()
    FolderLock(tmp_path).acquire().release()
    (tmp_path / "file").write_text("a file")
    with pytest.raises(RunDirError, match="cannot lock"):
        FolderLock(tmp_path / "file" / "run").acquire()


def test_the_python_api_refuses_an_out_that_is_a_file(tmp_path):
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run

    (tmp_path / "file").write_text("a file")
    with pytest.raises(RunDirError, match="is a file"):
        start_run(parse_config(TINY), tmp_path / "file", progress=False)


def test_a_model_larger_than_the_memory_available_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """A y of 10^6 columns makes a CVAE of 2.6 * 10^8 weights (the encoder reads y, the decoder writes it),
    about 5 GiB to train: on a machine with 1 GiB available it is refused in one line naming the sizes,
    before the run folder exists, instead of failing in an allocation after it was made."""
    import numpy as np

    from infovae.cli import main
    from infovae.training import config_limits

    np.savez(tmp_path / "data.npz", x=np.zeros((20, 2), np.float32), y=np.zeros((20, 10**6), np.float32))
    (tmp_path / "c.yaml").write_text(
        f"data: {{kind: npz, path: {tmp_path / 'data.npz'}}}\nmodel: {{likelihood: gaussian}}\ntrain: {{batch_size: 8}}\n"
    )
    monkeypatch.setattr(config_limits, "available_memory", lambda: 2**30)
    with pytest.raises(SystemExit) as done:
        main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(lines) == 1, lines
    assert "258,035,848 parameters" in lines[0] and "GiB to train" in lines[0] and "1.0 GiB available" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_document_keeps_what_utf8_holds_and_escapes_what_it_cannot(tmp_path):
    # The bytes of a name that are not UTF-8, as os.fsdecode keeps them: each shown as the byte.
    write_document(tmp_path / "a.md", "é " + os.fsdecode(b"\xff\xfe"))
    assert (tmp_path / "a.md").read_bytes().decode("utf-8") == "é \\xff\\xfe"
    # A lone surrogate that stands for no byte: shown as itself.
    write_document(tmp_path / "b.md", "é \ud800")
    assert (tmp_path / "b.md").read_bytes().decode("utf-8") == "é \\ud800"
