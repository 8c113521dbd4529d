"""The positive control's measures in a run, in both backends: the probe from the condition x alone
(the same number in both, from the same examples), the probe from x and z, and the decoder's use of z."""

import json

import pytest

from infovae.api import train

CONFIG = {
    "data": {"kind": "strategies", "num_examples": 1200, "context_shift": 2.0},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "objective": {"beta": 1.0},
    "train": {"steps": 40, "batch_size": 64, "eval_every": 20, "eval_examples": 300, "lr": 0.003},
}


@pytest.mark.slow  # two short training runs: about a minute
def test_both_backends_record_the_probe_from_x_and_the_decoder_s_use_of_z(tmp_path):
    summaries = {}
    for backend in ("pyro", "numpyro"):
        pytest.importorskip(backend)
        train(CONFIG, out=tmp_path / backend, backend=backend, progress=False)
        summaries[backend] = json.loads((tmp_path / backend / "summary.json").read_text())
        records = [json.loads(line) for line in (tmp_path / backend / "metrics.jsonl").read_text().splitlines()]
        assert all(r["probe_x_accuracy"] == records[0]["probe_x_accuracy"] for r in records)  # x alone: fixed per split
    pyro, numpyro = summaries["pyro"], summaries["numpyro"]
    # The probe from x alone does not depend on the model: the same examples, the same probe.
    assert pyro["probe_x_accuracy"] == pytest.approx(numpyro["probe_x_accuracy"], abs=1e-9)
    # With a context shift of 2 the contexts reveal the strategy nearly always (the Bayes rule from x: ~0.97).
    assert pyro["probe_x_accuracy"] > 0.85
    for summary in summaries.values():
        assert 0.0 <= summary["probe_xz_accuracy"] <= 1.0
        # Adding a latent can cost the probe a little noise, never more than a few points.
        assert summary["probe_xz_accuracy"] > summary["probe_x_accuracy"] - 0.05
        assert isinstance(summary["recon_z_gain"], float)
